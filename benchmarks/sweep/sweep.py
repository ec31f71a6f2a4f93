"""Sweep: 32 independent points, each a PNG in → the overhead workflow's five nodes → a PNG out,
`discomfort sweep --images` with the pipeline (decode ∥ execute ∥ encode) on and with --no-pipeline.
Modes alternate, repeat by repeat. The time is the sweep's own span from its events (the process
start-up, the same for both modes, is left out), and the outputs of both modes are compared pixel by pixel."""

import glob
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import CLI, REPO, SINGLE_THREAD_ENV, read_png_u8, summarize  # noqa: E402

WORKFLOW = os.path.join(HERE, "sweep.json")


def make_images(folder, count, size):
    import numpy as np
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    src = Image.open(os.path.join(REPO, "examples", "feedback_loop", "seed.png")).convert("RGB").resize((size, size))
    base = np.asarray(src)
    for i in range(count):  # every point a different image: rolled and tinted copies of the seed
        a = np.roll(base, shift=(i * 7, i * 13), axis=(0, 1)).astype(np.int32)
        a[..., i % 3] = (a[..., i % 3] + 9 * i) % 256
        Image.fromarray(a.astype(np.uint8)).save(os.path.join(folder, f"img_{i:03d}.png"))


def one(images, out, pipeline, env, count):
    """Runs one sweep; its events carry no timestamps, so this process watches the events file and
    stamps each point_done line as it appears (polled every 2 ms). Span = first to last point done,
    scaled by count / (count - 1) to stand for all the points; process start-up is left out."""
    events = os.path.join(out, "events.jsonl")
    os.makedirs(out, exist_ok=True)
    cmd = [CLI, "sweep", WORKFLOW, "--images", images, "--image-port", "image", "--out", out, "--events", events,
           "--cpu", "--work-dir", os.path.join(out, "comfy")]
    if not pipeline:
        cmd.append("--no-pipeline")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stamps = []
    seen = 0
    deadline = time.monotonic() + 600
    while True:
        done = proc.poll() is not None
        if os.path.exists(events):
            with open(events) as f:
                lines = f.read().count("\n")
            now = time.perf_counter()
            stamps.extend([now] * (lines - seen))
            seen = lines
        if done:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError("sweep did not finish in 600 s")
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sweep exited with {proc.returncode}")
    ev = [json.loads(line) for line in open(events)]
    points = [e for e in ev if e["event"] == "point_done"]
    assert len(points) == count and all(e["ok"] for e in points), len(points)
    span = (stamps[-1] - stamps[0]) * count / (count - 1)
    return {"span_s": span, "process_wall_s": wall, "point_seconds_sum": sum(e["seconds"] for e in points)}


def outputs(out):
    return sorted(glob.glob(os.path.join(out, "point_*", "*.png")))


def run(work, count=32, size=512, repeats=2, threads=None, log=lambda m: print(m, file=sys.stderr, flush=True)):
    images = os.path.join(work, "images")
    make_images(images, count, size)
    env = dict(os.environ) if threads is None else dict(os.environ, **SINGLE_THREAD_ENV)
    raw = {"pipeline": [], "no_pipeline": []}
    last = {}
    for r in range(repeats):
        for mode in ("pipeline", "no_pipeline"):
            out = os.path.join(work, f"{mode}_{r}")
            raw[mode].append(one(images, out, mode == "pipeline", env, count))
            last[mode] = out
            log(f"sweep: repeat {r + 1}/{repeats} {mode}: {raw[mode][-1]['span_s']:.2f} s")
    a, b = outputs(last["pipeline"]), outputs(last["no_pipeline"])
    assert len(a) == count and len(b) == count, (len(a), len(b))
    diff = max(int(abs(read_png_u8(x).astype(int) - read_png_u8(y).astype(int)).max()) for x, y in zip(a, b))
    res = {"points": count, "image": f"{size}x{size} RGB PNG", "repeats": repeats, "modes": {}}
    for mode, runs in raw.items():
        res["modes"][mode] = {"span_s": summarize([x["span_s"] for x in runs]),
                              "process_wall_s": summarize([x["process_wall_s"] for x in runs])["median"],
                              "point_seconds_sum": summarize([x["point_seconds_sum"] for x in runs])["median"]}
    res["speedup"] = res["modes"]["no_pipeline"]["span_s"]["median"] / res["modes"]["pipeline"]["span_s"]["median"]
    res["output_check"] = {"compared": "every point's PNG, pipeline vs no pipeline", "max_abs_diff": diff,
                           "equal": diff == 0}
    return res


if __name__ == "__main__":
    import tempfile
    print(json.dumps(run(tempfile.mkdtemp(prefix="bench-sweep-"), repeats=1), indent=1))
