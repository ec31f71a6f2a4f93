"""The extension inside a real ComfyUI server (a subprocess on a loopback port, its base directory a
temporary folder whose custom_nodes/ links this repository: the user's checkout is not altered).
A prompt with the loop-executor node is queued through /prompt and its result read from /history;
websocket clients (?clientId=) see what the UI would see."""

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
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


def _queue(url, prompt, client_id=None):
    body = {"prompt": prompt, **({"client_id": client_id} if client_id else {})}
    req = urllib.request.Request(url + "/prompt", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["prompt_id"]


def _wait(url, prompt_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = _get(f"{url}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
            return history[prompt_id]
        time.sleep(0.05)
    raise TimeoutError(f"prompt {prompt_id} did not finish")


def _queue_and_wait(url, prompt, timeout=120, client_id=None):
    return _wait(url, _queue(url, prompt, client_id), timeout)


def _save_workflow(base, workflow, stem="wf"):
    """A workflow file in the server's saved-workflows folder (an allowed folder); returns its name."""
    folder = os.path.join(base, "user", "default", "workflows")
    os.makedirs(folder, exist_ok=True)
    name = f"{stem}-{uuid.uuid4().hex[:8]}.json"
    with open(os.path.join(folder, name), "w") as f:
        json.dump(workflow, f)
    return name


class WebSocketClient:
    """A client of the server's websocket, as the UI is: every JSON message and binary event it receives
    is collected on a thread. `preview_metadata`: announces the feature the current frontend announces."""

    def __init__(self, url, preview_metadata=False):
        import websocket
        self.client_id = uuid.uuid4().hex
        self.messages = []  # (type, data)
        self.binary = []    # (event type, payload)
        self._ws = websocket.create_connection(url.replace("http://", "ws://") + f"/ws?clientId={self.client_id}",
                                               timeout=10)
        if preview_metadata:
            self._ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        self._ws.settimeout(None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(lambda m: m[0] == "status")

    def _read(self):
        import websocket
        while True:
            try:
                opcode, data = self._ws.recv_data()
            except (websocket.WebSocketException, OSError):
                return
            if opcode == websocket.ABNF.OPCODE_TEXT:
                message = json.loads(data)
                self.messages.append((message["type"], message["data"]))
            elif opcode == websocket.ABNF.OPCODE_BINARY:
                self.binary.append((struct.unpack(">I", data[:4])[0], data[4:]))

    def wait_for(self, predicate, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(predicate(m) for m in list(self.messages)):
                return
            time.sleep(0.02)
        raise TimeoutError(f"client {self.client_id}: no such message; got {[t for t, _ in self.messages]}")

    def wait_until_done(self, prompt_id, timeout=120):
        """The server's last message for a prompt to its client: `executing` with no node."""
        self.wait_for(lambda m: m[0] == "executing" and m[1].get("node") is None
                      and m[1].get("prompt_id") == prompt_id, timeout)

    def close(self):
        self._ws.close()
        self._reader.join(timeout=5)


@contextlib.contextmanager
def websocket_clients(url, *preview_metadata):
    clients = [WebSocketClient(url, flag) for flag in preview_metadata]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


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
    name = _save_workflow(base, counter_workflow(3), "counter")
    prompt = {
        "10": {"class_type": "DiscomfortLoopExecutor",
               "inputs": {"workflow_paths": name, "iterations": 4, "initial_inputs": "counter: 5",
                          "return_port": "counter"}},
        # The host goes on with the loop's result after the nested executor finished.
        "11": {"class_type": "DiscomfortTestAdd", "inputs": {"value": ["10", 0], "amount": 1000}},
        # A second loop in the same host prompt, by absolute path inside the saved workflows.
        "12": {"class_type": "DiscomfortLoopExecutor",
               "inputs": {"workflow_paths": os.path.join(base, "user", "default", "workflows", name), "iterations": 1,
                          "initial_inputs": "", "input_value": ["11", 0], "input_port": "counter"}},
    }
    entry = _queue_and_wait(url, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert json.loads(entry["outputs"]["10"]["text"][0]) == {"counter": 17}
    assert json.loads(entry["outputs"]["12"]["text"][0]) == {"counter": 1020}


def _execution_error(entry):
    assert entry["status"]["status_str"] == "error", entry["status"]
    (error,) = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    return error


def test_loop_executor_errors_reach_the_history(server):
    url, base = server
    prompt = {"1": {"class_type": "DiscomfortLoopExecutor",
                    "inputs": {"workflow_paths": "missing.json", "iterations": 2, "initial_inputs": ""}}}
    error = _execution_error(_queue_and_wait(url, prompt))
    assert error["exception_message"].startswith("DiscomfortLoopExecutor, workflow_paths: file 'missing.json' not found")


_NO_SLOTS = {f"unique_id_{kind}{i}": "" for kind in ("input", "output") for i in range(1, 6)}


def test_workflow_files_outside_the_allowed_folders_are_refused(server):
    url, base = server
    outside = os.path.join(base, "outside.json")  # readable by the server, but not in an allowed folder
    with open(outside, "w") as f:
        json.dump(counter_workflow(1), f)
    workflows = os.path.join(base, "user", "default", "workflows")
    os.makedirs(workflows, exist_ok=True)
    for node, widget, inputs in (("DiscomfortLoopExecutor", "workflow_paths", {"iterations": 1, "initial_inputs": ""}),
                                 ("DiscomfortTestRunner", "workflow_json", {"max_iterations": 1, **_NO_SLOTS})):
        for path in (outside, "../../outside.json"):
            # The runner is no output node: an output node takes its output1.
            shown = {"class_type": "DiscomfortTestPreview",
                     "inputs": {"value": ["1", 0], "steps": 1, "color": 0, "interval": 0.0}}
            prompt = {"1": {"class_type": node, "inputs": {widget: path, **inputs}}, "2": shown}
            error = _execution_error(_queue_and_wait(url, prompt))
            assert error["exception_type"] == "PermissionError" and error["node_type"] == node
            message = error["exception_message"]
            assert message.startswith(f"{node}, {widget}: {path!r} ") and "outside the allowed folders" in message
            assert os.path.realpath(workflows) in message and "DISCOMFORT_ALLOW_PATHS" in message


def test_the_operator_allows_a_folder_in_the_servers_user_folder(server):
    url, base = server
    extra = os.path.join(base, "extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "counter.json"), "w") as f:
        json.dump(counter_workflow(3), f)
    prompt = {"1": _loop_node(os.path.join(extra, "counter.json"), 2)}
    assert _execution_error(_queue_and_wait(url, prompt))["exception_type"] == "PermissionError"
    settings = os.path.join(base, "user", "discomfort", "paths.json")
    os.makedirs(os.path.dirname(settings), exist_ok=True)
    with open(settings, "w") as f:
        json.dump({"allowed_paths": [extra]}, f)
    try:
        for path in (os.path.join(extra, "counter.json"), "counter.json"):  # read at every run: no restart
            entry = _queue_and_wait(url, {"1": _loop_node(path, 2)})
            assert entry["status"]["status_str"] == "success", entry["status"]
            assert json.loads(entry["outputs"]["1"]["text"][0]) == {"counter": 6}
        # A web client cannot write that file through ComfyUI's user-data API.
        for name in ("..%2Fdiscomfort%2Fpaths.json", "%2E%2E%2Fdiscomfort%2Fpaths.json"):
            req = urllib.request.Request(f"{url}/userdata/{name}?overwrite=true", data=b'{"allowed_paths": ["/"]}',
                                         method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(req, timeout=10)
            assert refused.value.code in (400, 403, 404), refused.value.code
        with open(settings) as f:
            assert json.load(f) == {"allowed_paths": [extra]}
    finally:
        os.remove(settings)


def test_test_runner_prompt_through_the_http_api(server):
    url, base = server
    counter = _save_workflow(base, counter_workflow(3), "counter")
    prompt = {
        "1": {"class_type": "DiscomfortTestRunner",
              "inputs": {"workflow_json": counter, "max_iterations": 2, "input1": 4,
                         **{**_NO_SLOTS, "unique_id_input1": "counter", "unique_id_output1": "counter"}}},
        # An output node shows the runner's output1 (the loop executor's summary text).
        "2": {"class_type": "DiscomfortLoopExecutor",
              "inputs": {"workflow_paths": counter, "iterations": 1, "initial_inputs": "",
                         "input_value": ["1", 0], "input_port": "counter"}},
    }
    entry = _queue_and_wait(url, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert json.loads(entry["outputs"]["2"]["text"][0]) == {"counter": 4 + 3 * 2 + 3}


def _inner(*nodes):
    """counter -> nodes... -> counter, each node taking the previous one's output as `value`."""
    workflow = {"1": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "counter"}}}
    previous = "1"
    for number, (class_type, inputs) in enumerate(nodes, 2):
        workflow[str(number)] = {"class_type": class_type, "inputs": {"value": [previous, 0], **inputs}}
        previous = str(number)
    workflow[str(len(nodes) + 2)] = {"class_type": "DiscomfortPort",
                                     "inputs": {"unique_id": "counter", "input_data": [previous, 0]}}
    return workflow


def _loop_node(name, iterations, counter=0, **extra):
    return {"class_type": "DiscomfortLoopExecutor",
            "inputs": {"workflow_paths": name, "iterations": iterations, "initial_inputs": f"counter: {counter}",
                       "return_port": "counter", **extra}}


def test_cancel_stops_the_inner_loop_within_a_node_and_the_host_serves_on(server):
    url, base = server
    # Each iteration: +1, then a 10 s sleep that checks the interrupt flag as a sampler does.
    sleepy = _save_workflow(base, _inner(("DiscomfortTestAdd", {"amount": 1}),
                                         ("DiscomfortTestSleep", {"seconds": 10.0})), "sleepy")
    counter = _save_workflow(base, counter_workflow(2), "counter")
    with websocket_clients(url, True) as (ui,):
        prompt_id = _queue(url, {"5": _loop_node(sleepy, 3)}, ui.client_id)
        ui.wait_for(lambda m: m[0] == "executing" and m[1].get("node") == "5")
        time.sleep(1.5)  # well inside the first iteration's sleep
        pressed = time.monotonic()
        urllib.request.urlopen(urllib.request.Request(url + "/interrupt", data=b"{}", method="POST"), timeout=10)
        entry = _wait(url, prompt_id, timeout=60)
        stopped = time.monotonic() - pressed
    # The sleeping inner node had 8.5 s left, the loop 20 s more: it stopped at that node's next check.
    assert stopped < 3.0, stopped
    assert entry["status"]["status_str"] == "error"
    (interrupted,) = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_interrupted"]
    assert interrupted["node_id"] == "5" and interrupted["node_type"] == "DiscomfortLoopExecutor"
    # The next prompt runs normally, and at once: nothing of the cancelled loop holds the engine.
    started = time.monotonic()
    entry = _queue_and_wait(url, {"1": _loop_node(counter, 3, counter=1)}, timeout=60)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert json.loads(entry["outputs"]["1"]["text"][0]) == {"counter": 7}
    assert time.monotonic() - started < 8.0


def test_a_cancel_between_two_inner_executions_is_not_lost(server):
    # A loop of quick iterations spends much of its time between inner executions, where each new one
    # starts by clearing ComfyUI's interrupt flag: the Cancel must survive that, every time.
    url, base = server
    quick = _save_workflow(base, counter_workflow(1), "quick")
    with websocket_clients(url, False) as (ui,):
        for attempt in range(3):
            prompt_id = _queue(url, {"5": _loop_node(quick, 100000)}, ui.client_id)
            ui.wait_for(lambda m: m[0] == "executing" and m[1].get("node") == "5" and m[1].get("prompt_id") == prompt_id)
            time.sleep(0.5 + 0.3 * attempt)
            urllib.request.urlopen(urllib.request.Request(url + "/interrupt", data=b"{}", method="POST"), timeout=10)
            entry = _wait(url, prompt_id, timeout=15)
            assert [m[0] for m in entry["status"]["messages"]][-1] == "execution_interrupted", attempt


def test_the_host_prompts_cache_survives_its_loops(server):
    url, base = server
    counter = _save_workflow(base, counter_workflow(2), "counter")
    prompt = {"1": {"class_type": "DiscomfortTestAdd", "inputs": {"value": 40, "amount": 2}},
              "2": _loop_node(counter, 2, input_value=["1", 0], input_port="counter"),
              "3": {"class_type": "DiscomfortTestAdd", "inputs": {"value": ["2", 0], "amount": 1}},
              "4": _loop_node(counter, 1, input_value=["3", 0], input_port="counter")}
    with websocket_clients(url, False) as (ui,):
        results = []
        for _ in range(2):
            prompt_id = _queue(url, prompt, ui.client_id)
            entry = _wait(url, prompt_id)
            ui.wait_until_done(prompt_id)
            assert entry["status"]["status_str"] == "success", entry["status"]
            (cached,) = [d["nodes"] for t, d in ui.messages if t == "execution_cached" and d["prompt_id"] == prompt_id]
            executed = {d["node"] for t, d in ui.messages if t == "executing" and d.get("prompt_id") == prompt_id
                        and d.get("node") is not None}
            results.append((sorted(cached), executed, json.loads(entry["outputs"]["4"]["text"][0])))
    assert results[0] == ([], {"1", "2", "3", "4"}, {"counter": 49})
    # Again: node 1 comes from the host's cache; the loops always run (their files may have changed),
    # and so does what depends on them.
    assert results[1] == (["1"], {"2", "3", "4"}, {"counter": 49})


def test_a_failing_inner_workflow_names_its_node_and_the_host_serves_on(server):
    url, base = server
    counter = _save_workflow(base, counter_workflow(2), "counter")
    failing = _save_workflow(base, counter_workflow(1, fail_at=3), "failing")
    prompt = {"1": _loop_node(counter, 2), "2": _loop_node(failing, 5)}
    error = _execution_error(_queue_and_wait(url, prompt))
    assert error["node_id"] == "2" and error["node_type"] == "DiscomfortLoopExecutor"
    message = error["exception_message"]
    assert "node 3 (DiscomfortTestFailAt)" in message and "iteration 2" in message, message
    assert "test failure: value reached 3" in message and failing in message
    entry = _queue_and_wait(url, {"1": _loop_node(counter, 2)})
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert json.loads(entry["outputs"]["1"]["text"][0]) == {"counter": 4}


def _preview_metadata(payload):
    length = struct.unpack(">I", payload[:4])[0]
    return json.loads(payload[4:4 + length])


@pytest.mark.parametrize("preview_metadata", [True, False], ids=["current frontend", "legacy previews"])
def test_inner_progress_and_previews_reach_only_the_queueing_client(server, preview_metadata):
    url, base = server
    # Each iteration sends 3 progress steps with a preview, as a sampler does.
    previews = _save_workflow(base, _inner(("DiscomfortTestPreview", {"steps": 3, "color": 0x336699, "interval": 0.05})), "previews")
    with websocket_clients(url, preview_metadata, True) as (ui, other):
        prompt_id = _queue(url, {"77": _loop_node(previews, 2)}, ui.client_id)
        entry = _wait(url, prompt_id)
        ui.wait_until_done(prompt_id)
        time.sleep(0.5)  # anything still in flight to the other client
    assert entry["status"]["status_str"] == "success", entry["status"]
    progress = [d for t, d in ui.messages if t == "progress"]
    # The inner node's steps (3 per iteration) and the loop's iterations, all on the loop node, all
    # under the host prompt: the inner prompt's ids never reach the client (its node ids collide with
    # the host's).
    assert all(d["prompt_id"] == prompt_id and d["node"] == "77" for d in progress), progress
    assert [(d["value"], d["max"]) for d in progress if d["max"] == 3] == [(1, 3), (2, 3), (3, 3)] * 2
    assert (2, 2) in [(d["value"], d["max"]) for d in progress if d["max"] == 2]
    states = [d for t, d in ui.messages if t == "progress_state" and d["prompt_id"] == prompt_id]
    assert states and all(set(d["nodes"]) <= {"77"} for d in states)
    if preview_metadata:  # PREVIEW_IMAGE_WITH_METADATA, as the host's own nodes' previews
        assert [event for event, _ in ui.binary] == [4] * 6
        for _, payload in ui.binary:
            metadata = _preview_metadata(payload)
            assert (metadata["prompt_id"], metadata["node_id"], metadata["display_node_id"]) == (prompt_id, "77", "77")
    else:  # the legacy PREVIEW_IMAGE (a JPEG), shown on the executing node
        assert [event for event, _ in ui.binary] == [1] * 6
        assert all(payload[4:6] == b"\xff\xd8" for _, payload in ui.binary)
    # The other client saw the queue change, and nothing of this prompt.
    assert {t for t, _ in other.messages} <= {"status", "feature_flags"}, other.messages
    assert other.binary == []


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
