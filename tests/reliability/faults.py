#!/usr/bin/env python3
"""Fault injection through the real CLI and ComfyUI: every case must end with a typed error
(exit 1/2) or a clean stop (exit 130), never a death by signal; keep the context at the last good
iteration; leave no temporary files; and, where a checkpoint exists, resume to the same result as
an uninterrupted run.

Cases (--fast runs the first four and a third of the bad inputs; --ci runs raise, the two
timeouts of hang, and the truncated-JSON and wrong-port-type bad inputs):
  raise        a node raises at iteration 4 of 10: exit 1, "execution error [iteration 4",
               checkpoint at next_iteration 4 holding counter 4
  hang         the built-in per-iteration timeout: a node hangs at iteration 2 of 6.
               Interruptible (like a sampler) with --iteration-timeout 3: exit 1, "timeout
               [iteration 2 ... node 3 (DiscomfortTestHangAt)]" within 3 s + 2 s of the iteration's
               start. Deaf to interrupts (pure-Python sleep) with --iteration-timeout 2
               --interrupt-grace 2: exit 1 "ignored the interrupt" within 2 + 2 + 2 s although the
               node still sleeps (the process does not wedge). Both: checkpoint at next_iteration 2
               holding counter 2, nothing left in TMPDIR. Plus the outside watchdog: SIGTERM
               while an interruptible node runs gives exit 130 within 10 s
  signals      SIGINT / SIGTERM at random moments of a checkpointed run, half during start-up,
               half among the iterations; each exits 130 or finishes; the checkpoint's counter
               equals its next_iteration and resumes to counter = N
  kill9        SIGKILL while a checkpoint's snapshot is being written (its staging folder
               exists), then `discomfort resume`: counter and the final image equal an
               uninterrupted run's
  diskfull     a 1 MiB tmpfs as TMPDIR with every tensor spilled (--max-ram-gb 0), and a
               checkpoint folder on a 256 KiB tmpfs: a typed error or a correct finish
               (root only; skipped where mount is refused)
  badinput     malformed workflows, plans, checkpoints and images (see BAD_INPUTS)

Usage: faults.py [--bin build/release/cli/discomfort] [--work DIR] [--fast | --ci] [--seed N]
Prints one line per case (SURVIVED, FAILED, or SKIPPED with the reason it could not run) and a
summary counting the three apart. Exit 1 when a case failed; exit 77 when no case ran at all (every
case skipped), so a run that tested nothing never reads as a pass; else 0.
"""
import argparse
import glob
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
TEST_NODES = os.path.join(ROOT, "tests/bridge/nodes/discomfort_test_nodes.py")
FEEDBACK = os.path.join(ROOT, "examples/feedback_loop/feedback.json")
SEED_PNG = os.path.join(ROOT, "examples/feedback_loop/seed.png")
WF = os.path.join(HERE, "workflows")


def default_signals():
    # A shell without job control starts background jobs with SIGINT ignored, and children inherit
    # that: give the CLI the disposition a terminal or a farm's supervisor would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


SURVIVED, FAILED, SKIPPED = "survived", "failed", "skipped"
# The automake/ctest convention for "nothing could be tested" (SKIP_RETURN_CODE).
EXIT_NOTHING_RAN = 77


class Runner:
    def __init__(self, binary, work):
        self.bin, self.work = binary, work
        self.results = []  # (case, SURVIVED | FAILED | SKIPPED, detail or the reason for skipping)
        self.injected = 0

    def tmpdir(self, name):
        d = os.path.join(self.work, name, "tmp")
        shutil.rmtree(os.path.dirname(d), ignore_errors=True)
        os.makedirs(d)
        return d

    def env(self, tmp, **extra):
        return dict(os.environ, TMPDIR=tmp, **extra)

    def run(self, args, tmp, timeout=240, **extra):
        p = subprocess.run([self.bin] + args, capture_output=True, text=True, errors="replace",
                           env=self.env(tmp, **extra), timeout=timeout, preexec_fn=default_signals)
        return p.returncode, p.stdout, p.stderr

    def start(self, args, tmp, name, **extra):
        out = open(os.path.join(self.work, name, "stdout.txt"), "w")
        err = open(os.path.join(self.work, name, "stderr.txt"), "w")
        return subprocess.Popen([self.bin] + args, stdout=out, stderr=err, env=self.env(tmp, **extra),
                                preexec_fn=default_signals)

    def record(self, case, ok, detail):
        outcome = SURVIVED if ok else FAILED
        self.results.append((case, outcome, detail))
        print(f"fault {case}: {outcome.upper()} ({detail})", flush=True)

    def skip(self, case, reason):
        """A case that could not be run here: neither survived nor failed."""
        self.results.append((case, SKIPPED, reason))
        print(f"fault {case}: SKIPPED ({reason})", flush=True)


def summarize(results, injected):
    """The summary lines and the exit status of a run's results."""
    counts = {k: sum(1 for _, outcome, _ in results if outcome == k) for k in (SURVIVED, FAILED, SKIPPED)}
    lines = [f"faults: {injected} injected in {len(results)} cases: {counts[SURVIVED]} survived, "
             f"{counts[FAILED]} failed, {counts[SKIPPED]} skipped"]
    lines += [f"  FAILED: {case}" for case, outcome, _ in results if outcome == FAILED]
    lines += [f"  skipped: {case} ({reason})" for case, outcome, reason in results if outcome == SKIPPED]
    if counts[FAILED]:
        return lines, 1
    if counts[SURVIVED] == 0:
        lines.append("faults: no case ran, nothing was tested")
        return lines, EXIT_NOTHING_RAN
    return lines, 0


def leftovers(tmp):
    # torch creates its shared compile cache (torchinductor_<user>) in TMPDIR: not ours, kept.
    return sorted(n for n in os.listdir(tmp) if not n.startswith("torchinductor_"))


def comparable(summary):
    """The --json summary without file paths (those name each run's own output folder)."""
    if not isinstance(summary, dict):
        return summary
    return {k: ({kk: vv for kk, vv in v.items() if kk != "files"} if isinstance(v, dict) else v)
            for k, v in summary.items()}


def last_json(stdout):
    lines = [l for l in stdout.strip().splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def checkpoint_counter(ck):
    """next_iteration and the counter value of a checkpoint folder (None when absent)."""
    try:
        with open(os.path.join(ck, "run.json")) as f:
            run = json.load(f)
        nxt = run["next_iteration"]
        with open(os.path.join(ck, run.get("context", "context"), "manifest.json")) as f:
            entries = json.load(f)["entries"]
    except (FileNotFoundError, KeyError, ValueError):
        return None, None
    values = {e["key"]: e.get("value") for e in entries}
    return nxt, values.get("counter")


def wait_for(pred, timeout, step=0.005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def count_events(path, event):
    try:
        with open(path, "rb") as f:
            return f.read().count(f'"event":"{event}"'.encode())
    except FileNotFoundError:
        return 0


# ---- cases ------------------------------------------------------------------------------------

def case_raise(r):
    tmp = r.tmpdir("raise")
    ck = os.path.join(r.work, "raise", "ck")
    rc, out, err = r.run([ "run", os.path.join(WF, "fail_at.json"), "-n", "10", "--set", "counter=0",
                          "--nodes", TEST_NODES, "--checkpoint-every", "1", "--checkpoint-dir", ck], tmp)
    r.injected += 1
    nxt, counter = checkpoint_counter(ck)
    ok = (rc == 1 and "execution error [iteration 4" in err and "DiscomfortTestFailAt" in err
          and nxt == 4 and counter == 4 and not leftovers(tmp))
    r.record("raise", ok, f"exit {rc}, checkpoint next_iteration={nxt} counter={counter}, "
                          f"left in TMPDIR: {leftovers(tmp)}")


def iteration_start_time(events, iteration):
    try:
        with open(events) as f:
            for line in f:
                e = json.loads(line)
                if e.get("event") == "iteration_start" and e.get("iteration") == iteration:
                    return e["time"]
    except (FileNotFoundError, ValueError):
        pass
    return None


def case_timeout(r, key, name, workflow, limit, grace, expect):
    """--iteration-timeout on a node hanging at iteration 2: a typed error soon after the limit."""
    tmp = r.tmpdir(key)
    ck = os.path.join(r.work, key, "ck")
    events = os.path.join(r.work, key, "events.jsonl")
    rc, out, err = r.run(["run", os.path.join(WF, workflow), "-n", "6", "--set", "counter=0", "--nodes", TEST_NODES,
                          "--iteration-timeout", str(limit), "--interrupt-grace", str(grace),
                          "--checkpoint-every", "1", "--checkpoint-dir", ck, "--events", events], tmp, timeout=240)
    ended = time.time()
    r.injected += 1
    started = iteration_start_time(events, 2)
    late = ended - started - limit if started else None
    nxt, counter = checkpoint_counter(ck)
    msg = next((l for l in err.splitlines() if "timeout [iteration" in l), "")
    ok = (rc == 1 and "timeout [iteration 2" in msg and "DiscomfortTestHangAt" in msg and expect in msg
          and late is not None and late < grace + 2 and nxt == 2 and counter == 2 and not leftovers(tmp))
    r.record(name, ok, f"exit {rc} {late if late is None else round(late, 1)} s after the {limit} s limit; "
                       f"checkpoint next_iteration={nxt} counter={counter}; left in TMPDIR: {leftovers(tmp)}; "
                       f"{msg[:200]}")


def case_hang(r, watchdog=True):
    case_timeout(r, "timeout", "hang timeout (interruptible node)", "hang_at.json", 3, 10, "ComfyUI was interrupted in node 3")
    case_timeout(r, "timeout_deaf", "hang timeout (node ignoring the interrupt)", "hang_deaf.json", 2, 2, "ignored the interrupt")
    if not watchdog:
        return
    tmp = r.tmpdir("hang")
    events = os.path.join(r.work, "hang", "events.jsonl")
    p = r.start(["run", os.path.join(WF, "hang.json"), "-n", "3", "--set", "counter=0", "--nodes", TEST_NODES,
                 "--events", events], tmp, "hang")
    started = wait_for(lambda: b"DiscomfortTestSleep" in open(events, "rb").read() if os.path.exists(events) else False, 180, 0.05)
    time.sleep(1.0)
    sent = time.monotonic()
    p.send_signal(signal.SIGTERM)
    r.injected += 1
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "hung"
    took = time.monotonic() - sent
    ok = started and rc == 130 and took < 10 and not leftovers(tmp)
    r.record("hang, SIGTERM from a watchdog", ok, f"node running: {started}; SIGTERM -> exit {rc} after {took:.1f} s; "
                         f"left in TMPDIR: {leftovers(tmp)}")


def case_signals(r, trials, rng):
    n = 12
    expected = {"counter": n}
    for t in range(trials):
        name = f"signals{t}"
        tmp = r.tmpdir(name)
        ck = os.path.join(r.work, name, "ck")
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        events = os.path.join(r.work, name, "events.jsonl")
        p = r.start(["run", os.path.join(WF, "counter.json"), "-n", str(n), "--set", "counter=0",
                     "--nodes", TEST_NODES, "--checkpoint-every", "1", "--checkpoint-dir", ck, "--json",
                     "--events", events], tmp, name)
        started = time.monotonic()
        if t % 2 == 0:  # during start-up (ComfyUI's import) or whenever it lands
            time.sleep(rng.uniform(0.5, 8.0))
        else:  # among the iterations: after the first one, at a random instant
            wait_for(lambda: count_events(events, "iteration_done") >= 1, 180, 0.01)
            time.sleep(rng.uniform(0.0, 0.8))
        delay = time.monotonic() - started
        p.send_signal(sig)
        r.injected += 1
        try:
            rc = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "hung"
        nxt, counter = checkpoint_counter(ck)
        done = count_events(events, "iteration_done")
        detail = (f"{signal.Signals(sig).name} at {delay:.1f} s ({done} iterations done) -> exit {rc}, "
                  f"checkpoint next_iteration/counter {nxt}/{counter}")
        ok = rc in (0, 130) and not leftovers(tmp) and (nxt is None or counter == nxt)
        if ok and rc == 130 and nxt is not None:
            rc2, out2, err2 = r.run(["resume", ck, "--json"], tmp)
            final = last_json(out2)
            detail += f", resumed: exit {rc2} {final}"
            ok = rc2 == 0 and final == expected and not leftovers(tmp)
        if not ok:
            detail += f", left in TMPDIR: {leftovers(tmp)}"
        r.record(f"signal[{t}]", ok, detail)


def case_kill9(r, trials, rng):
    n = 30
    base = os.path.join(r.work, "kill9-reference")
    tmp = r.tmpdir("kill9-reference")
    ref_out = os.path.join(base, "out")
    args = ["--set", "counter=0", "--set", "frame=@" + SEED_PNG, "--nodes", TEST_NODES, "--json"]
    wfs = [os.path.join(WF, "counter.json"), FEEDBACK]
    rc, out, err = r.run(["run"] + wfs + ["-n", str(n), "--out", ref_out] + args, tmp)
    reference = last_json(out)
    ref_png = sorted(glob.glob(os.path.join(ref_out, "frame_*.png")))
    if rc != 0 or not reference or not ref_png:
        r.record("kill9", False, f"reference run failed: exit {rc} {err[-300:]}")
        return
    with open(ref_png[-1], "rb") as f:
        ref_bytes = f.read()
    for t in range(trials):
        name = f"kill9-{t}"
        tmp = r.tmpdir(name)
        ck = os.path.join(r.work, name, "ck")
        out_dir = os.path.join(r.work, name, "out")
        skip = rng.randint(1, 10)  # let this many checkpoints complete first
        p = r.start(["run"] + wfs + ["-n", str(n), "--out", out_dir, "--checkpoint-every", "1",
                                     "--checkpoint-dir", ck] + args, tmp, name)
        seen, hit = 0, False
        end = time.monotonic() + 240
        staging_was = set()
        while p.poll() is None and time.monotonic() < end:
            staging = set(glob.glob(os.path.join(ck, "context*.tmp-*")))
            if staging - staging_was:
                seen += 1
                staging_was = staging
                if seen > skip:
                    p.kill()
                    hit = True
                    break
            elif not staging:
                staging_was = set()
            time.sleep(0.0005)
        p.wait()
        r.injected += 1
        nxt, counter = checkpoint_counter(ck)
        detail = f"SIGKILL {'inside snapshot #' + str(seen) if hit else 'missed'}; checkpoint {nxt}/{counter}"
        rc2, out2, err2 = r.run(["resume", ck, "--json"], tmp)
        final = last_json(out2)
        pngs = sorted(glob.glob(os.path.join(out_dir, "frame_*.png")))
        same_png = bool(pngs) and open(pngs[-1], "rb").read() == ref_bytes
        left = leftovers(tmp)
        same = comparable(final) == comparable(reference) and same_png
        stale = glob.glob(os.path.join(ck, "*.tmp-*"))
        detail += (f"; resumed: exit {rc2}, {'equal to' if same else 'DIFFERENT from'} the uninterrupted run "
                   f"(counter {final and final.get('counter')}, last PNG {'identical' if same_png else 'differs'}); "
                   f"left in TMPDIR: {left}, staging left in the checkpoint: {[os.path.basename(x) for x in stale]}")
        ok = hit and counter == nxt and rc2 == 0 and same and not left and not stale
        r.record(f"kill9[{t}]", ok, detail)


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True, text=True)
    return p.returncode == 0


def case_diskfull(r):
    if os.geteuid() != 0:
        r.skip("diskfull[spill]", "needs root to mount a small tmpfs")
        r.skip("diskfull[checkpoint]", "needs root to mount a small tmpfs")
        return
    base = os.path.join(r.work, "diskfull")
    shutil.rmtree(base, ignore_errors=True)
    small = os.path.join(base, "small")
    if not mount_tmpfs(small, "1m"):
        r.skip("diskfull[spill]", "mount of a 1 MiB tmpfs refused")
        r.skip("diskfull[checkpoint]", "mount of a 256 KiB tmpfs not tried: the first mount was refused")
        return
    try:
        rc, out, err = r.run(["run", FEEDBACK, "-n", "6", "--set", "frame=@" + SEED_PNG, "--max-ram-gb", "0",
                              "--json"], small, DISCOMFORT_FORCE_SPILL="1")
        r.injected += 1
        final = last_json(out)
        typed = rc == 1 and ("no space" in err.lower() or "nospace" in err.lower())
        fine = rc == 0 and final and final.get("frame", {}).get("shape") == [1, 256, 256, 3]
        note = [l for l in err.splitlines() if "space" in l.lower()][:1]
        r.record("diskfull[spill]", (typed or fine) and not leftovers(small),
                 f"exit {rc}, {'finished' if fine else 'typed error' if typed else 'neither'}; {note}; left: {leftovers(small)}")
    finally:
        subprocess.run(["umount", small])
    tmp = r.tmpdir("diskfull-ck")
    ck = os.path.join(r.work, "diskfull-ck", "ck")
    if not mount_tmpfs(ck, "256k"):
        r.skip("diskfull[checkpoint]", "mount of a 256 KiB tmpfs refused")
        return
    try:
        rc, out, err = r.run(["run", FEEDBACK, "-n", "3", "--set", "frame=@" + SEED_PNG, "--checkpoint-every", "1",
                              "--checkpoint-dir", ck], tmp)
        r.injected += 1
        line = [l for l in err.splitlines() if "checkpoint" in l.lower() or "space" in l.lower()][:1]
        ok = rc in (0, 1) and "space" in err.lower() and not leftovers(tmp) and not glob.glob(os.path.join(ck, "context*.tmp-*"))
        r.record("diskfull[checkpoint]", ok, f"exit {rc}; {line}; staging left: {glob.glob(os.path.join(ck, 'context*.tmp-*'))}")
    finally:
        subprocess.run(["umount", ck])


# ---- bad input ----------------------------------------------------------------------------------

def png_with_size(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


EXPECTED_MESSAGES = {
    "port fed the wrong type": ["type mismatch [iteration 0", "port 'frame'", "expects IMAGE", "INT 42"],
}


def bad_inputs(d):
    """(name, argv tail, files to write) — each must fail with exit 1 or 2 and a [discomfort] line."""
    with open(FEEDBACK) as f:
        fb = f.read()
    files = {
        "truncated.json": fb[: len(fb) // 2],
        "empty.json": "",
        "not_object.json": "[1, 2, 3]",
        "unknown_node.json": json.dumps({"1": {"class_type": "NoSuchNodeType", "inputs": {}}}),
        "cycle.json": json.dumps({"1": {"class_type": "ImageBlur", "inputs": {"image": ["2", 0], "blur_radius": 1, "sigma": 1.0}},
                                  "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}}}),
        "huge_numbers.json": fb.replace('"blur_radius": 6', '"blur_radius": 123456789012345678901234567890')
                               .replace('"sigma": 3.0', '"sigma": 1e400'),
        "deep.json": "[" * 200000 + "]" * 200000,
        "deep_inputs.json": '{"1": {"class_type": "ImageBlur", "inputs": {"image": ' + "[" * 50000 + "]" * 50000 + "}}}",
        "non_utf8.json": fb.replace('"frame"', '"fr\udcffame"', 1),
        "port_without_inputs.json": json.dumps({"1": {"class_type": "DiscomfortPort"},
                                                "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}}}),
        "wrong_port_type.json": fb,  # with --set frame=42 (an INT where an IMAGE is needed)
        "link_to_missing.json": fb.replace('["1", 0]', '["99", 0]', 1),
        "negative_slot.json": fb.replace('["1", 0]', '["1", -3]', 1),
        "save_outside.json": json.dumps(dict(json.loads(fb), **{"7": {"class_type": "SaveImage", "inputs": {
            "images": ["5", 0], "filename_prefix": "../../../../../../../../tmp/discomfort_escape_probe"}}})),
        "plan_bad_types.json": json.dumps({"max_iterations": 2, "stages": [{"workflows": ["feedback.json"], "on_error": 8}]}),
        "plan_huge.json": json.dumps({"max_iterations": 10 ** 30, "stages": [{"workflows": ["feedback.json"]}]}),
        "huge.png": png_with_size(1_000_000, 1_000_000),
        "zero.png": png_with_size(0, 0),
        "garbage.png": "not a png at all",
        "ck_bad/run.json": json.dumps({"discomfort_checkpoint": 1, "workflows": "not-a-list", "next_iteration": 1}),
        "ck_bad_manifest/run.json": json.dumps({"discomfort_checkpoint": 1, "workflows": [FEEDBACK], "next_iteration": 1}),
        "ck_bad_manifest/context/manifest.json": json.dumps({"format": ["x"], "entries": []}),
    }
    for name, text in files.items():
        path = os.path.join(d, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = "wb" if isinstance(text, bytes) else "w"
        with open(path, mode, **({} if mode == "wb" else {"encoding": "utf-8", "errors": "surrogateescape"})) as f:
            f.write(text)
    shutil.copy(FEEDBACK, os.path.join(d, "feedback.json"))
    p = lambda n: os.path.join(d, n)
    frame = ["--set", "frame=@" + SEED_PNG]
    return [
        ("truncated JSON", ["run", p("truncated.json"), "-n", "1"] + frame),
        ("empty file", ["run", p("empty.json"), "-n", "1"]),
        ("not an object", ["run", p("not_object.json"), "-n", "1"]),
        ("missing file", ["run", p("nope.json"), "-n", "1"]),
        ("unknown node type", ["run", p("unknown_node.json"), "-n", "1"]),
        ("cycle", ["run", p("cycle.json"), "-n", "1"]),
        ("huge numbers", ["run", p("huge_numbers.json"), "-n", "1"] + frame),
        ("200k-deep nesting", ["run", p("deep.json"), "-n", "1"]),
        ("50k-deep input value", ["run", p("deep_inputs.json"), "-n", "1"]),
        ("non-UTF-8 bytes", ["run", p("non_utf8.json"), "-n", "1"] + frame),
        ("port without inputs", ["run", p("port_without_inputs.json"), "-n", "1"]),
        ("port fed the wrong type", ["run", p("wrong_port_type.json"), "-n", "1", "--set", "frame=42"]),
        ("link to a missing node", ["run", p("link_to_missing.json"), "-n", "1"] + frame),
        ("negative output slot", ["run", p("negative_slot.json"), "-n", "1"] + frame),
        ("SaveImage writing outside the output folder", ["run", p("save_outside.json"), "-n", "1"] + frame),
        ("plan with wrong types", ["run", "--plan", p("plan_bad_types.json")] + frame),
        ("plan with 10^30 iterations", ["run", "--plan", p("plan_huge.json")] + frame),
        ("PNG claiming 10^6 x 10^6", ["run", p("feedback.json"), "-n", "1", "--set", "frame=@" + p("huge.png")]),
        ("PNG of 0 x 0", ["run", p("feedback.json"), "-n", "1", "--set", "frame=@" + p("zero.png")]),
        ("not a PNG", ["run", p("feedback.json"), "-n", "1", "--set", "frame=@" + p("garbage.png")]),
        ("negative iterations", ["run", p("feedback.json"), "-n", "-5"] + frame),
        ("checkpoint run.json with wrong types", ["resume", p("ck_bad")]),
        ("checkpoint with a damaged snapshot manifest", ["resume", p("ck_bad_manifest")]),
        ("resume of a missing checkpoint", ["resume", p("no_ck")]),
    ]


CI_BAD_INPUTS = ("truncated JSON", "port fed the wrong type")


def case_badinput(r, fast, ci=False):
    base = os.path.join(r.work, "badinput-files")
    shutil.rmtree(base, ignore_errors=True)
    cases = bad_inputs(base)
    if ci:
        cases = [c for c in cases if c[0] in CI_BAD_INPUTS]
    elif fast:
        cases = [c for i, c in enumerate(cases) if i % 3 == 0 or c[0] in EXPECTED_MESSAGES]
    for i, (label, args) in enumerate(cases):
        tmp = r.tmpdir(f"badinput{i}")  # its own TMPDIR: what one case leaves is charged to it
        started = time.monotonic()
        try:
            rc, out, err = r.run(args, tmp, timeout=180)
        except subprocess.TimeoutExpired:
            rc, err = "timeout", ""
        r.injected += 1
        msg = next((l for l in err.splitlines() if l.startswith("[discomfort]") and
                    ("error" in l or "not found" in l or "invalid" in l or "cycle" in l or "parse" in l
                     or "mismatch" in l)), "")
        if not msg:
            msg = next((l for l in err.splitlines() if l.strip()), "")
        ok = rc in (1, 2) and bool(msg) and not leftovers(tmp)
        if label in EXPECTED_MESSAGES:  # must be caught where it is wrong, not deep inside a node
            ok = ok and all(part in msg for part in EXPECTED_MESSAGES[label])
        left = f"; left in TMPDIR: {leftovers(tmp)}" if leftovers(tmp) else ""
        r.record(f"bad input: {label}", ok, f"exit {rc} in {time.monotonic() - started:.0f} s: {msg[:160]}{left}")
    escaped = glob.glob("/tmp/discomfort_escape_probe*")
    r.record("bad input: nothing written outside the output and temp folders", not escaped, f"found: {escaped}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/release/cli/discomfort"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build/reliability/faults"))
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--ci", action="store_true",
                    help="the CI subset (ctest reliability.faults_ci): raise, the two timeouts, two bad inputs")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--only", help="comma-separated cases: raise,hang,signals,kill9,diskfull,badinput")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    r = Runner(os.path.abspath(args.bin), work)
    print(f"faults: seed {args.seed}", flush=True)
    only = set(args.only.split(",")) if args.only else None
    want = lambda c: only is None or c in only
    if want("raise"):
        case_raise(r)
    # Every case starts ComfyUI (~10 s of CPU): CI keeps what no other ctest entry covers (signals
    # are cli.interrupt_and_resume and cli.signal_during_startup; parse errors the graph suite).
    if want("hang"):
        case_hang(r, watchdog=not args.ci)
    if want("signals") and not args.ci:
        case_signals(r, 2 if args.fast else 6, rng)
    if want("badinput"):
        case_badinput(r, args.fast, ci=args.ci)
    if want("kill9") and not (args.fast or args.ci):
        case_kill9(r, 3, rng)
    if want("diskfull") and not (args.fast or args.ci):
        case_diskfull(r)
    lines, status = summarize(r.results, r.injected)
    print("\n".join(lines), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
