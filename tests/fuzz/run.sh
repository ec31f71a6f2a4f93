#!/usr/bin/env bash
# Runs every libFuzzer target of a DISCOMFORT_SANITIZE=fuzzer build for a bounded time, seeded from
# the test data (make_corpus.py) plus what earlier runs found, and prints one line per target:
#   fuzz <target>: <executions> executions in <s> s, <corpus> corpus entries, <crashes> crashes
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS_PER_TARGET [TARGET...]
# Exit status 1 when a target crashed, hung (-timeout) or exceeded -rss_limit_mb; the input that did
# it is in BUILD_DIR/fuzz-artifacts/ (replay: BUILD_DIR/tests/fuzz/<target> <file>).
set -uo pipefail
build="$1"; seconds="$2"; shift 2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(workflow_convert_fuzz api_prompt_fuzz stitch_fuzz plan_condition_fuzz snapshot_fuzz)
seeds="$build/fuzz-seeds"; corpus="$build/fuzz-corpus"; artifacts="$build/fuzz-artifacts"; logs="$build/fuzz-logs"
rm -rf "$seeds"
python3 "$here/make_corpus.py" "$seeds" || exit 1
mkdir -p "$corpus" "$artifacts" "$logs"
failed=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/$t"
  [ -x "$bin" ] || { echo "fuzz $t: not built ($bin)"; failed=1; continue; }
  mkdir -p "$corpus/$t" "$seeds/$t"
  # UBSan reports abort (-fno-sanitize-recover); ASan's leak check stays on; one input may take
  # at most 10 s and 2 GiB. The first corpus folder collects new inputs, the seeds stay as built.
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "$corpus/$t" "$seeds/$t" \
      > "$logs/$t.log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$logs/$t.log" | tail -1)
  found=$(ls "$artifacts" 2>/dev/null | grep -c "^$t-" || true)
  echo "fuzz $t: ${runs:-0} executions in ${secs:-?} s, $(ls "$corpus/$t" | wc -l) corpus entries, exit $rc, $found artifact(s)"
  if [ $rc -ne 0 ]; then
    failed=1
    grep -m1 -E "ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error:" "$logs/$t.log" | sed 's/^/    /'
  fi
done
exit $failed
