"""The run report (python/discomfort/report) of real runs: a loop plan run by the discomfort CLI
(the feedback-loop demo plus a score computed from its image, a stage retried twice, a stage failing
once and skipped, a `when` stage, stopped by `until`), a real sweep over three grid keys with failing
points, and a failing loop and a sweep run through the Python package. Each report is opened in
headless Chromium over the DevTools protocol: the expected elements are found where they belong
(bars, markers and threshold lines at the coordinates of their values), every image decodes, and no
request leaves the page. A screenshot of the loop run's report is saved (and written to
docs/report.png with DISCOMFORT_UPDATE_SCREENSHOT=1).

The report package is loaded by its file path, as the CLI loads it, so it is also tested without
the compiled core."""

import asyncio
import base64
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from conftest import REPO, counter_workflow

REPORT_PACKAGE = os.path.join(REPO, "python", "discomfort", "report")
DATA = os.path.join(REPO, "tests", "data", "report")
FEEDBACK = os.path.join(REPO, "examples", "feedback_loop", "feedback.json")
SEED = os.path.join(REPO, "examples", "feedback_loop", "seed.png")
PLAN = os.path.join(DATA, "feedback_plan.json")
UNTIL = "score > 0.995"  # the plan's until
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 1280


def _load_report_package():
    spec = importlib.util.spec_from_file_location("discomfort_report_by_path", os.path.join(REPORT_PACKAGE, "__init__.py"),
                                                  submodule_search_locations=[REPORT_PACKAGE])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


report = _load_report_package()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup installs it)")


def _cli():
    """The discomfort CLI of the build whose Python package is on the path, else build/release's."""
    candidates = [os.environ.get("DISCOMFORT_CLI")]
    spec = importlib.util.find_spec("discomfort")
    if spec is not None and spec.origin:
        build = os.path.dirname(os.path.dirname(os.path.dirname(spec.origin)))
        candidates.append(os.path.join(build, "cli", "discomfort"))
    candidates.append(os.path.join(REPO, "build", "release", "cli", "discomfort"))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def read_events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A loop plan and a sweep run by the CLI at the same time; their folders."""
    cli = _cli()
    if cli is None:
        pytest.skip("the discomfort CLI is not built (cmake --build build/release --target discomfort)")
    loop_dir = str(tmp_path_factory.mktemp("loop"))
    sweep_dir = str(tmp_path_factory.mktemp("sweep"))
    nodes = ["--nodes", os.path.join(DATA, "report_nodes.py"), "--cpu", "--set", f"frame=@{SEED}"]
    commands = {
        "loop": [cli, "run", "--plan", PLAN, *nodes, "--out", loop_dir, "--events", os.path.join(loop_dir, "events.jsonl")],
        # radius=wide reaches ImageBlur as a string: those points fail inside the node.
        "sweep": [cli, "sweep", os.path.join(DATA, "blur_sweep.json"), *nodes, "--grid", "mix=0,1",
                  "--grid", "radius=1,12,wide", "--grid", "sigma=0.5,6", "--out", sweep_dir,
                  "--events", os.path.join(sweep_dir, "events.jsonl")],
    }
    logs = {name: tempfile.TemporaryFile() for name in commands}
    processes = {name: subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=logs[name])
                 for name, command in commands.items()}
    codes = {name: p.wait(timeout=600) for name, p in processes.items()}
    for name, log in logs.items():
        log.seek(0)
        output = log.read().decode(errors="replace")[-3000:]
        expected = 0 if name == "loop" else 1  # the sweep has failed points
        assert codes[name] == expected, f"{name}: exit {codes[name]}\n{output}"
    return {"loop": loop_dir, "sweep": sweep_dir}


@pytest.fixture(scope="module")
def loop_report(runs):
    return report.generate(runs["loop"], until=UNTIL, title="Discomfort run: the feedback loop, scored")


@pytest.fixture(scope="module")
def sweep_report(runs):
    return report.generate(runs["sweep"])


# --- the browser --------------------------------------------------------------------------------

class Page:
    """One Chromium page over the DevTools protocol, keeping the events it receives."""

    def __init__(self, ws_url):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if "method" in message:
                self.events.append(message)
            elif message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error in {expression[:80]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, path):
        """Loads the file and waits until it and every image in it have loaded."""
        self.events.clear()
        url = "file://" + os.path.abspath(path)
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while not self.js("document.readyState === 'complete' && location.href === %s"
                          " && [...document.images].every(i => i.complete)" % json.dumps(url)):
            assert time.monotonic() < deadline, f"{path} did not finish loading"
            time.sleep(0.1)
        self.js("1")  # any event sent before this reply is now recorded
        return url

    def requests(self):
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, height):
        from PIL import Image
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1})["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


@pytest.fixture(scope="module")
def page():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/setup installs it)")
    profile = tempfile.mkdtemp(prefix="discomfort-chromium-")
    browser = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}",
         f"--window-size={WIDTH},900", "about:blank"],
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
        tools = Page(target["webSocketDebuggerUrl"])
        tools.call("Page.enable")
        tools.call("Network.enable")
        tools.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=900, deviceScaleFactor=1, mobile=False)
        yield tools
        tools.ws.close()
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
        for _ in range(50):  # helper processes may still write into the profile for a moment
            shutil.rmtree(profile, ignore_errors=True)
            if not os.path.exists(profile):
                break
            time.sleep(0.1)


def assert_self_contained(page, url):
    requests = page.requests()
    assert url in requests, f"the page load itself was not recorded: {requests[:5]}"
    leaving = [r for r in requests if r != url and not r.startswith("data:")]
    assert not leaving, f"the report made requests: {leaving}"
    assert page.js("[...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.alt)") == []


def centers(page, selector):
    """Screen centres {x, y} of the elements matching a CSS selector."""
    return page.js("[...document.querySelectorAll(%s)].map(e => { const r = e.getBoundingClientRect();"
                   " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })" % json.dumps(selector))


# --- the loop run -------------------------------------------------------------------------------

def committed_values(events, uid):
    """{iteration: value} of an OUTPUT port, from the workflow_done lines of finished iterations."""
    done = {e["iteration"] for e in events if e["event"] == "iteration_done"}
    values = {}
    for e in events:
        if e["event"] == "workflow_done" and e["iteration"] in done and uid in e["outputs"]:
            values[e["iteration"]] = json.loads(e["outputs"][uid][len("json "):])
    return values


def test_the_loop_run_is_what_the_report_expects(runs):
    events = read_events(os.path.join(runs["loop"], "events.jsonl"))
    kinds = [e["event"] for e in events]
    done = events[-1]
    assert done["event"] == "run_done" and done["stopped_by_until"] and done["iterations_completed"] == 51
    assert sorted(e["iteration"] for e in events if e["event"] == "stage_retry") == [7, 23]
    assert [e["iteration"] for e in events if e["event"] == "stage_failed"] == [29]
    assert kinds.count("stage_skipped") == 46  # the audit stage runs at iterations 9, 19, ..., 49


@needs_chromium
def test_loop_report_in_a_browser(runs, loop_report, page, tmp_path):
    events = read_events(os.path.join(runs["loop"], "events.jsonl"))
    url = page.open(loop_report)
    assert_self_contained(page, url)

    # Time per iteration: one bar per iteration; the retry and failure markers above iterations 7, 23 and 29.
    bars = {n: centers(page, f"#iteration-times #iteration-{n} path") for n in range(51)}
    assert all(len(b) == 1 for b in bars.values())
    assert not centers(page, "#iteration-times #iteration-51 path")
    retries = centers(page, "#iteration-times #marks-retry use")
    failures = centers(page, "#iteration-times #marks-failed use")
    assert sorted(round(m["x"]) for m in retries) == [round(bars[7][0]["x"]), round(bars[23][0]["x"])]
    assert [round(m["x"]) for m in failures] == [round(bars[29][0]["x"])]
    assert len(centers(page, "#iteration-times #marks-skipped use")) == 46
    problems = page.js("[...document.querySelectorAll('#stage-problems tbody tr')].map(r => r.innerText)")
    assert len(problems) == 3 and "check failed at iteration 29" in problems[2]

    # Cost per node: every node of the four workflows, with class names, sorted by total time.
    rows = page.js("[...document.querySelectorAll('#node-costs tbody tr')].map(r => [...r.cells].map(c => c.innerText))")
    timed = {(e["workflow"], n["node"]) for e in events if e["event"] == "workflow_done" for n in e["nodes"]}
    assert {(r[0], r[1]) for r in rows} == timed and len(rows) == len(timed) == 19
    blur = next(r for r in rows if r[2] == "ImageBlur")
    assert blur[0] == "feedback.json" and int(blur[3]) == 51
    totals = [float(r[4]) for r in rows]
    assert totals == sorted(totals, reverse=True)

    # The frame port: 48 thumbnails spread over the 51 iterations, labelled, and a looping animation.
    labels = page.js("[...document.querySelectorAll('.contact-sheet[data-port=frame] figure')]"
                     ".map(f => [f.dataset.iteration, f.querySelector('figcaption').innerText, f.querySelector('img').naturalWidth])")
    assert len(labels) == 48
    assert labels[0][:2] == ["0", "iteration 0"] and labels[-1][:2] == ["50", "iteration 50"]
    assert all(caption == f"iteration {number}" and width > 0 for number, caption, width in labels)
    source = page.js("document.querySelector('img.animation[data-port=frame]').src")
    from PIL import Image
    animation = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
    assert animation.format == "WEBP" and animation.n_frames >= 12 and animation.info.get("loop") == 0

    # The score plot: one marker per iteration, the threshold line at 0.995 on the markers' scale.
    scores = committed_values(events, "score")
    markers = centers(page, "#plot-score #values-score use")
    assert len(markers) == len(scores) == 51
    (x0, s0), (x1, s1) = (0, scores[0]), (20, scores[20])
    pixels_per_unit = (markers[x1]["y"] - markers[x0]["y"]) / (s1 - s0)
    threshold = centers(page, "#plot-score #threshold-score path")
    assert len(threshold) == 1
    expected_y = markers[x0]["y"] + (0.995 - s0) * pixels_per_unit
    # 0.3 px is 0.002 on this plot's scale: a line drawn at 0.993 or 0.997 is caught.
    assert abs(threshold[0]["y"] - expected_y) < 0.3, (threshold, expected_y)
    assert "until score > 0.995" in page.js("document.querySelector('#plot-score').textContent")
    # The boolean port and the text ports.
    assert len(centers(page, "#plot-converged #values-converged use")) == 51
    header = page.js("[...document.querySelectorAll('#string-values thead th')].map(c => c.innerText)")
    assert header == ["iteration", "note", "audit"]
    note_rows = page.js("[...document.querySelectorAll('#string-values tbody tr')].map(r => r.cells[1].innerText)")
    assert len(note_rows) == 51 and note_rows[0].startswith("iteration 0: mean ")

    shot = page.screenshot(min(1900, page.js("document.documentElement.scrollHeight")))
    from PIL import ImageStat
    assert ImageStat.Stat(shot.convert("L")).stddev[0] > 20, "the screenshot is blank"
    sheet = page.js("(() => { const r = document.querySelector('.contact-sheet[data-port=frame]').getBoundingClientRect();"
                    " return [r.left, r.top + scrollY, r.right, Math.min(r.bottom + scrollY, 1900)]; })()")
    assert ImageStat.Stat(shot.crop(tuple(int(v) for v in sheet)).convert("L")).stddev[0] > 20
    shot.save(tmp_path / "report.png")
    if os.environ.get("DISCOMFORT_UPDATE_SCREENSHOT") == "1":
        os.makedirs(os.path.join(REPO, "docs"), exist_ok=True)
        # 256 colours keep the README's picture small (a third of the full-colour file) and sharp.
        shot.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            os.path.join(REPO, "docs", "report.png"), optimize=True)


# --- the sweep ----------------------------------------------------------------------------------

@needs_chromium
def test_sweep_report_lays_the_grid_out_by_parameter(runs, sweep_report, page):
    events = read_events(os.path.join(runs["sweep"], "events.jsonl"))
    points = {e["point"]: e for e in events}
    assert len(points) == 12 and sum(not p["ok"] for p in points.values()) == 4
    url = page.open(sweep_report)
    assert_self_contained(page, url)
    sections = page.js("""[...document.querySelectorAll('#sweep-grid table.xy')].map(t => ({
        title: t.closest('.wide').previousElementSibling.innerText,
        columns: [...t.querySelectorAll('th.col-label')].map(c => c.innerText),
        rows: [...t.querySelectorAll('tbody tr')].map(r => ({
            label: r.querySelector('th.row-label').innerText,
            cells: [...r.querySelectorAll('td.cell')].map(c => ({point: c.dataset.point, failed: c.classList.contains('failed'),
                text: c.innerText, images: [...c.querySelectorAll('img')].map(i => i.naturalWidth)}))}))}))""")
    # mix varies slowest: one section per mix value, radius down, sigma across.
    assert [s["title"] for s in sections] == ["mix = 0", "mix = 1"]
    seen = set()
    for section in sections:
        mix = float(section["title"].split("= ")[1])
        assert section["columns"] == ["0.5", "6"]
        assert [r["label"] for r in section["rows"]] == ["1", "12", "wide"]
        for row in section["rows"]:
            for column, cell in zip(section["columns"], row["cells"]):
                point = points[int(cell["point"])]
                assert point["params"]["mix"] == mix and str(point["params"]["radius"]) == row["label"]
                assert point["params"]["sigma"] == float(column)
                if point["ok"]:
                    assert not cell["failed"] and cell["images"] and all(w > 0 for w in cell["images"])
                    assert f"brightness {point['outputs']['brightness']:.4g}" in cell["text"]
                else:
                    # A STRING under the INT port feeding ImageBlur: caught at the port, before ComfyUI runs.
                    assert cell["failed"] and "port 'radius'" in cell["text"] and not cell["images"]
                seen.add(point["point"])
    assert seen == set(points)
    # Time per point: a bar per point, the failed ones red.
    for index, point in points.items():
        fill = page.js("getComputedStyle(document.querySelector('#iteration-times #iteration-%d path')).fill" % index)
        assert (fill == "rgb(214, 39, 40)") == (not point["ok"]), (index, fill)


# --- through the Python package -----------------------------------------------------------------

@pytest.fixture(scope="module")
def failing_python_run(d, tmp_path_factory):
    """The feedback loop and a counter that fails when it reaches 3 (iteration 2), run by the Python
    package; its folder and the events on_event received."""
    from discomfort import ExecutionError
    run_dir = str(tmp_path_factory.mktemp("python_run"))
    events = []
    image = d.Tools.open_image_as_tensor(SEED)
    with pytest.raises(ExecutionError):
        asyncio.run(d.run([FEEDBACK, counter_workflow(fail_at=3)], inputs={"frame": image, "counter": 0},
                          iterations=6, output_dir=run_dir, on_event=events.append))
    return run_dir, events


def test_a_failing_python_run_reports_its_error(failing_python_run):
    run_dir, events = failing_python_run
    run = report.load_run(run_dir, events)
    assert [i.number for i in run.iterations if i.ok] == [0, 1]
    assert [i.number for i in run.iterations if not i.ok] == [2]
    assert run.error["class_type"] == "DiscomfortTestFailAt" and run.error["iteration"] == 2
    assert run.ports["counter"].values == {0: 1, 1: 2}
    assert sorted(run.ports["frame"].images) == [0, 1]
    html = open(report.generate(run_dir, events=events, title="failing run")).read()
    assert 'id="run-error"' in html and "test failure: value reached 3" in html and "<title>failing run</title>" in html


@needs_chromium
def test_a_failing_python_run_in_a_browser(failing_python_run, page):
    run_dir, events = failing_python_run
    url = page.open(report.generate(run_dir, events=events, out=os.path.join(run_dir, "browser.html")))
    assert_self_contained(page, url)
    assert "DiscomfortTestFailAt" in page.js("document.querySelector('#run-error').innerText")
    fills = page.js("[0, 1, 2].map(n => getComputedStyle(document.querySelector('#iteration-' + n + ' path')).fill)")
    assert fills[2] == "rgb(214, 39, 40)" and fills[0] != fills[2] and fills[1] != fills[2]
    assert len(centers(page, "#plot-counter #values-counter use")) == 2
    assert len(centers(page, ".contact-sheet[data-port=frame] img")) == 2


def test_a_python_sweep_report(d, tmp_path):
    blur = {"1": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "frame"}},
            "2": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "radius"}},
            "3": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": ["2", 0], "sigma": 2.0}},
            "4": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "blurred", "input_data": ["3", 0]}}}
    image = d.Tools.open_image_as_tensor(SEED)
    results = asyncio.run(d.sweep([blur], grid={"radius": [1, 4, 9]}, inputs={"frame": image}, output_dir=str(tmp_path)))
    html = open(report.generate(tmp_path, events=results)).read()
    cells = re.findall(r'<td class="cell" data-point="(\d+)">\s*<img src="data:image/webp;base64,', html)
    assert cells == ["0", "1", "2"]
    assert re.findall(r'<th class="col-label">([^<]*)</th>', html) == ["1", "4", "9"]


# --- the pieces, on the real runs' files --------------------------------------------------------

def test_values_recorded_by_iteration_done_take_precedence(runs):
    """When the engine lists an iteration's committed values, they are used as given."""
    events = read_events(os.path.join(runs["loop"], "events.jsonl"))
    for e in events:
        if e["event"] == "iteration_done":
            e["values"] = {"score": e["iteration"] * 2, "label": f"it {e['iteration']}"}
    run = report.load_run(runs["loop"], events)
    assert run.ports["score"].values == {i: i * 2 for i in range(51)}
    assert run.ports["score"].kind == "number" and run.ports["label"].kind == "string"
    assert "brightness" not in run.ports or not run.ports["brightness"].values


def test_a_trace_gives_the_node_costs(runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(runs["loop"], run_dir)
    trace = {"traceEvents": [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "discomfort"}},
        {"ph": "X", "cat": "node", "name": "KSampler", "ts": 0, "dur": 2_000_000, "pid": 1, "tid": 1,
         "args": {"workflow": "gen.json", "node": "3", "class_type": "KSampler"}},
        {"ph": "B", "cat": "node", "name": "VAEDecode", "ts": 2_000_000, "pid": 1, "tid": 1,
         "args": {"workflow": "gen.json", "node": "8", "class_type": "VAEDecode"}},
        {"ph": "B", "cat": "spill", "name": "spill latent", "ts": 2_100_000, "pid": 1, "tid": 2, "args": {"bytes": 3 << 20}},
        {"ph": "E", "ts": 2_300_000, "pid": 1, "tid": 2},
        {"ph": "E", "ts": 2_500_000, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "node", "name": "KSampler", "ts": 3_000_000, "dur": 1_000_000, "pid": 1, "tid": 1,
         "args": {"workflow": "gen.json", "node": "3", "class_type": "KSampler"}},
    ]}
    (run_dir / "trace.json").write_text(json.dumps(trace))
    html = open(report.generate(run_dir)).read()
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"num\">([^<]*)</td><td>([^<]*)</td>\s*<td class=\"num\">(\d+)</td>"
                      r"<td class=\"num\">([\d.]+)</td>", html)
    assert rows == [("gen.json", "3", "KSampler", "2", "3.000"), ("gen.json", "8", "VAEDecode", "1", "0.500")]
    assert "From the trace (trace.json)" in html
    spill = re.search(r"<tr><td>spill</td><td class=\"num\">1</td><td class=\"num\">0.200</td>\s*<td class=\"num\">3.0</td>", html)
    assert spill, "the spill span is not summed in the trace table"


def test_images_alone_make_a_report(runs, tmp_path):
    """A run without --events still shows its images."""
    for name in ("frame_00000.png", "frame_00010.png", "frame_00020.png"):
        shutil.copy(os.path.join(runs["loop"], name), tmp_path / name)
    run = report.load_run(tmp_path)
    assert sorted(run.ports["frame"].images) == [0, 10, 20]
    html = open(report.generate(tmp_path)).read()
    assert html.count('<figure data-iteration=') == 3 and "no events.jsonl" in html


def test_appended_events_report_the_last_run_and_keep_a_resume(runs):
    events = read_events(os.path.join(runs["loop"], "events.jsonl"))
    earlier = [{"event": "run_start", "iterations": 2, "first_iteration": 0, "time": 1.0},
               {"event": "iteration_start", "iteration": 0, "time": 1.0},
               {"event": "iteration_done", "iteration": 0, "seconds": 9.0, "files": [], "time": 10.0},
               {"event": "run_done", "iterations_completed": 1, "stopped_by_until": False, "time": 10.0}]
    split = next(i for i, e in enumerate(events) if e["event"] == "iteration_start" and e["iteration"] == 20)
    first_half = [e for e in events[:split] if e["event"] != "run_done"]
    resumed = [{"event": "run_start", "iterations": 60, "first_iteration": 20, "time": events[split]["time"]}]
    second_half = events[split:]
    run = report.load_run(runs["loop"], earlier + first_half + resumed + second_half)
    assert [i.number for i in run.iterations] == list(range(51))
    assert run.iterations[0].seconds != 9.0 and run.first_iteration == 0
    assert any("holds 2 runs" in note for note in run.notes)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        report.generate(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="neither events"):
        report.generate(tmp_path)
    (tmp_path / "events.jsonl").write_text('{"event": "run_start"}\nnot json\n{"event": "run_done"}\n')
    with pytest.raises(report.EventsError, match=r"events.jsonl, line 2"):
        report.generate(tmp_path)
    # A last line cut short (a run killed while writing it) is left out.
    (tmp_path / "events.jsonl").write_text('{"event": "run_start", "iterations": 1, "time": 1}\n{"event": "iter')
    assert report.load_run(tmp_path).planned_iterations == 1


def test_until_thresholds():
    from discomfort_report_by_path.until import parse_until
    parsed = parse_until("score > 0.9 && iteration >= 3 || (0.2 < loss) && iteration % 2 == 0 && !done")
    assert {k: [(t.op, t.value) for t in v] for k, v in parsed.items()} == {
        "score": [(">", 0.9)], "iteration": [(">=", 3.0)], "loss": [(">", 0.2)]}
    assert parse_until(None) == {} and parse_until("max(a, b) > 1") == {}


def test_thumbnails_are_spread_evenly():
    from discomfort_report_by_path.images import evenly
    assert evenly(5, 48) == [0, 1, 2, 3, 4]
    picked = evenly(1000, 48)
    assert len(picked) == 48 and picked[0] == 0 and picked[-1] == 999
    gaps = {b - a for a, b in zip(picked, picked[1:])}
    assert gaps <= {21, 22}


def test_the_command_line_runs_without_the_compiled_core(runs, tmp_path):
    """`python .../discomfort/report RUN_DIR -o FILE`, with no discomfort package on the path; loading
    the package by its path imports neither discomfort nor torch."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = tmp_path / "r.html"
    result = subprocess.run([sys.executable, REPORT_PACKAGE, runs["sweep"], "-o", str(out)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out) and '<table class="xy"' in out.read_text()
    failed = subprocess.run([sys.executable, REPORT_PACKAGE, str(tmp_path / "nowhere")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "run folder not found" in failed.stderr and not failed.stdout
    probe = ("import importlib.util, sys; p = sys.argv[1]; s = importlib.util.spec_from_file_location("
             "'r', p + '/__init__.py', submodule_search_locations=[p]); m = importlib.util.module_from_spec(s);"
             " sys.modules['r'] = m; s.loader.exec_module(m); m.generate(sys.argv[2], out=sys.argv[3]);"
             " print([n for n in sys.modules if n.split('.')[0] in ('discomfort', 'torch')])")
    result = subprocess.run([sys.executable, "-c", probe, REPORT_PACKAGE, runs["sweep"], str(tmp_path / "p.html")],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_python_dash_m_on_the_built_package(runs, tmp_path):
    """`python -m discomfort.report` where the discomfort package is importable (the build's, here)."""
    spec = importlib.util.find_spec("discomfort")
    if spec is None:
        pytest.skip("the discomfort package is not importable here (PYTHONPATH=build/release/python)")
    out = tmp_path / "m.html"
    result = subprocess.run([sys.executable, "-m", "discomfort.report", runs["sweep"], "-o", str(out)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out) and '<table class="xy"' in out.read_text()
