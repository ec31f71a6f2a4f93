"""The extension inside a real ComfyUI server (a subprocess on a loopback port, its base directory a
temporary folder whose custom_nodes/ links this repository: the user's checkout is not altered).
A prompt with the loop-executor node is queued through /prompt and its result read from /history."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import REPO, TEST_NODES, counter_workflow
from openai_stub import KEY, OpenAIStub

LIVE_SECRET = "live-secret-" + uuid.uuid4().hex


def _comfyui_path():
    path = os.environ.get("COMFYUI_PATH") or os.path.expanduser("~/ComfyUI")
    return path if os.path.isfile(os.path.join(path, "main.py")) else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


@contextlib.contextmanager
def comfy_server(frontend=False, env=None):
    """A ComfyUI server on a free loopback port, its base directory a temporary folder with this
    repository (and the test nodes) linked into custom_nodes/. Without `frontend` an empty web folder
    replaces the frontend package (the HTTP API needs none). Yields (url, base)."""
    comfy = _comfyui_path()
    if comfy is None:
        pytest.skip("no ComfyUI checkout with main.py")
    base = tempfile.mkdtemp(prefix="discomfort-server-")
    os.makedirs(os.path.join(base, "custom_nodes"))
    os.symlink(REPO, os.path.join(base, "custom_nodes", "discomfort"))
    os.symlink(TEST_NODES, os.path.join(base, "custom_nodes", "discomfort_test_nodes.py"))
    port = _free_port()
    args = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", base,
            "--disable-api-nodes"]
    if not frontend:
        os.makedirs(os.path.join(base, "web"))
        args += ["--front-end-root", os.path.join(base, "web")]
    log = open(os.path.join(base, "server.log"), "w")
    proc = subprocess.Popen(args, cwd=comfy, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited ({proc.returncode}); log: {open(log.name).read()[-3000:]}")
            try:
                _get(url + "/object_info/DiscomfortPort")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("ComfyUI did not start in 120 s")
                time.sleep(0.5)
        yield url, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(base, ignore_errors=True)
    # The loop executor inside the server used the server's folders: none of its own were left.
    stray = os.path.join(tempfile.gettempdir(), f"discomfort-{proc.pid}")
    assert not os.path.exists(stray), f"the server left {stray} behind"


@pytest.fixture(scope="module")
def server():
    # The describer's key is in the server's environment, as an operator would set it, next to a secret
    # no workflow may send; its endpoints come from the server's user folder only.
    with comfy_server(env={"DISCOMFORT_TEST_KEY": KEY, "DISCOMFORT_LIVE_SECRET": LIVE_SECRET,
                           "DISCOMFORT_DESCRIBER_ENDPOINTS": ""}) as running:
        yield running


def _queue_and_wait(url, prompt, timeout=120):
    body = json.dumps({"prompt": prompt}).encode()
    req = urllib.request.Request(url + "/prompt", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        prompt_id = json.load(r)["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = _get(f"{url}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
            return history[prompt_id]
        time.sleep(0.2)
    raise TimeoutError(f"prompt {prompt_id} did not finish")


def test_nodes_are_served(server):
    url, _ = server
    info = _get(url + "/object_info")
    for name in ("DiscomfortPort", "DiscomfortLoopExecutor", "DiscomfortTestRunner", "DiscomfortFolderImageLoader",
                 "DiscomfortImageDescriber"):
        assert name in info, name
    assert info["DiscomfortLoopExecutor"]["category"] == "discomfort"
    assert "NOT BUILT" not in info["DiscomfortLoopExecutor"]["description"]


def test_loop_executor_prompt_through_the_http_api(server):
    url, base = server
    path = os.path.join(base, "counter.json")
    with open(path, "w") as f:
        json.dump(counter_workflow(3), f)
    prompt = {
        "10": {"class_type": "DiscomfortLoopExecutor",
               "inputs": {"workflow_paths": path, "iterations": 4, "initial_inputs": "counter: 5",
                          "return_port": "counter"}},
        # The host goes on with the loop's result after the nested executor finished.
        "11": {"class_type": "DiscomfortTestAdd", "inputs": {"value": ["10", 0], "amount": 1000}},
        "12": {"class_type": "DiscomfortLoopExecutor",
               "inputs": {"workflow_paths": path, "iterations": 1, "initial_inputs": "",
                          "input_value": ["11", 0], "input_port": "counter"}},
    }
    entry = _queue_and_wait(url, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert json.loads(entry["outputs"]["10"]["text"][0]) == {"counter": 17}
    assert json.loads(entry["outputs"]["12"]["text"][0]) == {"counter": 1020}


def test_loop_executor_errors_reach_the_history(server):
    url, base = server
    prompt = {"1": {"class_type": "DiscomfortLoopExecutor",
                    "inputs": {"workflow_paths": os.path.join(base, "missing.json"), "iterations": 2,
                               "initial_inputs": ""}}}
    entry = _queue_and_wait(url, prompt)
    assert entry["status"]["status_str"] == "error"
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert errors and "missing.json" in errors[0]["exception_message"]


def test_test_runner_prompt_through_the_http_api(server):
    url, base = server
    counter = os.path.join(base, "counter.json")
    with open(counter, "w") as f:
        json.dump(counter_workflow(3), f)
    prompt = {
        "1": {"class_type": "DiscomfortTestRunner",
              "inputs": {"workflow_json": counter, "max_iterations": 2, "unique_id_input1": "counter", "input1": 4,
                         "unique_id_output1": "counter",
                         **{f"unique_id_input{i}": "" for i in range(2, 6)},
                         **{f"unique_id_output{i}": "" for i in range(2, 6)}}},
        # An output node shows the runner's output1 (the loop executor's summary text).
        "2": {"class_type": "DiscomfortLoopExecutor",
              "inputs": {"workflow_paths": counter, "iterations": 1, "initial_inputs": "",
                         "input_value": ["1", 0], "input_port": "counter"}},
    }
    entry = _queue_and_wait(url, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert json.loads(entry["outputs"]["2"]["text"][0]) == {"counter": 4 + 3 * 2 + 3}


def _describer_prompt(base_url, api_key_env):
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 24, "height": 16, "batch_size": 2, "color": 0x336699}},
        "2": {"class_type": "DiscomfortImageDescriber",
              "inputs": {"images": ["1", 0], "prompt": "describe", "model": "vision-1", "base_url": base_url,
                         "api_key_env": api_key_env, "max_tokens": 50, "timeout": 30.0}},
    }


def test_image_describer_sends_only_what_the_operator_configured(server):
    url, base = server
    settings = os.path.join(base, "user", "discomfort", "describer.json")
    with OpenAIStub() as allowed, OpenAIStub(key=LIVE_SECRET) as other:
        os.makedirs(os.path.dirname(settings), exist_ok=True)
        with open(settings, "w") as f:
            json.dump({"endpoints": [{"base_url": allowed.base_url, "api_key_env": "DISCOMFORT_TEST_KEY"}]}, f)
        # The operator's endpoint with the key configured for it (an empty api_key_env selects it).
        entry = _queue_and_wait(url, _describer_prompt(allowed.base_url + "/chat/completions", ""))
        assert entry["status"]["status_str"] == "success", entry["status"]
        assert allowed.problems == [] and len(allowed.requests) == 2
        assert [h.get("Authorization") for _, _, h, _ in allowed.received] == [f"Bearer {KEY}"] * 2
        assert allowed.requests[0]["pixel"] == (0x33, 0x66, 0x99) and allowed.requests[0]["image_size"] == (24, 16)
        assert entry["outputs"]["2"]["text"] == ["an image of 24x16 (describe)"] * 2

        # A workflow asking for another variable, or another endpoint (which would accept the secret).
        for base_url, api_key_env, names in ((allowed.base_url, "DISCOMFORT_LIVE_SECRET", "DISCOMFORT_LIVE_SECRET"),
                                             (other.base_url, "DISCOMFORT_LIVE_SECRET", other.base_url)):
            entry = _queue_and_wait(url, _describer_prompt(base_url, api_key_env))
            assert entry["status"]["status_str"] == "error"
            (error,) = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
            assert error["node_type"] == "DiscomfortImageDescriber" and error["exception_type"] == "PermissionError"
            message = error["exception_message"]
            assert message.startswith("DiscomfortImageDescriber: ") and names in message, message
            assert settings in message and "DISCOMFORT_DESCRIBER_ENDPOINTS" in message and "nothing was sent" in message
            assert LIVE_SECRET not in json.dumps(entry)
        assert len(allowed.received) == 2 and other.received == []
        assert LIVE_SECRET not in allowed.seen()

    # A web client cannot write the settings file through ComfyUI's user-data API.
    before = open(settings).read()
    for name in ("..%2Fdiscomfort%2Fdescriber.json", "%2E%2E%2Fdiscomfort%2Fdescriber.json"):
        req = urllib.request.Request(f"{url}/userdata/{name}?overwrite=true", data=b'{"endpoints": []}',
                                     method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code in (400, 403, 404), refused.value.code
    assert open(settings).read() == before
