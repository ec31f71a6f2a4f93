"""The loop-executor node as a UI user meets it in a live ComfyUI (a real server on loopback, started as
test_live_server.py starts one): the chooser of the user's saved workflows, a progress step and a
preview of an IMAGE port per iteration on the websocket of the client that queued the prompt (and on
no other), and the contact sheet of that port, read back through SaveImage and /view."""

import io
import json
import os
import struct
import urllib.error
import urllib.parse
import urllib.request
import uuid

import numpy as np
import pytest
from PIL import Image

from conftest import counter_workflow, link, port
from test_live_server import _execution_error, _get, _preview_metadata, _queue, _wait, comfy_server, websocket_clients
from test_loop_images import _spread, cells, expected_label, label_of

NONE = "(none)"
GRAY_STEP = 5                       # each iteration's image is one gray level brighter: 5, 10, 15, ...
FRAME_WIDTH, FRAME_HEIGHT = 160, 96  # wider than any label: the cells are the frames' size


@pytest.fixture(scope="module")
def server():
    with comfy_server() as running:
        yield running


def _save_as_the_ui_does(url, name, workflow):
    """A workflow saved through ComfyUI's user-data API, as the frontend's Save does."""
    target = urllib.parse.quote("workflows/" + name, safe="")
    request = urllib.request.Request(f"{url}/userdata/{target}?overwrite=true", data=json.dumps(workflow).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def _choices(url, node):
    """The chooser's values in the node definitions a client reads (either COMBO notation)."""
    spec = _get(f"{url}/object_info/{node}")[node]["input"]["optional"]["workflow"]
    return spec[0] if isinstance(spec[0], list) else spec[1]["options"]


def frames_workflow(sleep=0.0, width=FRAME_WIDTH, height=FRAME_HEIGHT):
    """counter -> +GRAY_STEP (gray) -> counter; an EmptyImage of that gray -> the IMAGE OUTPUT `frame`.
    `sleep` seconds per iteration (on the counter's path, so `frame` stays IMAGE-typed)."""
    workflow = {
        "1": port("counter"),
        "2": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("1"), "amount": GRAY_STEP * 0x010101}},
        "3": {"class_type": "DiscomfortTestSleep", "inputs": {"value": link("2"), "seconds": sleep}},
        "4": port("counter", link("3")),
        "5": {"class_type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": 1,
                                                     "color": link("2")}},
        "6": port("frame", link("5")),
    }
    return workflow


def _gray(iteration):
    return GRAY_STEP * (iteration + 1)


def _loop(workflow=None, paths="", iterations=1, **extra):
    """The loop node's prompt entry; without `workflow` it has no chooser value at all, as a prompt
    written before the chooser existed (the chooser only accepts its listed values)."""
    chosen = {} if workflow is None else {"workflow": workflow}
    return {"class_type": "DiscomfortLoopExecutor",
            "inputs": {"workflow_paths": paths, "iterations": iterations, "initial_inputs": "counter: 0",
                       "return_port": "counter", **chosen, **extra}}


def test_the_chooser_lists_the_saved_workflows_and_a_prompt_runs_the_chosen_one(server):
    url, base = server
    name, nested = f"counter-{uuid.uuid4().hex[:8]}.json", f"loops-{uuid.uuid4().hex[:8]}/counter.json"
    for node in ("DiscomfortLoopExecutor", "DiscomfortTestRunner"):
        assert name not in _choices(url, node)
    _save_as_the_ui_does(url, name, counter_workflow(3))
    _save_as_the_ui_does(url, nested, counter_workflow(2))
    # A symlink in the folder leading out of it is not offered (a run would refuse it).
    outside = os.path.join(base, "outside.json")
    with open(outside, "w") as f:
        json.dump(counter_workflow(1), f)
    os.symlink(outside, os.path.join(base, "user", "default", "workflows", "link-out.json"))
    for node in ("DiscomfortLoopExecutor", "DiscomfortTestRunner"):
        # Read again with the node definitions, as LoadImage's list: no restart.
        choices = _choices(url, node)
        assert choices[0] == NONE and name in choices and nested in choices and "link-out.json" not in choices
        assert choices[1:] == sorted(choices[1:])

    entry = _wait(url, _queue(url, {"1": _loop(name, iterations=4)}))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert json.loads(entry["outputs"]["1"]["text"][0]) == {"counter": 12}
    runner = {"class_type": "DiscomfortTestRunner",
              "inputs": {"workflow_json": "", "workflow": nested, "max_iterations": 3, "input1": 1,
                         **{f"unique_id_{kind}{i}": "" for kind in ("input", "output") for i in range(1, 6)},
                         "unique_id_input1": "counter", "unique_id_output1": "counter"}}
    entry = _wait(url, _queue(url, {"1": runner, "2": _loop(paths=name, input_value=["1", 0], input_port="counter")}))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert json.loads(entry["outputs"]["2"]["text"][0]) == {"counter": 1 + 2 * 3 + 3}

    # Both the chooser and the text name workflows: which was meant cannot be guessed.
    error = _execution_error(_wait(url, _queue(url, {"1": _loop(name, paths=name)})))
    assert error["exception_message"].startswith(f"DiscomfortLoopExecutor: both workflow ({name!r}) and workflow_paths")
    # Neither: the error says where to name one.
    error = _execution_error(_wait(url, _queue(url, {"1": _loop(NONE)})))
    assert error["exception_message"].startswith("DiscomfortLoopExecutor, workflow_paths: no workflow file given")
    # A file no longer saved is not in the list: ComfyUI's own validation refuses the prompt.
    with pytest.raises(urllib.error.HTTPError) as refused:
        _queue(url, {"1": _loop("deleted.json")})
    assert refused.value.code == 400 and "deleted.json" in refused.value.read().decode()


def _sheet(url, entry, node="2"):
    (saved,) = entry["outputs"][node]["images"]
    query = urllib.parse.urlencode({k: saved[k] for k in ("filename", "subfolder", "type")})
    with urllib.request.urlopen(f"{url}/view?{query}", timeout=10) as reply:
        return Image.open(io.BytesIO(reply.read())).convert("RGB")


def _check_sheet(sheet, shown):
    """Cells of the frames' size in ceil(sqrt(n)) columns, each its iteration's gray and label."""
    columns = int(np.ceil(np.sqrt(len(shown))))
    rows = -(-len(shown) // columns)
    assert sheet.size == (columns * FRAME_WIDTH, rows * (FRAME_HEIGHT + 20)), sheet.size
    for iteration, (image, strip) in zip(shown, cells(sheet, len(shown), FRAME_WIDTH, FRAME_HEIGHT)):
        assert np.abs(image.astype(int) - _gray(iteration)).max() <= 1, iteration
        # SaveImage truncates 255 * value: a level may come back one lower.
        np.testing.assert_allclose(label_of(strip), expected_label(iteration), atol=1)


def _preview_pictures(client):
    """Each preview the client received, decoded, with its metadata (None for the legacy event)."""
    pictures = []
    for event, payload in client.binary:
        if event == 4:
            metadata = _preview_metadata(payload)
            image = payload[4 + struct.unpack(">I", payload[:4])[0]:]
        else:
            assert event == 1 and payload[:4] == struct.pack(">I", 1)  # a JPEG
            metadata, image = None, payload[4:]
        pictures.append((metadata, Image.open(io.BytesIO(image)).convert("RGB")))
    return pictures


@pytest.mark.parametrize("preview_metadata", [True, False], ids=["current frontend", "legacy previews"])
def test_each_iteration_reaches_only_the_queueing_client_and_the_sheet_shows_them(server, preview_metadata):
    url, base = server
    name = f"frames-{uuid.uuid4().hex[:8]}.json"
    _save_as_the_ui_does(url, name, frames_workflow(sleep=0.4))  # slow enough to see each iteration
    iterations = 4
    prompt = {"7": _loop(name, iterations=iterations),
              "2": {"class_type": "SaveImage", "inputs": {"images": ["7", 2], "filename_prefix": "sheet"}}}
    with websocket_clients(url, preview_metadata, True) as (ui, other):
        prompt_id = _queue(url, prompt, ui.client_id)
        entry = _wait(url, prompt_id)
        ui.wait_until_done(prompt_id)
        other_seen = list(other.messages), list(other.binary)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert json.loads(entry["outputs"]["7"]["text"][0]) == {"counter": _gray(iterations - 1) * 0x010101,
                                                             "frame": {"tensor": "float32",
                                                                       "shape": [1, FRAME_HEIGHT, FRAME_WIDTH, 3]}}
    # A progress step per iteration, on the loop node, under the host prompt.
    steps = [(d["value"], d["max"]) for t, d in ui.messages if t == "progress"]
    assert all(d["node"] == "7" and d["prompt_id"] == prompt_id for t, d in ui.messages if t == "progress")
    assert steps[:iterations] == [(i, iterations) for i in range(1, iterations + 1)] and set(steps[iterations:]) <= {(4, 4)}
    # The frame port's image after each iteration, as the loop node's preview, at its own size.
    pictures = _preview_pictures(ui)
    assert len(pictures) == iterations
    for iteration, (metadata, picture) in enumerate(pictures):
        assert picture.size == (FRAME_WIDTH, FRAME_HEIGHT)
        assert np.abs(np.asarray(picture).astype(int) - _gray(iteration)).max() <= 3  # JPEG
        if preview_metadata:
            assert (metadata["prompt_id"], metadata["node_id"], metadata["display_node_id"]) == (prompt_id, "7", "7")
        else:
            assert metadata is None
    # The other client saw the queue change, and nothing of this prompt.
    messages, binary = other_seen
    assert {t for t, _ in messages} <= {"status", "feature_flags"}, messages
    assert binary == []
    _check_sheet(_sheet(url, entry), list(range(iterations)))


def test_a_frame_larger_than_the_preview_size_is_shown_fitted_into_it(server):
    url, base = server
    name = f"large-{uuid.uuid4().hex[:8]}.json"
    _save_as_the_ui_does(url, name, frames_workflow(width=1024, height=640))
    with websocket_clients(url, True) as (ui,):
        prompt_id = _queue(url, {"1": _loop(name)}, ui.client_id)
        assert _wait(url, prompt_id)["status"]["status_str"] == "success"
        ui.wait_until_done(prompt_id)
    # ComfyUI's --preview-size (512 by default, as this server runs), the frame's aspect kept.
    assert [picture.size for _, picture in _preview_pictures(ui)] == [(512, 320)]


def test_a_long_run_shows_sixteen_iterations_spread_evenly(server):
    url, base = server
    name = f"frames-{uuid.uuid4().hex[:8]}.json"
    _save_as_the_ui_does(url, name, frames_workflow())
    prompt = {"1": _loop(name, iterations=40, preview_port="frame"),
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 2]}}}
    entry = _wait(url, _queue(url, prompt))
    assert entry["status"]["status_str"] == "success", entry["status"]
    shown = _spread(40, 16)
    assert shown[0] == 0 and shown[-1] == 39 and len(shown) == 16
    _check_sheet(_sheet(url, entry), shown)


def test_a_port_that_cannot_be_shown_is_named(server):
    url, base = server
    frames, counter = f"frames-{uuid.uuid4().hex[:8]}.json", f"counter-{uuid.uuid4().hex[:8]}.json"
    _save_as_the_ui_does(url, frames, frames_workflow())
    _save_as_the_ui_does(url, counter, counter_workflow(1))
    # `later` is fed by an untyped node output and is no INPUT port: its type shows only when it runs.
    untyped = f"untyped-{uuid.uuid4().hex[:8]}.json"
    _save_as_the_ui_does(url, untyped, {**frames_workflow(), "7": port("later", link("3"))})
    for workflow, preview_port, kind, message in (
            # counter's OUTPUT is fed by an untyped node; the INPUT port it loops back to says INT.
            (frames, "counter", "TypeError", "DiscomfortLoopExecutor, preview_port: 'counter' is an OUTPUT port of "
                                             "type INT, not IMAGE; their OUTPUT ports: counter (INT), frame (IMAGE)"),
            (frames, "nope", "ValueError", "DiscomfortLoopExecutor, preview_port: 'nope' is not an OUTPUT port of "
                                           "these workflows; their OUTPUT ports: counter (INT), frame (IMAGE)"),
            (untyped, "later", "TypeError", "DiscomfortLoopExecutor, preview_port: 'later' holds int, not an IMAGE "
                                            "(a [batch, height, width, 1|3|4] float tensor); their OUTPUT ports: "
                                            "counter (INT), frame (IMAGE), later (*)")):
        error = _execution_error(_wait(url, _queue(url, {"1": _loop(workflow, preview_port=preview_port)})))
        # ComfyUI adds a line for its tips (empty here) after the message.
        assert (error["node_id"], error["exception_type"], error["exception_message"]) == ("1", kind, message + "\n")
    # Without an IMAGE port the loop runs, and its sheet is nothing, unless something takes it.
    entry = _wait(url, _queue(url, {"1": _loop(counter, iterations=2)}))
    assert entry["status"]["status_str"] == "success", entry["status"]
    prompt = {"1": _loop(counter), "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 2]}}}
    error = _execution_error(_wait(url, _queue(url, prompt)))
    assert error["node_id"] == "1" and error["exception_message"] == (
        "DiscomfortLoopExecutor: contact_sheet is connected, but these workflows have no IMAGE OUTPUT port "
        "(name one in preview_port)\n")
