#!/usr/bin/env bash
# The one script run on a lent GPU machine (the device tool: repository root, build/gpu-carry carried,
# $OUT collected). It sets up what the image lacks from the carry (benchmarks/gpu/prepare_carry.sh),
# builds what the checks need, then runs, each stage timed and its log kept under $OUT:
#   1. the storage suite's CUDA cases (device budget, spill through pinned staging) and the bridge suite
#      with tensors on the device (pointer identity on CUDA tensors, budget spill back to the device);
#   2. the handoff benchmark on the device (1/4/8 GiB carried by pointer, spilled and reloaded, beside
#      the machine's direct-I/O disk bandwidth and host<->device copies measured in the same run);
#   3. the overhead and large-model benchmarks with ComfyUI on the GPU (BENCH_DEVICE=cuda), side by side
#      with the nested server and the plain loop.
# It writes $OUT/device_results.json (the machine named, each stage's status and seconds, the benchmark
# results) and $OUT/RESULTS-gpu.md; a failed stage is recorded and the next one still runs.
#
#   benchmarks/gpu/device_check.sh                      on the device (about 10 minutes)
#   DEVICE_CHECK_DRY=1 benchmarks/gpu/device_check.sh   here, on the CPU: the same stages against this
#       machine's venv and ComfyUI, the debs extracted and used as on the device, benchmarks shortened
# DEVICE_CHECK_STAGES=tests,handoff,bench picks stages; DEVICE_WORK=DIR moves the scratch folder.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
source "$ROOT/scripts/lib.sh"
CARRY="${GPU_CARRY:-$ROOT/build/gpu-carry}"
DRY="${DEVICE_CHECK_DRY:-0}"
WORK="${DEVICE_WORK:-/tmp/discomfort-device}"
OUT="${OUT:-$ROOT/build/device-out}"
STAGES=",${DEVICE_CHECK_STAGES:-tests,handoff,bench},"
JOBS="$(nproc)"
mkdir -p "$WORK" "$OUT"
STATUS="$OUT/stages.jsonl"
: > "$STATUS"

# Runs one stage: its output to $OUT/<name>.log, one JSON line with its status and seconds.
stage() {
  local name="$1"
  shift
  local started rc
  started=$(date +%s.%N)
  log "stage $name: $*"
  "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  awk -v n="$name" -v rc="$rc" -v a="$started" -v b="$(date +%s.%N)" \
    'BEGIN {printf "{\"stage\": \"%s\", \"rc\": %d, \"seconds\": %.1f}\n", n, rc, b - a}' >> "$STATUS"
  [ "$rc" -eq 0 ] && log "stage $name: ok" || log "stage $name: failed ($rc), see $OUT/$name.log"
  return "$rc"
}

# --- what the image lacks, from the carry ---------------------------------------------------------
PREFIX="$WORK/prefix"
extract_debs() {
  [ -f "$CARRY/debs/SHA256SUMS" ] || die "no $CARRY/debs: run benchmarks/gpu/prepare_carry.sh here first"
  (cd "$CARRY/debs" && sha256sum --quiet -c SHA256SUMS) || die "the carried debs do not match SHA256SUMS"
  rm -rf "$PREFIX" && mkdir -p "$PREFIX"
  local deb
  for deb in "$CARRY"/debs/*.deb; do dpkg-deb -x "$deb" "$PREFIX"; done
  # pkg-config files name /usr: point them at the prefix (CMake's package configs are relocatable).
  find "$PREFIX" -name '*.pc' -exec sed -i "s#^prefix=/usr\$#prefix=$PREFIX/usr#" {} +
}

VENV="$WORK/venv"
setup_python() {
  if [ "$DRY" = 1 ]; then
    VENV="$ROOT/.venv"  # the cp312 wheels do not install on this machine's Python; its venv has them
    return 0
  fi
  [ -f "$CARRY/wheels.tar.xz" ] || die "no $CARRY/wheels.tar.xz: run benchmarks/gpu/prepare_carry.sh here first"
  rm -rf "$VENV" "$WORK/wheels" && mkdir -p "$WORK/wheels"
  # The image's torch stays visible; without ensurepip the venv has no pip of its own and uses the
  # image's through the system site-packages.
  python3 -m venv --system-site-packages "$VENV" || python3 -m venv --system-site-packages --without-pip "$VENV" \
    || return 1
  tar -xJf "$CARRY/wheels.tar.xz" -C "$WORK/wheels" || return 1
  "$VENV/bin/python" -m pip install -q --no-index --no-deps "$WORK/wheels"/*.whl || return 1
  "$VENV/bin/python" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('torch', torch.__version__, torch.cuda.get_device_name(0))"
}

COMFY=""
setup_comfyui() {
  if [ "$DRY" = 1 ]; then
    COMFY="$(find_comfyui)"
    return 0
  fi
  [ -f "$CARRY/ComfyUI.tar.xz" ] || die "no $CARRY/ComfyUI.tar.xz: run benchmarks/gpu/prepare_carry.sh here first"
  rm -rf "$WORK/ComfyUI" && tar -xJf "$CARRY/ComfyUI.tar.xz" -C "$WORK" || return 1
  COMFY="$WORK/ComfyUI"
}

BUILD="$WORK/build"
build() {
  # ccache where there is one (this machine's dry run; the device has none)
  export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/discomfort/ccache}"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDISCOMFORT_BUILD_BENCHMARKS=OFF \
    -DCMAKE_PREFIX_PATH="$PREFIX/usr" -DDISCOMFORT_PYTHON="$VENV/bin/python" \
    -DDISCOMFORT_COMFYUI_PATH="$COMFY" || return 1
  # What the checks run: the two suites, the CLI and the Python package (benchmarks' contenders).
  cmake --build "$BUILD" -j "$JOBS" --target storage_tests bridge_tests discomfort discomfort_python_core
}

extract_debs
export PKG_CONFIG_PATH="$PREFIX/usr/lib/x86_64-linux-gnu/pkgconfig:$PREFIX/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
command -v pkg-config >/dev/null || export PKG_CONFIG="$PREFIX/usr/bin/pkgconf"
export LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
stage python setup_python || die "the Python environment could not be set up (see $OUT/python.log)"
stage comfyui setup_comfyui || die "ComfyUI could not be unpacked (see $OUT/comfyui.log)"
export COMFYUI_PATH="$COMFY"
stage build build || die "the build failed (see $OUT/build.log)"

# --- 1. the suites' device cases ---------------------------------------------------------------------
if [[ "$STAGES" == *,tests,* ]]; then
  stage storage_cuda "$BUILD/tests/storage_tests" --gtest_color=no \
    "--gtest_filter=DeviceBudgetTest.*:SpillTest.Cuda*" --gtest_output="json:$OUT/storage_cuda.json"
  stage bridge "$BUILD/tests/bridge_tests" --gtest_color=no --gtest_output="json:$OUT/bridge.json"
fi

# --- 2. the handoff benchmark on the device --------------------------------------------------------
DEVICE=cuda
[ "$DRY" = 1 ] && DEVICE=cpu
if [[ "$STAGES" == *,handoff,* ]]; then
  sizes="1,4,8"
  [ "$DRY" = 1 ] && sizes="0.25"
  stage handoff env PYTHONPATH="$BUILD/python" "$VENV/bin/python" "$ROOT/benchmarks/handoff/handoff.py" \
    --work "$WORK/handoff" --sizes-gib "$sizes" --device "$DEVICE" --result "$OUT/handoff.json"
fi

# --- 3. overhead and large model with ComfyUI on the GPU ---------------------------------------------
if [[ "$STAGES" == *,bench,* ]]; then
  quick=0
  [ "$DRY" = 1 ] && quick=1
  # bench.py writes benchmarks/results.json, RESULTS.md and the README's figures: it runs in a
  # stand-in of the repository (links to everything else, those files copied), so the checkout's
  # CPU results stay as they are; its .venv is the one set up above.
  bench_repo="$WORK/bench/repo"
  rm -rf "$WORK/bench" && mkdir -p "$bench_repo"
  for entry in "$ROOT"/*; do
    case "$(basename "$entry")" in
      benchmarks | README.md) ;;
      *) ln -s "$entry" "$bench_repo/$(basename "$entry")" ;;
    esac
  done
  ln -s "$VENV" "$bench_repo/.venv"
  [ -e "$ROOT/.git" ] && ln -s "$ROOT/.git" "$bench_repo/.git"  # the results name the commit
  cp -r "$ROOT/benchmarks" "$ROOT/README.md" "$bench_repo/"
  rm -f "$bench_repo/benchmarks/results.json"
  stage bench env BENCH_DEVICE="$DEVICE" BENCH_QUICK="$quick" BENCH_ONLY=overhead,large_model \
    BENCH_BUILD_DIR="$BUILD" BENCH_WORK="$WORK/bench/work" BENCH_LARGE_ITERATIONS=3 \
    "$VENV/bin/python" "$bench_repo/benchmarks/bench.py"
  cp "$bench_repo/benchmarks/results.json" "$OUT/bench.json" 2>/dev/null
  cp "$bench_repo/benchmarks/RESULTS.md" "$OUT/RESULTS-gpu.md" 2>/dev/null
fi

# --- the summary ------------------------------------------------------------------------------------
"$VENV/bin/python" - "$OUT" "$DRY" <<'EOF'
import json, os, platform, subprocess, sys, time
out, dry = sys.argv[1], sys.argv[2] == "1"
def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None
gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                     capture_output=True, text=True).stdout.strip() if not dry else ""
summary = {
    "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "dry_run": dry,
    "machine": {"gpu": gpu or None, "cpus": os.cpu_count(), "platform": platform.platform()},
    "stages": [json.loads(line) for line in open(os.path.join(out, "stages.jsonl"))],
    "handoff": load("handoff.json"), "bench": load("bench.json"),
    "storage_cuda": load("storage_cuda.json"), "bridge": load("bridge.json"),
}
with open(os.path.join(out, "device_results.json"), "w") as f:
    json.dump(summary, f, indent=1)
failed = [s["stage"] for s in summary["stages"] if s["rc"] != 0]
print(json.dumps({"stages": summary["stages"], "failed": failed}, indent=1))
sys.exit(1 if failed else 0)
EOF
