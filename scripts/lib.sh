# Shared by scripts/*: paths, logging, ComfyUI discovery. Sourced, not run.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${DISCOMFORT_CACHE:-$HOME/.cache/discomfort}"
BUILD_TYPE="${BUILD_TYPE:-Release}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/$(echo "$BUILD_TYPE" | tr '[:upper:]' '[:lower:]')}"

log() { printf '[discomfort] %s\n' "$*" >&2; }
die() { printf '[discomfort] error: %s\n' "$*" >&2; exit 1; }

# COMFYUI_PATH, else the ComfyUI whose custom_nodes/ holds this repo, else ~/ComfyUI.
find_comfyui() {
  local candidates=()
  [ -n "${COMFYUI_PATH:-}" ] && candidates+=("$COMFYUI_PATH")
  if [ "$(basename "$(dirname "$ROOT")")" = "custom_nodes" ]; then
    candidates+=("$(dirname "$(dirname "$ROOT")")")
  fi
  candidates+=("$HOME/ComfyUI")
  local c
  for c in "${candidates[@]}"; do
    if [ -f "$c/execution.py" ] && [ -f "$c/nodes.py" ] && [ -d "$c/comfy" ]; then
      (cd "$c" && pwd)
      return 0
    fi
    if [ -n "${COMFYUI_PATH:-}" ] && [ "$c" = "$COMFYUI_PATH" ]; then
      die "COMFYUI_PATH=$COMFYUI_PATH is not a ComfyUI checkout (no execution.py / nodes.py / comfy/ there)"
    fi
  done
  die "no ComfyUI checkout found. Point COMFYUI_PATH at one (export COMFYUI_PATH=/path/to/ComfyUI), \
clone this repo into ComfyUI/custom_nodes/, or put ComfyUI at ~/ComfyUI. Tested with v0.33.0 and v0.8.0."
}
