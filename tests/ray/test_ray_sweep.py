"""Sweeps on a Ray cluster (conftest.py: a head and two one-CPU worker nodes on 127.0.0.1) against
the real ComfyUI: results equal a local sweep's pixel for pixel, the setup workflow runs once per
actor, a lost node's points run again elsewhere, a node error is reported once, a wedged worker is
replaced, Ctrl-C stops every worker, mismatched versions and an unreachable head are refused."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements/dev.txt)")

from ray_sweep_support import DATA, REPO, SEED_IMAGE, TEST_NODES, package_dir, sweep_points

BLUR = os.path.join(DATA, "blur_sweep.json")
GRID = [("radius", list(range(1, 9))), ("alpha", [0.2, 0.6])]  # 16 points, first axis slowest
ITERATIONS = 2  # each point is a loop: the frame is blurred and sharpened twice


def load(path):
    with open(path) as f:
        return json.load(f)


def port(uid, source=None):
    inputs = {"unique_id": uid}
    if source is not None:
        inputs["input_data"] = source
    return {"class_type": "DiscomfortPort", "inputs": inputs}


def pixels(path):
    return np.asarray(Image.open(path))


def config_for(cluster, **extra):
    config = {"address": cluster.address, "cpu": True, "extra_nodes": [TEST_NODES]}
    config.update(extra)
    return config


def run(distributed, config, cancelled=lambda: False, on_line=None):
    lines = []

    def emit(line):
        json.dumps(line)  # what the CLI prints: every line must be JSON as it is
        lines.append(line)
        if on_line is not None:
            on_line(line, lines)

    rc = distributed.run_sweep(config, cancelled, emit)
    return rc, lines


def by_point(lines):
    return {line["point"]: line for line in lines}


def counted(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().split()


def assert_equal_to_local(lines, out_dir, reference_dir):
    for line in lines:
        name = os.path.join("point_%05d" % line["point"], "frame.png")
        assert line["files"] == [os.path.join(out_dir, name)]
        assert np.array_equal(pixels(line["files"][0]), pixels(os.path.join(reference_dir, name))), name


@pytest.fixture(scope="module")
def seed_tensor(d):
    """The seed image as the engine decodes a point's image."""
    points = asyncio.run(d.sweep([{"1": port("picture"), "2": port("out", ["1", 0])}], images=[SEED_IMAGE],
                                 image_port="picture"))
    return points[0]["outputs"]["out"]


@pytest.fixture(scope="module")
def local_reference(d, seed_tensor, tmp_path_factory):
    """The 16-point grid swept locally (in this process): the folder of its PNGs."""
    out = str(tmp_path_factory.mktemp("local"))
    points = asyncio.run(d.sweep([BLUR], grid=dict(GRID), inputs={"frame": seed_tensor}, iterations=ITERATIONS,
                                 output_dir=out))
    assert all(p["ok"] for p in points) and len(points) == 16
    return out


@pytest.fixture(scope="module")
def grid_run(cluster, distributed, tmp_path_factory):
    """The grid on Ray, the seed image loaded by a setup workflow that counts its runs."""
    folder = tmp_path_factory.mktemp("ray_grid")
    count_file = str(folder / "setup_runs.txt")
    setup = {"1": port("seed"),
             "2": {"class_type": "DiscomfortTestCount", "inputs": {"value": ["1", 0], "path": count_file}},
             "3": port("frame", ["2", 0])}
    out = str(folder / "out")
    rc, lines = run(distributed, config_for(cluster, points=sweep_points(GRID), workflows=[BLUR],
                                            iterations=ITERATIONS, set_values=[f"seed=@{SEED_IMAGE}"],
                                            setup={"name": "setup.json", "workflow": setup}, output_dir=out))
    return {"rc": rc, "lines": lines, "out": out, "count_file": count_file}


def test_grid_sweep_equals_the_local_sweep_pixel_for_pixel(grid_run, local_reference):
    lines = grid_run["lines"]
    assert grid_run["rc"] == 0
    assert sorted(line["point"] for line in lines) == list(range(16))
    expected = sweep_points(GRID)
    for line in lines:
        assert line["ok"] and line["event"] == "point_done" and line["attempt"] == 1
        assert line["params"] == expected[line["point"]]["params"]
        assert line["outputs"]["frame"]["shape"] == [1, 256, 256, 3]
        assert line["node"] == "127.0.0.1" and line["actor"] in (0, 1) and line["node_id"] and line["pid"]
    assert_equal_to_local(lines, grid_run["out"], local_reference)


def test_setup_runs_once_per_actor_not_per_point(grid_run):
    runs = counted(grid_run["count_file"])  # the pid of each setup run
    workers = {str(line["pid"]) for line in grid_run["lines"]}
    # 16 points, two actors: every actor that ran points ran the setup once, in its own process (an
    # actor still starting when the first one had finished every point is stopped before its setup)
    assert len(runs) == len(set(runs)) and 1 <= len(runs) <= 2
    assert workers <= set(runs)


def test_a_removed_node_s_points_run_again_elsewhere(two_worker_nodes, distributed, local_reference, tmp_path):
    cluster = two_worker_nodes
    slow = load(BLUR)  # the same pixels, 0.6 s slower per iteration: both workers get points
    slow["7"] = {"class_type": "DiscomfortTestSleep", "inputs": {"value": ["4", 0], "seconds": 0.6}}
    slow["5"]["inputs"]["image"] = ["7", 0]
    removed = {}

    def remove_a_busy_node(line, lines):
        nodes = {l["node_id"] for l in lines}
        if not removed and len(nodes) == 2:
            victim = next(n for n in nodes if n != line["node_id"])  # running its next point now
            cluster.remove_node(next(n for n in cluster.worker_nodes if n.node_id == victim))
            removed["node_id"], removed["after"] = victim, len(lines)

    out = str(tmp_path / "out")
    rc, lines = run(distributed, config_for(cluster, points=sweep_points(GRID),
                                            workflows=[{"name": "slow_blur.json", "workflow": slow}],
                                            iterations=ITERATIONS, set_values=[f"frame=@{SEED_IMAGE}"],
                                            output_dir=out), on_line=remove_a_busy_node)
    assert removed, "both nodes never ran a point: the test did not remove one"
    assert rc == 0
    assert sorted(line["point"] for line in lines) == list(range(16))  # every point once, none lost
    assert all(line["ok"] for line in lines)
    again = [line for line in lines if line["attempt"] == 2]
    assert again and all(line["node_id"] != removed["node_id"] for line in again)
    assert all(line["node_id"] != removed["node_id"] for line in lines[removed["after"]:])
    assert_equal_to_local(lines, out, local_reference)


def test_a_node_error_is_reported_once_and_not_retried(two_worker_nodes, distributed, tmp_path):
    count_file = str(tmp_path / "runs.txt")
    workflow = {"1": port("counter"),
                "2": {"class_type": "DiscomfortTestCount", "inputs": {"value": ["1", 0], "path": count_file}},
                "3": {"class_type": "DiscomfortTestAdd", "inputs": {"value": ["2", 0], "amount": 1}},
                "4": {"class_type": "DiscomfortTestFailAt", "inputs": {"value": ["3", 0], "fail_at": 6}},
                "5": port("counter", ["4", 0])}
    rc, lines = run(distributed, config_for(two_worker_nodes, points=sweep_points([("counter", [1, 5, 9])]),
                                            workflows=[{"name": "fails.json", "workflow": workflow}]))
    assert rc == 1
    assert sorted(line["point"] for line in lines) == [0, 1, 2]
    lines = by_point(lines)
    assert [lines[i]["ok"] for i in range(3)] == [True, False, True]
    assert lines[0]["outputs"] == {"counter": 2} and lines[2]["outputs"] == {"counter": 10}
    error = lines[1]["error"]
    assert error["code"] == "execution" and error["node_id"] == "4" and error["class_type"] == "DiscomfortTestFailAt"
    assert "value reached 6" in error["message"] and lines[1]["attempt"] == 1
    assert len(counted(count_file)) == 3  # each point ran once: the failing one was not run again


def test_a_wedged_worker_is_replaced_and_its_point_not_retried(two_worker_nodes, distributed):
    # Point 1 hangs in a node that ignores the interrupt: its worker reports a timeout and leaves
    # its process; Ray starts a fresh one, which takes points again. The others sleep 1.5 s so the
    # sweep outlasts the restart.
    workflow = {"1": port("counter"),
                "2": {"class_type": "DiscomfortTestHangAt",
                      "inputs": {"value": ["1", 0], "hang_at": 2, "seconds": 30.0, "check_interrupt": False,
                                 "marker": ""}},
                "3": {"class_type": "DiscomfortTestSleep", "inputs": {"value": ["2", 0], "seconds": 1.5}},
                "4": port("counter", ["3", 0])}
    lines, messages = [], []
    summary = distributed.execute(
        config_for(two_worker_nodes, points=sweep_points([("counter", list(range(1, 31)))]),
                   workflows=[{"name": "hangs.json", "workflow": workflow}], iteration_timeout=4,
                   interrupt_grace=1),
        lambda: False, lines.append, messages.append)
    assert sorted(line["point"] for line in lines) == list(range(30))
    hung = by_point(lines)[1]
    assert not hung["ok"] and hung["error"]["code"] == "timeout" and hung["attempt"] == 1
    assert "left running in the background" in hung["error"]["message"]
    assert all(line["ok"] for line in lines if line["point"] != 1)
    assert summary.actor_starts == 3, messages  # two actors, one replaced
    later = [l for l in lines if l["actor"] == hung["actor"] and l["pid"] != hung["pid"]]
    assert later, "the replaced worker ran no point"


def test_cancel_stops_every_worker(two_worker_nodes, distributed):
    workflow = {"1": port("x"), "2": {"class_type": "DiscomfortTestSleep", "inputs": {"value": ["1", 0],
                                                                                     "seconds": 5.0}},
                "3": port("y", ["2", 0])}
    state = {}

    def cancelled():
        if state.get("at") is None and len(lines) >= 1:
            state["at"] = time.monotonic()
        return state.get("at") is not None

    lines = []
    rc = distributed.run_sweep(config_for(two_worker_nodes, points=sweep_points([("x", list(range(8)))]),
                                          workflows=[{"name": "sleeps.json", "workflow": workflow}]),
                               cancelled, lines.append)
    assert rc == 130
    assert time.monotonic() - state["at"] < 15  # the running points were interrupted, not waited for
    assert len(lines) < 8
    actors = [a for a in ray._private.state.actors().values() if a["ActorClassName"] == "SweepWorker"]
    deadline = time.monotonic() + 20
    while any(a["State"] != "DEAD" for a in actors) and time.monotonic() < deadline:
        time.sleep(0.5)
        actors = [a for a in ray._private.state.actors().values() if a["ActorClassName"] == "SweepWorker"]
    assert actors and all(a["State"] == "DEAD" for a in actors)


def test_sigterm_stops_a_driver_process_whose_stdout_holds_only_the_lines(two_worker_nodes):
    # The CLI's way: the driver loaded by path in its own process, its stdout the sweep's lines only
    # (the workers' prints and Ray's messages go to stderr); SIGTERM cancels as Ctrl-C does.
    workflow = {"1": port("x"), "2": {"class_type": "DiscomfortTestSleep", "inputs": {"value": ["1", 0],
                                                                                     "seconds": 3.0}},
                "3": port("y", ["2", 0])}
    config = config_for(two_worker_nodes, points=sweep_points([("x", list(range(10)))]),
                        workflows=[{"name": "sleeps.json", "workflow": workflow}])
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER_PRELUDE + (
        "config = json.loads(sys.argv[1])\n"
        "sys.exit(m.run_sweep(config, lambda: False, lambda line: print(json.dumps(line), flush=True)))\n"),
        json.dumps(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # the first point done: the workers are running the next ones
    sent = time.monotonic()
    proc.send_signal(15)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert time.monotonic() - sent < 20
    lines = [json.loads(text) for text in (first + rest).splitlines()]  # every stdout line is a point's JSON
    assert lines and all(line["event"] == "point_done" for line in lines) and len(lines) < 10
    assert "cancelled" in err
    pids = {line["pid"] for line in lines}
    deadline = time.monotonic() + 20
    while any(os.path.exists(f"/proc/{pid}") for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


def test_a_worker_with_another_discomfort_version_is_refused(two_worker_nodes, distributed, monkeypatch, capsys):
    real = distributed._cluster.driver_versions(None)
    monkeypatch.setattr(distributed._cluster, "driver_versions", lambda path: dict(real, discomfort="9.9.9"))
    rc, lines = run(distributed, config_for(two_worker_nodes, points=sweep_points([("x", [1])]), workflows=[BLUR]))
    err = capsys.readouterr().err
    assert rc == 1 and lines == []
    assert f"this worker has Discomfort {real['discomfort']}, the driver has Discomfort 9.9.9" in err


def test_a_worker_with_another_comfyui_version_is_refused(two_worker_nodes, distributed, monkeypatch, capsys,
                                                          tmp_path):
    # The driver reads the version of its own COMFYUI_PATH; the workers keep theirs (the nodes' environment).
    workers_version = distributed._cluster.driver_versions(None)["comfyui"]
    (tmp_path / "comfyui_version.py").write_text('__version__ = "0.0.1"\n')
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))
    rc, lines = run(distributed, config_for(two_worker_nodes, points=sweep_points([("x", [1])]), workflows=[BLUR]))
    err = capsys.readouterr().err
    assert rc == 1 and lines == []
    assert f"this worker has ComfyUI {workers_version}, the driver has ComfyUI 0.0.1" in err


_DRIVER_PRELUDE = (
    "import importlib.util, json, sys\n"
    f"spec = importlib.util.spec_from_file_location('discomfort_distributed', {os.path.join(package_dir(), 'distributed.py')!r})\n"
    "m = importlib.util.module_from_spec(spec); sys.modules['discomfort_distributed'] = m\n"
    "spec.loader.exec_module(m)\n")


def _driver_subprocess(script: str, timeout: float = 60):
    # The environment a CLI user has: without the loopback switch the tests' cluster needs.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _DRIVER_PRELUDE + script], capture_output=True, text=True,
                          timeout=timeout, env=env)
    return proc, time.monotonic() - started


def test_an_unreachable_address_is_a_clear_error_within_seconds():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, seconds = _driver_subprocess(
        f"config = {{'address': '127.0.0.1:{port}', 'points': [{{'index': 0, 'params': {{}}, 'image': None}}],"
        f" 'workflows': [{BLUR!r}]}}\n"
        "sys.exit(m.run_sweep(config, lambda: False, lambda line: print(json.dumps(line))))\n")
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"cannot reach the Ray head at 127.0.0.1:{port}" in proc.stderr
    assert "discomfort._core" not in proc.stderr
    assert seconds < 15, seconds


def test_without_ray_every_entry_point_says_how_to_install_it():
    proc, _ = _driver_subprocess(
        "sys.modules['ray'] = None  # as if not installed\n"
        "config = {'address': 'local:1', 'points': [{'index': 0, 'params': {}, 'image': None}],"
        f" 'workflows': [{BLUR!r}]}}\n"
        "rc = m.run_sweep(config, lambda: False, print)\n"
        "print('core loaded' if 'discomfort._core' in sys.modules else 'no core', file=sys.stderr)\n"
        "sys.exit(rc)\n")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "pip install 'discomfort[ray]'" in proc.stderr and "no core" in proc.stderr


def test_python_api_image_sweep_with_collect_equals_local(two_worker_nodes, d, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for name in ("b.png", "a.png", "c.png"):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / name)
    workflow = {"1": port("picture"), "2": port("strength"),
                "3": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 2, "sigma": 1.0}},
                "4": port("result", ["3", 0]), "5": port("strength_out", ["2", 0])}
    common = dict(images=str(folder), image_port="picture", inputs={"strength": 0.5})
    local = asyncio.run(d.sweep([workflow], output_dir=str(tmp_path / "local"), **common))
    seen = []
    remote = asyncio.run(d.sweep([workflow], output_dir=str(tmp_path / "ray"), ray=two_worker_nodes.address,
                                 collect=True, on_point=lambda p: seen.append(p["index"]), **common))
    assert sorted(seen) == [0, 1, 2]
    assert [p["index"] for p in remote] == [0, 1, 2]
    assert [p["image"] for p in remote] == [p["image"] for p in local]
    for mine, theirs in zip(remote, local):
        assert mine["ok"] and mine["error"] is None and mine["node"] == "127.0.0.1" and mine["actor"] in (0, 1)
        assert mine["outputs"]["strength_out"] == 0.5
        assert torch.equal(mine["outputs"]["result"], theirs["outputs"]["result"])
        assert [os.path.relpath(f, tmp_path / "ray") for f in mine["files"]] == \
            [os.path.relpath(f, tmp_path / "local") for f in theirs["files"]]
        for f, g in zip(mine["files"], theirs["files"]):
            assert np.array_equal(pixels(f), pixels(g))
    assert not [n for n in os.listdir(tmp_path / "ray" / "point_00000") if n.startswith(".partial")]


def test_python_api_refuses_values_that_cannot_travel(two_worker_nodes, d):
    import discomfort
    with pytest.raises(discomfort.TypeMismatchError, match="'model'.*cannot travel"):
        asyncio.run(d.sweep([BLUR], grid={"radius": [1]}, inputs={"model": object()}, ray=two_worker_nodes.address))


def test_python_api_without_ray_says_how_to_install_it(d, monkeypatch):
    import discomfort
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(discomfort.PythonError, match=r"pip install 'discomfort\[ray\]'"):
        asyncio.run(d.sweep([BLUR], grid={"radius": [1]}, ray="local:1"))


def test_local_cluster_is_started_for_the_sweep_and_stopped_after(tmp_path):
    # `--ray local:N` from a process of its own (a process holds one Ray session: this one's is the
    # shared cluster's): a head and N worker nodes on 127.0.0.1 for this sweep only.
    out = tmp_path / "out"
    config = {"address": "local:1", "points": sweep_points([("radius", [1, 3])]), "workflows": [BLUR],
              "set_values": [f"frame=@{SEED_IMAGE}", "alpha=0.5"], "output_dir": str(out), "cpu": True}
    proc, _ = _driver_subprocess(
        f"config = json.loads({json.dumps(config)!r})\n"
        "rc = m.run_sweep(config, lambda: False, lambda line: print(json.dumps(line), flush=True))\n"
        "import ray\n"
        "print('ray session left' if ray.is_initialized() else 'no ray session', file=sys.stderr)\n"
        "sys.exit(rc)\n", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(text) for text in proc.stdout.splitlines()]
    assert sorted(line["point"] for line in lines) == [0, 1] and all(line["ok"] for line in lines)
    assert {line["node"] for line in lines} == {"127.0.0.1"}
    assert sorted(os.listdir(out)) == ["point_00000", "point_00001"]
    assert "started a local Ray cluster of 1 worker node(s) on 127.0.0.1" in proc.stderr
    assert "no ray session" in proc.stderr


def test_python_api_cancelling_the_task_stops_every_worker(two_worker_nodes, d):
    workflow = {"1": port("x"), "2": {"class_type": "DiscomfortTestSleep", "inputs": {"value": ["1", 0],
                                                                                     "seconds": 3.0}},
                "3": port("y", ["2", 0])}

    async def main():
        first = asyncio.Event()

        async def on_point(point):
            first.set()

        task = asyncio.create_task(d.sweep([workflow], grid={"x": list(range(8))}, ray=two_worker_nodes.address,
                                           on_point=on_point))
        await first.wait()
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - cancelled_at

    assert asyncio.run(main()) < 15
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        alive = [a for a in ray._private.state.actors().values()
                 if a["ActorClassName"] == "SweepWorker" and a["State"] != "DEAD"]
        if not alive:
            break
        time.sleep(0.5)
    assert not alive


def test_the_cli_sweeps_on_a_local_cluster_with_the_local_sweep_s_files(tmp_path):
    # The README's command through the built CLI (C++ → the driver → actors): `--ray local:1
    # --collect` writes the same files, byte for byte, as the same sweep run locally.
    cli = os.environ.get("DISCOMFORT_CLI") or os.path.join(REPO, "build", "release", "cli", "discomfort")
    if not os.path.exists(cli):
        pytest.skip(f"the CLI is not built ({cli})")
    images = tmp_path / "images"
    images.mkdir()
    with Image.open(SEED_IMAGE) as seed:
        seed.convert("RGB").save(images / "a.png")
        seed.convert("RGB").rotate(90).save(images / "b.png")
    common = [cli, "sweep", os.path.join(REPO, "examples", "feedback_loop", "feedback.json"), "--images",
              str(images), "--image-port", "frame", "--iterations", "2", "--cpu"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    on_ray = subprocess.run(common + ["--ray", "local:1", "--collect", "--out", str(tmp_path / "ray")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    local = subprocess.run(common + ["--out", str(tmp_path / "local")], capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr[-3000:]
    lines = [json.loads(text) for text in on_ray.stdout.splitlines()]  # stdout: the points' lines only
    assert sorted(line["point"] for line in lines) == [0, 1]
    assert all(line["ok"] and line["node"] == "127.0.0.1" and line["actor"] == 0 for line in lines)
    names = sorted(os.path.relpath(os.path.join(d, f), tmp_path / "local")
                   for d, _, files in os.walk(tmp_path / "local") for f in files)
    assert names == ["point_00000/frame.png", "point_00001/frame.png"]
    for name in names:
        with open(tmp_path / "local" / name, "rb") as a, open(tmp_path / "ray" / name, "rb") as b:
            assert a.read() == b.read(), name
