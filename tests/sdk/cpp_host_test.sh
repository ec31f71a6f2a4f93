#!/usr/bin/env bash
# The C++ SDK as a render farm uses it: installed into a prefix, a program built out of tree
# against that prefix only (find_package(Discomfort)), run on the demo workflow. Also compiles and
# runs the README's "Embedding in C++" program verbatim, and cancels a run with SIGINT.
#   cpp_host_test.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BUILD="$1" SRC="$2" WORK="$3"
rm -rf "$WORK"
mkdir -p "$WORK"
PREFIX="$WORK/prefix"
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "install"; }
for f in include/discomfort/discomfort.h lib/libdiscomfort.so lib/cmake/Discomfort/DiscomfortConfig.cmake \
         lib/cmake/Discomfort/DiscomfortConfigVersion.cmake lib/pkgconfig/discomfort.pc bin/discomfort \
         share/discomfort/python/discomfort_bridge/host.py; do
  [ -e "$PREFIX/$f" ] || fail "the install lacks $f"
done
! grep -rlE "pybind11|Python\.h" "$PREFIX/include/discomfort" || fail "a public header names Python or pybind11"

# configure_and_build NAME SOURCE_DIR: an out-of-tree project that knows only the prefix.
configure_and_build() {
  local name="$1" dir="$2"
  cmake -S "$dir" -B "$WORK/$name-build" -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    >"$WORK/$name-configure.log" 2>&1 || { cat "$WORK/$name-configure.log"; fail "configuring $name"; }
  cmake --build "$WORK/$name-build" >"$WORK/$name-build.log" 2>&1 || { cat "$WORK/$name-build.log"; fail "building $name"; }
  # Built with -Wall -Wextra -Werror and no Python on the include path.
  ! grep -qiE "include/python3|pybind11" "$WORK/$name-build/compile_commands.json" || fail "$name sees Python headers"
}

configure_and_build cpp_host "$SRC/examples/cpp_host"
cat >"$WORK/job.json" <<JOB
{"workflows": ["$SRC/examples/feedback_loop/feedback.json", "$SRC/examples/cpp_host/identity.json"],
 "iterations": 3, "output_dir": "$WORK/out",
 "inputs": {"frame": "@$SRC/examples/feedback_loop/seed.png"},
 "probe": {"port": "probe", "returns_as": "probe_out", "shape": [1, 32, 32, 3]}}
JOB
"$WORK/cpp_host-build/cpp_host" "$WORK/job.json" >"$WORK/stdout.txt" 2>"$WORK/stderr.txt" \
  || { cat "$WORK/stderr.txt"; fail "cpp_host exited $?"; }
python3 - "$WORK" <<'PY' || fail "cpp_host's results"
import json, struct, sys
work = sys.argv[1]
summary = json.loads(open(f"{work}/stdout.txt").read().strip().splitlines()[-1])
assert summary["iterations_completed"] == 3, summary
assert summary["probe_same_storage"] is True, summary
files = summary["files"]["frame"]
assert files == [f"{work}/out/frame_00002.png"], files
with open(files[0], "rb") as f:
    head = f.read(24)
assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
assert struct.unpack(">II", head[16:24]) == (256, 256), "the demo frame is 256x256"
PY
echo "cpp_host: 3 iterations, the probe tensor came back as the very storage, images written"

# Ctrl-C mid-run: a clean cancellation, exit 130.
sed -e 's/"iterations": 3/"iterations": 100000/' "$WORK/job.json" >"$WORK/long.json"
"$WORK/cpp_host-build/cpp_host" "$WORK/long.json" >"$WORK/long.out" 2>"$WORK/long.err" &
pid=$!
for _ in $(seq 1 600); do
  [ -e "$WORK/out/frame_00000.png" ] && break
  sleep 0.1
done
sleep 2
kill -INT "$pid"
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" = 130 ] || { cat "$WORK/long.err"; fail "SIGINT: exit $rc, expected 130"; }
grep -q "cancelled" "$WORK/long.err" || fail "SIGINT: no cancellation message"
echo "cpp_host: SIGINT cancelled the run (exit 130)"

# The README's program, verbatim.
mkdir -p "$WORK/readme"
python3 - "$SRC/README.md" "$WORK/readme/embed.cc" <<'PY' || fail "extracting the README's program"
import re, sys
text = open(sys.argv[1]).read()
block = re.search(r"<!-- sdk-example:begin -->\s*```cpp\n(.*?)```\s*<!-- sdk-example:end -->", text, re.S)
assert block, "no sdk-example block in the README"
open(sys.argv[2], "w").write(block.group(1))
PY
cat >"$WORK/readme/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(embed LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(Discomfort 0.2 CONFIG REQUIRED)
add_executable(embed embed.cc)
target_compile_options(embed PRIVATE -Wall -Wextra -Werror)
target_link_libraries(embed PRIVATE Discomfort::discomfort)
CM
configure_and_build readme "$WORK/readme"
"$WORK/readme-build/embed" "$SRC/examples/feedback_loop/feedback.json" >"$WORK/readme.out" 2>"$WORK/readme.err" \
  || { cat "$WORK/readme.err"; fail "the README's program exited $?"; }
grep -qE "^final frame mean 0\.[0-9]+" "$WORK/readme.out" || { cat "$WORK/readme.out" "$WORK/readme.err"; fail "the README's program printed no final frame"; }
[ "$(grep -c '^iteration ' "$WORK/readme.err")" = 10 ] || fail "the README's program did not report 10 iterations"
echo "README program: built out of tree and ran 10 iterations"
