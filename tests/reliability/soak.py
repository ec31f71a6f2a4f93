#!/usr/bin/env python3
"""Soak test: thousands of iterations of a real ComfyUI loop in one `discomfort run` process, with
resource samples every N iterations that must stay flat.

The loop is examples/feedback_loop (a 1x256x256x3 float IMAGE carried from each iteration to the
next through ComfyUI's ImageBlur / ImageSharpen / ImageFlip / ImageBlend) plus a probe node
(tests/reliability/nodes). DISCOMFORT_FORCE_SPILL=1 and --max-ram-gb 0 make the context spill the
carried image to a safetensors file at every iteration and map it back for the next one.

Every --every iterations (the iteration timeline comes from the CLI's --events file) it samples
the process: VmRSS and Threads from /proc/PID/status, open descriptors in /proc/PID/fd, the bytes
under the run's TMPDIR (ComfyUI's work folder and the context's spill folder), and the probe's
count of objects tracked by Python's gc and of the interpreter's allocated memory blocks (taken by
the probe at iterations 0, N, 2N, ...; the blocks are reported, not judged). After the warm-up (--warmup iterations) each series must
stay within its tolerance of the first post-warm-up sample:

    RSS          within max(5 % of it, 48 MiB) either way; over the second half of the run a
                 least-squares slope under 8 MiB per 1,000 iterations (the allocator's pools
                 settle in the first half)
    threads      equal
    open fds     at most 4 apart, and the second half's highest no higher than the first half's
                 (a spill file or mapping may be open at the instant of a sample)
    temp bytes   at most 4 MiB (one spilled 768 KiB image at a time, plus ComfyUI's empty folders)
    gc objects   within 1 %

torch's own compile cache folder (torchinductor_<user>, created at import) is not counted.

At the end the run must exit 0 and leave nothing in its TMPDIR. Prints the series as a table and
writes it as JSON to OUT/soak.json. Exit status 1 when a check fails.

Usage: soak.py --bin build/release/cli/discomfort [--iterations 2000] [--every 100] [--out DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIB = 1 << 20


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["Threads"])


def tree_bytes(path):
    total = 0
    for dirpath, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith("torchinductor_")]
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass  # a spill file removed under us
    return total


def count_iterations(events_path, state):
    """Iterations done so far, reading only the new part of the events file."""
    try:
        with open(events_path, "rb") as f:
            f.seek(state["offset"])
            chunk = f.read()
    except FileNotFoundError:
        return state["done"]
    complete = chunk.rfind(b"\n") + 1
    state["offset"] += complete
    state["done"] += chunk[:complete].count(b'"event":"iteration_done"')
    return state["done"]


def slope_per_1000(xs, ys):
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return 1000.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/release/cli/discomfort"))
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--out", default=os.path.join(ROOT, "build/reliability/soak"))
    ap.add_argument("--timeout", type=float, default=1800, help="seconds for the whole run")
    args = ap.parse_args()

    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    tmp = os.path.join(out, "tmp")
    os.makedirs(tmp)
    with open(os.path.join(ROOT, "examples/feedback_loop/feedback.json")) as f:
        prompt = json.load(f)
    prompt["7"] = {"class_type": "DiscomfortSoakProbe", "inputs": {"value": ["5", 0]}}
    wf = os.path.join(out, "feedback_probe.json")
    with open(wf, "w") as f:
        json.dump(prompt, f)
    probe = os.path.join(out, "probe.txt")
    events = os.path.join(out, "events.jsonl")
    env = dict(os.environ, TMPDIR=tmp, DISCOMFORT_FORCE_SPILL="1", DISCOMFORT_SOAK_PROBE=probe,
               DISCOMFORT_SOAK_PROBE_EVERY=str(args.every))
    cmd = [args.bin, "run", wf, "-n", str(args.iterations),
           "--set", "frame=@" + os.path.join(ROOT, "examples/feedback_loop/seed.png"),
           "--max-ram-gb", "0", "--events", events, "--json",
           "--nodes", os.path.join(ROOT, "tests/reliability/nodes/reliability_nodes.py")]
    started = time.monotonic()
    with open(os.path.join(out, "stdout.txt"), "w") as so, open(os.path.join(out, "stderr.txt"), "w") as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=env)
    state = {"offset": 0, "done": 0}
    samples, next_mark = [], args.every
    while proc.poll() is None:
        if time.monotonic() - started > args.timeout:
            proc.kill()
            print(f"soak: no end after {args.timeout} s", file=sys.stderr)
            return 1
        done = count_iterations(events, state)
        if done >= next_mark:
            try:
                rss, threads = proc_status(proc.pid)
                fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            except (FileNotFoundError, ProcessLookupError):
                break
            gc_objects = py_blocks = None
            try:
                with open(probe) as f:
                    _, gc_objects, py_blocks = (int(x) for x in f.read().split())
            except (FileNotFoundError, ValueError):
                pass
            samples.append({"iteration": done, "seconds": round(time.monotonic() - started, 1),
                            "rss_mib": round(rss / MIB, 1), "threads": threads, "fds": fds,
                            "temp_bytes": tree_bytes(tmp), "gc_objects": gc_objects,
                            "py_blocks": py_blocks})
            while next_mark <= done:
                next_mark += args.every
        time.sleep(0.02)
    rc = proc.wait()
    elapsed = time.monotonic() - started
    leftovers = sorted(n for n in os.listdir(tmp) if not n.startswith("torchinductor_"))

    failures = []
    if rc != 0:
        failures.append(f"the run exited {rc} (see {out}/stderr.txt)")
    done = count_iterations(events, state)
    if done != args.iterations:
        failures.append(f"{done} iterations done, expected {args.iterations}")
    if leftovers:
        failures.append(f"left in TMPDIR after exit: {leftovers}")
    steady = [s for s in samples if s["iteration"] >= args.warmup]
    if len(steady) < 3:
        failures.append(f"only {len(steady)} samples after the warm-up")
    summary = {}
    if steady:
        base = steady[0]
        rss = [s["rss_mib"] for s in steady]
        rss_tol = max(0.05 * base["rss_mib"], 48.0)
        second = [s for s in steady if s["iteration"] >= (args.warmup + args.iterations) / 2] or steady
        slope = slope_per_1000([s["iteration"] for s in second], [s["rss_mib"] for s in second])
        summary = {"rss_first_mib": base["rss_mib"], "rss_last_mib": rss[-1], "rss_min_mib": min(rss),
                   "rss_max_mib": max(rss), "rss_slope_second_half_mib_per_1000": round(slope, 2),
                   "threads": sorted({s["threads"] for s in steady}), "fds": sorted({s["fds"] for s in steady}),
                   "temp_bytes_max": max(s["temp_bytes"] for s in steady),
                   "gc_objects": [min(s["gc_objects"] or 0 for s in steady), max(s["gc_objects"] or 0 for s in steady)]}
        if max(abs(r - base["rss_mib"]) for r in rss) > rss_tol:
            failures.append(f"RSS left {base['rss_mib']} MiB ± {rss_tol:.0f}: {rss}")
        if slope > 8.0:
            failures.append(f"RSS grows {slope:.1f} MiB per 1,000 iterations in the second half")
        if any(s["threads"] != base["threads"] for s in steady):
            failures.append(f"thread count changed: {[s['threads'] for s in steady]}")
        fds = [s["fds"] for s in steady]
        first_half = [s["fds"] for s in steady if s not in second] or fds
        if max(fds) - min(fds) > 4 or max(s["fds"] for s in second) > max(first_half):
            failures.append(f"open descriptors grew: {fds}")
        if summary["temp_bytes_max"] > 4 * MIB:
            failures.append(f"temp folder reached {summary['temp_bytes_max']} bytes")
        gcs = [s["gc_objects"] for s in steady if s["gc_objects"] is not None]
        if not gcs:
            failures.append("the probe node reported no gc counts")
        elif max(abs(g - gcs[0]) for g in gcs) > 0.01 * gcs[0]:
            failures.append(f"gc-tracked Python objects changed: {gcs}")

    print(f"soak: {done} iterations in {elapsed:.0f} s, {len(samples)} samples (warm-up {args.warmup})")
    print(f"{'iteration':>9} {'s':>6} {'RSS MiB':>8} {'threads':>7} {'fds':>4} {'temp KiB':>8} {'gc objects':>10} {'py blocks':>9}")
    for s in samples:
        print(f"{s['iteration']:>9} {s['seconds']:>6} {s['rss_mib']:>8} {s['threads']:>7} {s['fds']:>4} "
              f"{s['temp_bytes'] // 1024:>8} {s['gc_objects'] if s['gc_objects'] is not None else '-':>10} "
              f"{s.get('py_blocks') if s.get('py_blocks') is not None else '-':>9}")
    with open(os.path.join(out, "soak.json"), "w") as f:
        json.dump({"iterations": done, "seconds": round(elapsed, 1), "exit": rc, "samples": samples,
                   "summary": summary, "failures": failures}, f, indent=1)
    for msg in failures:
        print("soak FAILED: " + msg)
    if not failures:
        print("soak: flat " + json.dumps(summary))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
