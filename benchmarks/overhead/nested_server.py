"""Contender 2: the nested-server way, as the original Discomfort's ComfyConnector did it.

A stock ComfyUI server (`main.py --cpu` on a loopback port, its own base/output/temp folders under a
temporary folder, an empty front-end folder, API nodes off) is driven over HTTP + websocket: for each
iteration open a websocket, POST /prompt, block on the websocket until `executing` with node None for
that prompt, GET /history/<id>, close. The loop-carried image goes in and out as a base64 torch.save
envelope (server_nodes.py). Skipped in the server's favour: the original's browser-based UI→API
conversion on every run (the prompt here is already API format).

    python nested_server.py --seed seed.png --iterations N --warmup W --repeats R --work DIR --result out.json --final out.npy
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

T_LAUNCH = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import torch  # noqa: E402
import websocket  # noqa: E402  (websocket-client, as the original used)

from common import SINGLE_THREAD_ENV, comfyui_path, load_rgb_float, proc_cpu_seconds, server_device_args  # noqa: E402
from server_nodes import decode, encode  # noqa: E402
from workflow import with_loader_saver  # noqa: E402

REQUEST_TIMEOUT = 30     # seconds, any single HTTP or websocket wait
PROMPT_TIMEOUT = 120     # seconds, one prompt from queueing to its history entry
MAX_WS_MESSAGES = 10000  # per prompt


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as r:
        return json.load(r)


def start_server(work):
    base = os.path.join(work, "base")
    for sub in ("custom_nodes", "web", "output", "temp", "input"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    link = os.path.join(base, "custom_nodes", "bench_envelope_nodes.py")
    if not os.path.exists(link):
        os.symlink(os.path.join(HERE, "server_nodes.py"), link)
    port = free_port()
    log = open(os.path.join(work, "server.log"), "w")
    cmd = [sys.executable, "main.py", *server_device_args(), "--listen", "127.0.0.1", "--port", str(port),
           "--base-directory", base, "--output-directory", os.path.join(base, "output"),
           "--temp-directory", os.path.join(base, "temp"), "--input-directory", os.path.join(base, "input"),
           "--front-end-root", os.path.join(base, "web"), "--disable-api-nodes"]
    proc = subprocess.Popen(cmd, cwd=comfyui_path(), stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **SINGLE_THREAD_ENV))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"ComfyUI server exited ({proc.returncode}); see {log.name}")
        try:
            info = http_json(url + "/object_info/BenchEnvelopeLoad")
            if "BenchEnvelopeLoad" in info:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("ComfyUI server did not come up in 180 s")
        time.sleep(0.1)
    return proc, url, log


def run_workflow(url, prompt):
    """One run, as ComfyConnector.run_workflow: fresh websocket, queue, wait, read the history."""
    client_id = str(uuid.uuid4())
    ws = websocket.create_connection(f"ws://{url[len('http://'):]}/ws?clientId={client_id}", timeout=REQUEST_TIMEOUT)
    try:
        prompt_id = http_json(url + "/prompt", {"prompt": prompt, "client_id": client_id})["prompt_id"]
        deadline = time.monotonic() + PROMPT_TIMEOUT
        for _ in range(MAX_WS_MESSAGES):
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} did not finish in {PROMPT_TIMEOUT} s")
            try:
                msg = ws.recv()
            except websocket.WebSocketTimeoutException:
                # A node may run longer than one wait without a message (a checkpoint load on a busy
                # machine): keep waiting until the prompt's own deadline.
                continue
            if not isinstance(msg, str):
                continue  # binary previews
            m = json.loads(msg)
            if m.get("type") == "execution_error" and m["data"].get("prompt_id") == prompt_id:
                raise RuntimeError(f"execution error: {m['data'].get('exception_message')}")
            if m.get("type") == "executing" and m["data"].get("node") is None and m["data"].get("prompt_id") == prompt_id:
                break
        else:
            raise RuntimeError("too many websocket messages")
        return http_json(f"{url}/history/{prompt_id}")[prompt_id]
    finally:
        ws.close()


def loop(url, seed, n, warmup=0, server_pid=None):
    """warmup + n iterations carrying the image; returns (per-iteration seconds, final tensor, CPU seconds
    per measured iteration of the client and the server together)."""
    frame = seed
    times = []
    cpu0 = None
    for i in range(warmup + n):
        if i == warmup:
            cpu0 = time.process_time() + (proc_cpu_seconds(server_pid) if server_pid else 0.0)
        t0 = time.perf_counter()
        prompt = with_loader_saver("BenchEnvelopeLoad", {"envelope": encode(frame)}, "BenchEnvelopeSave", {})
        entry = run_workflow(url, prompt)
        if entry["status"].get("status_str") != "success":
            raise RuntimeError(f"prompt failed: {entry['status']}")
        saver = [k for k, v in prompt.items() if v["class_type"] == "BenchEnvelopeSave"][0]
        frame = decode(entry["outputs"][saver]["discomfort_output"][0])
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() + (proc_cpu_seconds(server_pid) if server_pid else 0.0) - cpu0) / n if n else 0.0
    return times, frame, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--work", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--final", required=True)
    a = ap.parse_args()

    os.makedirs(a.work, exist_ok=True)
    t0 = time.time()
    proc, url, log = start_server(a.work)
    startup = time.time() - t0
    try:
        seed = torch.from_numpy(load_rgb_float(a.seed))
        runs = []
        for _ in range(a.repeats):
            times, final, cpu = loop(url, seed, a.iterations, a.warmup, proc.pid)  # each repeat starts from the seed
            runs.append({"warmup_s": times[:a.warmup], "iteration_s": times[a.warmup:], "cpu_per_iteration_s": cpu})
        import numpy as np
        np.save(a.final, final.cpu().numpy())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    with open(a.result, "w") as f:
        json.dump({"startup_s": startup, "warmup": a.warmup, "repeats": runs}, f)


if __name__ == "__main__":
    main()
