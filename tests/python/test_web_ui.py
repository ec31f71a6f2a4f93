"""The ComfyUI web UI (the frontend package from PyPI, served by a real ComfyUI with this extension
installed as in test_live_server.py) in headless Chromium (Debian's package), driven through the
DevTools protocol: the Discomfort nodes are registered in the frontend and listed in its node
library, a workflow holding them (and one saved by the original Discomfort) loads with
app.loadGraphData, and a screenshot shows them: every node's on-screen box differs from a screenshot
of the empty graph, and the canvas reports them visible with their titles."""

import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest

from conftest import ORIGINAL_TESTDATA, counter_workflow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DISCOMFORT_NODES = {
    "DiscomfortPort": "Discomfort Port",
    "DiscomfortLoopExecutor": "Discomfort Loop Executor",
    "DiscomfortTestRunner": "Discomfort Test Runner",
    "DiscomfortFolderImageLoader": "Discomfort Folder Image Loader",
    "DiscomfortImageDescriber": "Discomfort Image Describer",
}
WIDTH, HEIGHT = 1400, 900

try:
    import comfyui_frontend_package  # noqa: F401
    FRONTEND = True
except ImportError:
    FRONTEND = False

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup installs it)"),
    pytest.mark.skipif(not FRONTEND, reason="comfyui-frontend-package is not installed (requirements/dev.txt; "
                                            "scripts/setup installs it)"),
]


class DevTools:
    """The minimum of the Chrome DevTools protocol: commands on one page target."""

    def __init__(self, ws_url):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error in {expression[:80]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.js(expression):
                return
            time.sleep(0.25)
        raise TimeoutError(f"timed out waiting for {expression}")

    def screenshot(self):
        from PIL import Image
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.fixture(scope="module")
def page():
    from test_live_server import comfy_server
    with comfy_server(frontend=True) as (url, base):
        profile = tempfile.mkdtemp(prefix="discomfort-chromium-")
        browser = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}",
             f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = os.path.join(profile, "DevToolsActivePort")
            deadline = time.monotonic() + 30
            while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
                if browser.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.1)
            port = int(open(port_file).read().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                target = next(t for t in json.load(r) if t["type"] == "page")
            tools = DevTools(target["webSocketDebuggerUrl"])
            tools.call("Page.enable")
            tools.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
            tools.call("Page.navigate", url=url)
            tools.wait_for("!!(window.app && window.app.graph && window.app.canvas && window.LiteGraph"
                           " && LiteGraph.registered_node_types['DiscomfortPort'])", timeout=90)
            time.sleep(1)
            _hide_overlays(tools)  # a first visit opens the templates dialog
            yield tools
            tools.ws.close()
        finally:
            browser.terminate()
            try:
                browser.wait(timeout=10)
            except subprocess.TimeoutExpired:
                browser.kill()
            # Chromium's helper processes may still write into the profile just after the browser
            # exits: retry until the folder is really gone.
            for _ in range(50):
                shutil.rmtree(profile, ignore_errors=True)
                if not os.path.exists(profile):
                    break
                time.sleep(0.1)


def test_nodes_are_registered_in_the_frontend(page):
    registered = page.js("Object.fromEntries(%s.map(t => [t, LiteGraph.registered_node_types[t] ? "
                         "{title: LiteGraph.registered_node_types[t].title, category: LiteGraph.registered_node_types[t].category}"
                         " : null]))" % json.dumps(list(DISCOMFORT_NODES)))
    for node_type, title in DISCOMFORT_NODES.items():
        assert registered[node_type] is not None, f"{node_type} not registered in the frontend"
        assert registered[node_type]["title"] == title
        assert registered[node_type]["category"].startswith("discomfort")


def test_nodes_appear_in_the_node_library(page):
    # The sidebar's node library lists the extension's category; searching it finds every node by title.
    page.js("document.querySelector('.node-library-tab-button').click()")
    panel = "(document.querySelector('.side-bar-panel')?.innerText || '')"
    page.wait_for(panel + ".split('\\n').some(l => l.trim() === 'discomfort')", timeout=20)
    page.js("document.querySelector('.side-bar-panel input').focus()")
    page.call("Input.insertText", text="Discomfort")
    page.wait_for("%s.every(t => %s.split('\\n').map(l => l.trim()).includes(t))"
                  % (json.dumps(list(DISCOMFORT_NODES.values())), panel), timeout=20)
    page.js("document.querySelector('.node-library-tab-button').click()")  # close the sidebar again


def _escape(page):
    for kind in ("keyDown", "keyUp"):
        page.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)


def _hide_overlays(page):
    """Dialogs (the first-visit templates dialog may open late) closed as a user would; toasts removed."""
    deadline = time.monotonic() + 10
    while page.js("document.querySelectorAll('[role=dialog]').length") and time.monotonic() < deadline:
        _escape(page)
        time.sleep(0.3)
    page.js("document.querySelectorAll('.p-toast').forEach(e => e.remove())")


def _node_boxes(page):
    """Each node's type, title, whether the canvas draws it, and its box in screen pixels."""
    return page.js("""(() => {
        const canvas = app.canvas, rect = canvas.canvas.getBoundingClientRect();
        canvas.computeVisibleNodes?.();
        const visible = new Set((canvas.visible_nodes || []).map(n => n.id));
        return app.graph._nodes.map(n => {
            const [x, y] = canvas.ds.convertOffsetToCanvas([n.pos[0], n.pos[1]]);
            const s = canvas.ds.scale;
            return {type: n.type, title: n.title, visible: visible.has(n.id),
                    widgets: (n.widgets || []).map(w => w.value),
                    box: [rect.left + x, rect.top + y - LiteGraph.NODE_TITLE_HEIGHT * s,
                          rect.left + x + n.size[0] * s, rect.top + y + n.size[1] * s]};
        });
    })()""")


def test_a_workflow_with_the_nodes_loads_and_shows_in_a_screenshot(page, tmp_path):
    from PIL import ImageChops, ImageStat
    # Build a graph with one node of each kind in the UI, save it as the UI does, then load it back.
    workflow = page.js("""(() => {
        app.graph.clear();
        const types = %s;
        types.forEach((t, i) => {
            const node = LiteGraph.createNode(t);
            node.pos = [120 + (i %% 3) * 430, 140 + Math.floor(i / 3) * 430];  // on screen, below the menus
            app.graph.add(node);
        });
        return app.graph.serialize();
    })()""" % json.dumps(list(DISCOMFORT_NODES)))
    assert sorted(n["type"] for n in workflow["nodes"]) == sorted(DISCOMFORT_NODES)
    page.js("app.graph.clear(); app.canvas.ds.offset = [0, 0]; app.canvas.ds.scale = 0.8; app.canvas.setDirty(true, true)")
    _hide_overlays(page)
    time.sleep(0.5)
    empty = page.screenshot()

    page.js("app.loadGraphData(%s, true, false).then(() => { app.canvas.ds.offset = [0, 0];"
            " app.canvas.ds.scale = 0.8; app.canvas.setDirty(true, true); })" % json.dumps(workflow))
    page.wait_for("app.graph._nodes.length === %d" % len(DISCOMFORT_NODES))
    _hide_overlays(page)
    time.sleep(0.5)
    shot = page.screenshot()
    shot.save(tmp_path / "discomfort_nodes.png")
    boxes = _node_boxes(page)
    assert {b["type"]: b["title"] for b in boxes} == DISCOMFORT_NODES
    assert ImageStat.Stat(shot.convert("L")).stddev[0] > 5, "the screenshot is blank"
    diff = ImageChops.difference(empty, shot)
    for b in boxes:
        assert b["visible"], f"{b['type']} is not drawn on the canvas"
        left, top, right, bottom = (int(v) for v in b["box"])
        assert 0 <= left < right <= WIDTH and 0 <= top < bottom <= HEIGHT, f"{b['type']} is off screen: {b['box']}"
        changed = ImageStat.Stat(diff.crop((left, top, right, bottom)).convert("L")).mean[0]
        assert changed > 5, f"{b['type']}: its box {b['box']} looks like the empty canvas (mean diff {changed:.1f})"


def test_a_workflow_saved_by_the_original_discomfort_loads(page):
    path = os.path.join(ORIGINAL_TESTDATA, "testrunner2.json")
    with open(path) as f:
        saved = json.load(f)
    page.js("app.loadGraphData(%s, true, false)" % json.dumps(saved))
    page.wait_for("app.graph._nodes.length === %d" % len(saved["nodes"]))
    runners = [b for b in _node_boxes(page) if b["type"] == "DiscomfortTestRunner"]
    assert len(runners) == 2
    # Widget values land in the original's order: workflow_json, max_iterations, unique_id_input1..5, _output1..5.
    assert sorted(r["widgets"][0].rsplit("/", 1)[-1] for r in runners) == ["test_sdxl_ksampler.json", "test_sdxl_model.json"]
    sampler = next(r for r in runners if r["widgets"][0].endswith("test_sdxl_ksampler.json"))
    # After them, the saved-workflow chooser added since, at its default.
    assert sampler["widgets"][1:] == [1, "model", "clip", "vae", "", "", "image", "", "", "", "", "(none)"]


def test_a_workflow_built_in_code_opens_in_the_web_ui(page):
    # Built against the same ComfyUI's definitions (the v0.33.0 dump), saved as a UI workflow: the
    # frontend loads it, shows every node, and its own graphToPrompt gives the builder's API prompt.
    import discomfort
    from discomfort import _core
    defs = _core.NodeDefinitions.from_object_info(page.js(
        "fetch('/object_info').then(r => r.json())"))
    b = discomfort.WorkflowBuilder(defs)
    blur = b.add_node("ImageBlur", title="Blur")
    b.set(blur, "blur_radius", 5)
    sharpen = b.add_node("ImageSharpen")
    b.set(sharpen, "alpha", 1.5)
    b.connect(blur, "IMAGE", sharpen, "image")
    b.add_input_port("frame", blur, "image")
    b.add_output_port("frame", sharpen, "IMAGE")
    ui = b.to_ui()
    page.js("app.loadGraphData(%s, true, false)" % json.dumps(ui))
    page.wait_for("app.graph._nodes.length === %d" % len(ui["nodes"]))
    boxes = _node_boxes(page)
    assert sorted(b_["type"] for b_ in boxes) == sorted(n["type"] for n in ui["nodes"])
    blur_box = next(b_ for b_ in boxes if b_["title"] == "Blur")
    assert blur_box["widgets"][0] == 5
    prompt = page.js("app.graphToPrompt().then(p => p.output)")
    expected = b.to_api()
    assert set(prompt) == set(expected)
    for node_id, node in expected.items():
        assert prompt[node_id]["class_type"] == node["class_type"]
        assert prompt[node_id]["inputs"] == node["inputs"], node_id


def _widget(page, node_expression, name):
    """A widget of a node of the graph: its value and, for a COMBO, its values."""
    return page.js("""(() => {
        const w = (%s).widgets.find(w => w.name === %s);
        const values = w.options && w.options.values;
        return {value: w.value, values: typeof values === 'function' ? values() : values || null};
    })()""" % (node_expression, json.dumps(name)))


def _run_in_the_ui(page, timeout=120):
    """The graph as the UI queues it (graphToPrompt, POST /prompt): its /history entry."""
    prompt_id = page.js("app.graphToPrompt().then(p => fetch('/api/prompt', {method: 'POST', "
                        "headers: {'Content-Type': 'application/json'}, body: JSON.stringify({prompt: p.output, "
                        "client_id: window.comfyAPI?.api?.api?.clientId})})).then(r => r.json()).then(r => r.prompt_id)")
    assert prompt_id, "the prompt was not queued"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = page.js("fetch('/api/history/%s').then(r => r.json())" % prompt_id)
        entry = history.get(prompt_id)
        if entry and entry["status"].get("completed") is not None:
            return entry
        time.sleep(0.2)
    raise TimeoutError(f"prompt {prompt_id} did not finish")


def test_the_loop_node_offers_the_workflows_saved_in_the_ui_and_runs_the_chosen_one(page):
    name = f"counter-{uuid.uuid4().hex[:8]}.json"
    page.js("app.graph.clear(); window.loopNode = LiteGraph.createNode('DiscomfortLoopExecutor'); "
            "loopNode.pos = [150, 150]; app.graph.add(loopNode); true")
    names = page.js("loopNode.widgets.map(w => w.name)")
    assert names == ["workflow_paths", "iterations", "initial_inputs", "until", "return_port", "input_port", "workflow",
                     "preview_port"]
    assert page.js("loopNode.outputs.map(o => [o.name, o.type])") == [["result", "*"], ["outputs", "STRING"],
                                                                       ["contact_sheet", "IMAGE"]]
    chooser = _widget(page, "loopNode", "workflow")
    assert chooser["value"] == "(none)" and chooser["values"][0] == "(none)" and name not in chooser["values"]
    # Saved as the UI saves a workflow (its user-data API); the UI's refresh (R) lists it.
    status = page.js("fetch('/api/userdata/' + encodeURIComponent('workflows/%s') + '?overwrite=true', "
                     "{method: 'POST', body: %s}).then(r => r.status)" % (name, json.dumps(json.dumps(counter_workflow(3)))))
    assert status == 200
    page.js("app.refreshComboInNodes()")
    assert name in _widget(page, "loopNode", "workflow")["values"]
    page.js("""(() => {
        const set = (n, v) => { loopNode.widgets.find(w => w.name === n).value = v; };
        set('workflow', %s); set('iterations', 4); set('initial_inputs', 'counter: 5'); set('return_port', 'counter');
        return true;
    })()""" % json.dumps(name))
    entry = _run_in_the_ui(page)
    assert entry["status"]["status_str"] == "success", entry["status"]
    (node_id,) = entry["outputs"]
    assert json.loads(entry["outputs"][node_id]["text"][0]) == {"counter": 17}


def test_a_loop_node_saved_with_the_earlier_widgets_loads_and_runs(page):
    name = f"counter-{uuid.uuid4().hex[:8]}.json"
    status = page.js("fetch('/api/userdata/' + encodeURIComponent('workflows/%s') + '?overwrite=true', "
                     "{method: 'POST', body: %s}).then(r => r.status)" % (name, json.dumps(json.dumps(counter_workflow(3)))))
    assert status == 200
    # A graph saved before the chooser: six widget values (workflow_paths ... input_port).
    saved = page.js("""(() => {
        app.graph.clear();
        const node = LiteGraph.createNode('DiscomfortLoopExecutor');
        node.pos = [150, 150];
        app.graph.add(node);
        const graph = app.graph.serialize();
        graph.nodes[0].widgets_values = [%s, 2, 'counter: 1', '', 'counter', ''];
        return graph;
    })()""" % json.dumps(name))
    page.js("app.loadGraphData(%s, true, false)" % json.dumps(saved))
    page.wait_for("app.graph._nodes.length === 1")
    (loop,) = [b for b in _node_boxes(page) if b["type"] == "DiscomfortLoopExecutor"]
    assert loop["widgets"] == [name, 2, "counter: 1", "", "counter", "", "(none)", ""]
    entry = _run_in_the_ui(page)
    assert entry["status"]["status_str"] == "success", entry["status"]
    (node_id,) = entry["outputs"]
    assert json.loads(entry["outputs"][node_id]["text"][0]) == {"counter": 7}
