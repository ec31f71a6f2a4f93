"""Shared helpers for the benchmark scripts: paths, machine description, statistics, image checks.

Only the standard library, numpy and PIL are imported here, so every contender's subprocess can use it
without pulling in torch or ComfyUI before it means to."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "benchmarks")
# BENCH_BUILD_DIR: another build of this checkout (default build/release, what scripts/setup builds).
BUILD = os.path.abspath(os.environ.get("BENCH_BUILD_DIR") or os.path.join(REPO, "build", "release"))
CLI = os.path.join(BUILD, "cli", "discomfort")
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
PYPKG = os.path.join(BUILD, "python")
FEEDBACK = os.path.join(REPO, "examples", "feedback_loop", "feedback.json")
# BENCH_DEVICE=cuda runs ComfyUI on the GPU in every contender (benchmarks/gpu/device_check.sh);
# BENCH_GPU_ONLY=1 adds ComfyUI's --gpu-only, so images stay on the device between nodes.
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")
ON_CPU = DEVICE == "cpu"
GPU_ONLY = not ON_CPU and os.environ.get("BENCH_GPU_ONLY", "0") not in ("", "0")
# Loaded as extra nodes by the embedded contenders: sets --gpu-only where no flag reaches ComfyUI.
GPU_ONLY_NODES = os.path.join(BENCH, "gpu", "gpu_only_nodes.py")


def extra_nodes() -> list:
    """Node files the Discomfort Python package loads (extra_nodes=) for the device mode."""
    return [GPU_ONLY_NODES] if GPU_ONLY else []


def cli_device_args() -> list:
    """The Discomfort CLI's flags for the device mode."""
    return ["--cpu"] if ON_CPU else [arg for path in extra_nodes() for arg in ("--nodes", path)]


def server_device_args() -> list:
    """ComfyUI main.py's flags for the device mode (the nested server)."""
    return ["--cpu"] if ON_CPU else (["--gpu-only"] if GPU_ONLY else [])


def comfyui_path() -> str:
    path = os.environ.get("COMFYUI_PATH") or os.path.expanduser("~/ComfyUI")
    if not os.path.isfile(os.path.join(path, "main.py")):
        raise SystemExit(f"no ComfyUI checkout with main.py at {path} (set COMFYUI_PATH)")
    return path


def quick() -> bool:
    return os.environ.get("BENCH_QUICK", "0") not in ("", "0")


def percentile(values, q):
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(seconds):
    """median / p95 / mean / min / max / n of a list of durations in seconds."""
    return {"median": statistics.median(seconds), "p95": percentile(seconds, 95), "mean": statistics.fmean(seconds),
            "min": min(seconds), "max": max(seconds), "n": len(seconds)}


def machine() -> dict:
    info = {"cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem = {l.split(":")[0]: int(l.split()[1]) * 1024 for l in f}
        info["ram_total_bytes"] = mem["MemTotal"]
        info["ram_available_bytes_at_start"] = mem["MemAvailable"]
        info["loadavg_at_start"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        info["commit"] = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True,
                                        timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["worktree_dirty"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def load_rgb_float(path):
    """A PNG as float32 [1, H, W, 3] in 0..1 (numpy) — the same decoding every contender uses."""
    import numpy as np
    from PIL import Image
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return a[None]


def to_png_bytes(array):
    """float [1, H, W, 3] (numpy) -> uint8 [H, W, 3] the way ComfyUI's SaveImage and the engine do (clip, truncate)."""
    import numpy as np
    return np.clip(255.0 * np.asarray(array[0], dtype=np.float32), 0, 255).astype(np.uint8)


def read_png_u8(path):
    import numpy as np
    from PIL import Image
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Every contender runs torch with one intra-op thread: the ops here are tiny, and on a 2-core machine
# shared with other work a second thread only adds noise. Set before torch is imported.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def now() -> float:
    return time.perf_counter()


def import_comfyui(work: str):
    """ComfyUI imported as a library, prepared as its main.py would (CPU unless BENCH_DEVICE says
    otherwise, no metadata, extra model paths), its output/temp/input/user folders under `work`, the
    built-in extra nodes loaded (no custom or API nodes). Returns the `nodes` and `execution` modules."""
    import asyncio
    import sys
    sys.path.insert(0, comfyui_path())
    import comfy.options  # noqa: F401  (argument parsing stays off)
    from comfy.cli_args import args
    args.cpu = ON_CPU
    args.gpu_only = GPU_ONLY
    args.disable_metadata = True
    import utils.extra_config  # noqa: F401  (before nodes, as main.py does)
    import folder_paths
    for name, setter in (("output", folder_paths.set_output_directory), ("temp", folder_paths.set_temp_directory),
                         ("input", folder_paths.set_input_directory), ("user", folder_paths.set_user_directory)):
        path = os.path.join(work, name)
        os.makedirs(path, exist_ok=True)
        setter(path)
    import nodes
    import execution
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    return nodes, execution


def run_prompt(execution, executor, workflow: dict, prompt_id: str) -> None:
    """What ComfyUI's server does per queued prompt: validate_prompt, then execute; exits on failure."""
    import asyncio
    prompt = json.loads(json.dumps(workflow))  # validate_prompt mutates its argument
    ok, err, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    if not ok:
        raise SystemExit(f"invalid prompt {prompt_id}: {err} {node_errors}")
    executor.execute(prompt, prompt_id, {}, outputs)
    if not executor.success:
        raise SystemExit(f"prompt {prompt_id} failed: {executor.status_messages[-1:]}")
