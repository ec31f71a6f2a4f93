#!/usr/bin/env bash
# End to end: SIGINT mid-run exits 130 leaving a checkpoint at the last finished iteration and no
# temporary folder; `discomfort resume` then ends with the same result as an uninterrupted run.
# Usage: interrupt_resume_test.sh DISCOMFORT_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
bin="$1"; src="$2"; work="$3"
nodes="$src/tests/bridge/nodes/discomfort_test_nodes.py"
wf="$src/tests/cli/slow_counter.json"
rm -rf "$work"; mkdir -p "$work"

expected=$("$bin" run "$wf" -n 6 --set counter=0 --nodes "$nodes" --json 2>/dev/null | tail -1)
[ "$expected" = '{"counter":6}' ] || { echo "uninterrupted run gave: $expected"; exit 1; }

"$bin" run "$wf" -n 6 --set counter=0 --nodes "$nodes" --checkpoint-every 1 --checkpoint-dir "$work/ckpt" \
  > "$work/first.out" 2> "$work/first.err" &
pid=$!
# Interrupt once two iterations have finished (their progress lines are on stderr).
for _ in $(seq 1 300); do
  [ "$(grep -c 'iteration [0-9]*/' "$work/first.err" 2>/dev/null || true)" -ge 2 ] && break
  sleep 0.1
done
kill -INT "$pid"
set +e; wait "$pid"; rc=$?; set -e
[ "$rc" = 130 ] || { echo "interrupted run exited $rc, expected 130"; cat "$work/first.err"; exit 1; }
grep -q "cancelled" "$work/first.err" || { echo "no cancellation message"; cat "$work/first.err"; exit 1; }
[ ! -e "/tmp/discomfort-$pid" ] || { echo "temporary folder /tmp/discomfort-$pid left behind"; exit 1; }
done_before=$(python3 -c "import json; print(json.load(open('$work/ckpt/run.json'))['next_iteration'])")
[ "$done_before" -ge 2 ] && [ "$done_before" -lt 6 ] || { echo "checkpoint at iteration $done_before"; exit 1; }

resumed=$("$bin" resume "$work/ckpt" --json 2>"$work/resume.err" | tail -1)
[ "$resumed" = "$expected" ] || { echo "resumed run gave $resumed, expected $expected"; cat "$work/resume.err"; exit 1; }
echo "interrupted after $done_before iterations, resumed to $resumed: OK"
