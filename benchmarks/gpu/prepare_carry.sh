#!/usr/bin/env bash
# Prepares what the GPU machine lacks, on THIS (networked) machine, into an ignored folder that the
# device tool carries (benchmarks/gpu/README.md):
#   debs/            Debian 12 packages: TBB, muparser, libspng, CLI11 (none in the image), and the
#                    dev machine's GoogleTest/spdlog/fmt/nlohmann-json and pkgconf, so the device build
#                    uses the same library versions as this one (device_check.sh extracts them with
#                    dpkg -x into a prefix; nothing is installed into the image's /)
#   wheels.tar.xz    cp312 manylinux wheels of carry_wheels.txt, stored uncompressed inside the tar
#                    and the tar xz'd (carry_tool.py pack: a third smaller than the wheels' own zip)
#   ComfyUI.tar.xz   the ComfyUI checkout (COMFYUI_PATH or ~/ComfyUI) without .git, tests, CI files
#   MANIFEST.json    what is in it: versions, sizes, what was left out
# and checks the device tool's limit: working tree + carry <= 64 MiB.
#
#   benchmarks/gpu/prepare_carry.sh [--force]     GPU_CARRY=DIR moves it (default build/gpu-carry)
# Components whose inputs did not change are kept (--force redoes all). Needs apt-get and network.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
source "$ROOT/scripts/lib.sh"
CARRY="${GPU_CARRY:-$ROOT/build/gpu-carry}"
PYTHON="${DISCOMFORT_PYTHON:-$ROOT/.venv/bin/python}"
LIMIT=$((64 << 20))
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

# Debian packages, by role. Their own dependencies are checked below against what the image has.
DEBS_REQUIRED=(libtbb-dev libtbb12 libtbbmalloc2 libtbbbind-2-5 libmuparser-dev libmuparser2v5
  libspng-dev libspng0 libcli11-dev zlib1g-dev)
DEBS_SAME_AS_DEV=(libgtest-dev libgmock-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 nlohmann-json3-dev)
DEBS_TOOLS=(pkgconf pkgconf-bin libpkgconf3)
# Dependencies the image's Ubuntu 24.04 base has (libc and its headers, the GCC runtime, zlib);
# libhwloc15, which only TBB's optional NUMA helper (libtbbbind, loaded on demand) needs; and two the
# build does not use: googletest (sources: libgtest-dev/libgmock-dev hold the built libraries) and
# catch2 (a test framework spdlog's package names; no spdlog header includes it).
DEBS_ASSUMED=(libc6 libc6-dev libgcc-s1 libstdc++6 libgomp1 zlib1g libhwloc15 googletest catch2)

case "$(git -C "$ROOT" check-ignore -q "$CARRY" && echo ignored || echo tracked)" in
  tracked) die "$CARRY is not ignored by git: the device tool carries ignored paths only" ;;
esac
mkdir -p "$CARRY"
# A component is kept when its file exists and the key of its inputs is the one it was made with.
stamp_ok() { [ "$FORCE" = 0 ] && [ -f "$CARRY/$1" ] && [ "$(cat "$CARRY/.stamp-$2" 2>/dev/null)" = "$3" ]; }

# --- Debian packages -----------------------------------------------------------------------------
debs_key=$(printf '%s\n' "${DEBS_REQUIRED[@]}" "${DEBS_SAME_AS_DEV[@]}" "${DEBS_TOOLS[@]}" \
  "$(. /etc/os-release && echo "$VERSION_ID")" | sha256sum | cut -c1-16)
if stamp_ok debs/SHA256SUMS debs "$debs_key"; then
  log "debs: kept ($(ls "$CARRY/debs" | grep -c '\.deb$') packages)"
else
  log "debs: apt-get download ${#DEBS_REQUIRED[@]} required + ${#DEBS_SAME_AS_DEV[@]} dev-matching + ${#DEBS_TOOLS[@]} tool packages"
  rm -rf "$CARRY/debs" && mkdir -p "$CARRY/debs"
  (cd "$CARRY/debs" && apt-get download -q "${DEBS_REQUIRED[@]}" "${DEBS_SAME_AS_DEV[@]}" "${DEBS_TOOLS[@]}" 2>&1 \
    | grep -v "unsandboxed" >&2 || true)
  count=$(ls "$CARRY/debs" | grep -c '\.deb$' || true)
  want=$(( ${#DEBS_REQUIRED[@]} + ${#DEBS_SAME_AS_DEV[@]} + ${#DEBS_TOOLS[@]} ))
  [ "$count" -eq "$want" ] || die "debs: downloaded $count of $want packages (apt-get update first?)"
  # Every dependency of a carried package is carried too, or assumed present on the image.
  have=" $(for f in "$CARRY"/debs/*.deb; do dpkg-deb -f "$f" Package; done | tr '\n' ' ') ${DEBS_ASSUMED[*]} "
  missing=""
  for f in "$CARRY"/debs/*.deb; do
    for dep in $(dpkg-deb -f "$f" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//' | tr -d ' '); do
      [[ "$have" == *" $dep "* ]] || missing+=" $(dpkg-deb -f "$f" Package)->$dep"
    done
  done
  [ -z "$missing" ] || die "debs: dependencies neither carried nor assumed on the image:$missing"
  (cd "$CARRY/debs" && sha256sum ./*.deb > SHA256SUMS)
  echo "$debs_key" > "$CARRY/.stamp-debs"
fi

# --- wheels --------------------------------------------------------------------------------------
wheels_key=$(cat "$HERE/carry_wheels.txt" "$HERE/carry_tool.py" "$HERE/image_packages.txt" | sha256sum | cut -c1-16)
if stamp_ok wheels.tar.xz wheels "$wheels_key"; then
  log "wheels: kept"
else
  download="$ROOT/build/gpu-wheels-download"
  rm -rf "$download" && mkdir -p "$download"
  log "wheels: pip download (cp312, manylinux x86-64, no dependencies resolved: carry_wheels.txt lists them)"
  platforms=()
  for p in manylinux1 manylinux2010 manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 \
    manylinux_2_31 manylinux_2_34 manylinux_2_35; do platforms+=(--platform "${p}_x86_64"); done
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$download" -r "$HERE/carry_wheels.txt"
  "$PYTHON" "$HERE/carry_tool.py" check "$download" || die "wheels: the carry would not install (above)"
  log "wheels: packing (uncompressed wheels in one tar, xz; a few minutes on 2 cores)"
  "$PYTHON" "$HERE/carry_tool.py" pack "$download" "$CARRY/wheels.tar"
  xz -T2 -6 -f "$CARRY/wheels.tar"
  (cd "$download" && ls -l --time-style=+ ./*.whl | awk '{print $5, $NF}' | sed 's#\./##') > "$CARRY/wheels.list"
  rm -rf "$download"
  echo "$wheels_key" > "$CARRY/.stamp-wheels"
fi

# --- ComfyUI -------------------------------------------------------------------------------------
COMFY="$(find_comfyui)"
comfy_version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$COMFY/comfyui_version.py" 2>/dev/null || echo unknown)
comfy_key=$( (echo "$COMFY $comfy_version"; find "$COMFY" -path "$COMFY/.git" -prune -o -type f -newer "$COMFY/comfyui_version.py" -print | head -100) | sha256sum | cut -c1-16)
if stamp_ok ComfyUI.tar.xz comfyui "$comfy_key"; then
  log "ComfyUI: kept ($comfy_version)"
else
  log "ComfyUI: packing $COMFY ($comfy_version) without .git, tests, tests-unit, .ci, .github, caches"
  tar -C "$(dirname "$COMFY")" --transform "s#^$(basename "$COMFY")#ComfyUI#" \
    --exclude="$(basename "$COMFY")/.git" --exclude="$(basename "$COMFY")/tests" \
    --exclude="$(basename "$COMFY")/tests-unit" --exclude="$(basename "$COMFY")/.ci" \
    --exclude="$(basename "$COMFY")/.github" --exclude='__pycache__' --exclude='*.pyc' \
    -cf - "$(basename "$COMFY")" | xz -T2 -6 > "$CARRY/ComfyUI.tar.xz"
  echo "$comfy_key" > "$CARRY/.stamp-comfyui"
fi

# --- manifest and the size limit -----------------------------------------------------------------
carry_bytes=$(du -sb "$CARRY" | cut -f1)
tree_bytes=$(cd "$ROOT" && git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
total=$((carry_bytes + tree_bytes))
"$PYTHON" - "$CARRY" "$COMFY" "$comfy_version" "$carry_bytes" "$tree_bytes" "$LIMIT" <<'EOF'
import json, os, subprocess, sys, time
carry, comfy, version, carry_bytes, tree_bytes, limit = sys.argv[1:]
debs = sorted(f for f in os.listdir(os.path.join(carry, "debs")) if f.endswith(".deb"))
wheels = [dict(zip(("bytes", "file"), line.split(None, 1))) for line in open(os.path.join(carry, "wheels.list")).read().splitlines()]
files = {f: os.path.getsize(os.path.join(carry, f)) for f in ("wheels.tar.xz", "ComfyUI.tar.xz")}
files["debs/"] = sum(os.path.getsize(os.path.join(carry, "debs", f)) for f in os.listdir(os.path.join(carry, "debs")))
manifest = {
    "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "debian": open("/etc/debian_version").read().strip(),
    "debs": debs, "wheels": wheels, "files_bytes": files,
    "left_out": {"comfy-kitchen": "its compiled CUDA and HIP backends (comfy_kitchen/backends/{cuda,hip}/_C.abi3.so)",
                 "ComfyUI": ".git, tests, tests-unit, .ci, .github, __pycache__"},
    "comfyui": {"source": comfy, "version": version},
    "carry_bytes": int(carry_bytes), "working_tree_bytes": int(tree_bytes),
    "total_bytes": int(carry_bytes) + int(tree_bytes), "limit_bytes": int(limit),
}
with open(os.path.join(carry, "MANIFEST.json"), "w") as f:
    json.dump(manifest, f, indent=1)
EOF
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "carry $CARRY: $(mib "$carry_bytes") (wheels $(mib "$(stat -c %s "$CARRY/wheels.tar.xz")"), ComfyUI $(mib "$(stat -c %s "$CARRY/ComfyUI.tar.xz")"), debs $(mib "$(du -sb "$CARRY/debs" | cut -f1)")); working tree $(mib "$tree_bytes"); together $(mib "$total") of the device tool's 64 MiB"
if [ "$total" -gt "$LIMIT" ]; then
  die "over the 64 MiB limit by $(mib $((total - LIMIT))): two calls are needed (README: carry wheels.tar.xz in the first, ComfyUI.tar.xz + debs in the second), or trim carry_wheels.txt"
fi
