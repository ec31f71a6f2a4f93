#!/usr/bin/env bash
# SIGTERM / SIGINT while ComfyUI is still starting: the run stops cleanly (exit 130, the engine's
# own message) and leaves no temporary folder; before the fix the signal killed the process and
# left /tmp/discomfort-<pid> behind (found by tests/reliability/faults.py). Also: the folder a
# SIGKILLed run left is removed by the next run.
# Usage: startup_signal_test.sh DISCOMFORT_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
set -m  # job control: background jobs keep SIGINT (a shell without it starts them with SIGINT ignored)
bin="$1"; src="$2"; work="$3"
rm -rf "$work"; mkdir -p "$work/tmp"
# The work folder of a run killed with SIGKILL (a pid that is not running) is reclaimed.
dead=4194000; while [ -d "/proc/$dead" ]; do dead=$((dead + 1)); done
mkdir -p "$work/tmp/discomfort-$dead/output"
for sig in TERM INT; do
  TMPDIR="$work/tmp" "$bin" run "$src/tests/cli/slow_counter.json" -n 3 --set counter=0 \
    --nodes "$src/tests/bridge/nodes/discomfort_test_nodes.py" > "$work/out.txt" 2> "$work/err.txt" &
  pid=$!
  sleep 1.5  # past the loading of libtorch, well before ComfyUI has finished importing
  kill -"$sig" "$pid"
  set +e; wait "$pid"; rc=$?; set -e
  [ "$rc" = 130 ] || { echo "SIG$sig during start-up: exit $rc, expected 130"; cat "$work/err.txt"; exit 1; }
  grep -q "cancelled" "$work/err.txt" || { echo "SIG$sig: no cancellation message (killed by the signal?)"; cat "$work/err.txt"; exit 1; }
  left=$(ls "$work/tmp" | grep -v '^torchinductor_' || true)
  [ -z "$left" ] || { echo "SIG$sig left in TMPDIR: $left"; exit 1; }
done
echo "SIGTERM and SIGINT during start-up: exit 130, nothing left behind (a dead run's folder reclaimed): OK"
