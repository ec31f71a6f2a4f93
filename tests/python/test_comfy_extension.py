"""The repository as a ComfyUI custom-node package, loaded into the running ComfyUI the way
ComfyUI loads custom_nodes/* (nodes.load_custom_node), and the loop executor's body run from
outside the engine thread, as ComfyUI's own executor would call it."""

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
import uuid

import pytest
import torch

import discomfort
from conftest import REPO, counter_workflow


@pytest.fixture(scope="module")
def comfy_nodes(d):
    d._engine.load_nodes(REPO)  # as ComfyUI loads custom_nodes/*; node definitions are fetched again
    import nodes
    return nodes


@pytest.fixture
def saved_workflows(d):
    """ComfyUI's saved-workflows folder (an allowed folder) and a writer of uniquely named files in it."""
    import folder_paths
    folder = os.path.join(folder_paths.get_user_directory(), "default", "workflows")
    os.makedirs(folder, exist_ok=True)
    written = []

    def write(workflow, stem="wf"):
        name = f"{stem}-{uuid.uuid4().hex[:8]}.json"
        with open(os.path.join(folder, name), "w") as f:
            json.dump(workflow, f)
        written.append(name)
        return name

    yield write
    for name in written:
        os.remove(os.path.join(folder, name))


def test_root_package_registers_the_nodes(comfy_nodes):
    mappings = comfy_nodes.NODE_CLASS_MAPPINGS
    assert mappings["DiscomfortPort"].__module__ == "discomfort_bridge.nodes"
    loop = mappings["DiscomfortLoopExecutor"]
    assert loop.__module__ == "discomfort.comfy_nodes"  # the real node, not the "core not built" placeholder
    assert "workflow_paths" in loop.INPUT_TYPES()["required"]


def test_loop_executor_node_runs_a_workflow_file(comfy_nodes, saved_workflows):
    name = saved_workflows(counter_workflow(3), "counter")
    node = comfy_nodes.NODE_CLASS_MAPPINGS["DiscomfortLoopExecutor"]()
    out = node.run(workflow_paths=name, iterations=4, initial_inputs="counter: 5\n# comment",
                   return_port="counter")
    result, summary, sheet = out["result"]
    assert result == 17 and json.loads(summary) == {"counter": 17} and out["ui"]["text"] == [summary]
    assert sheet is None  # no IMAGE OUTPUT port, and nothing takes the contact sheet: no error either
    with pytest.raises(KeyError):
        node.run(workflow_paths=name, iterations=1, initial_inputs="counter: 1", return_port="nope")
    with pytest.raises(FileNotFoundError, match="DiscomfortLoopExecutor, workflow_paths: file 'no/such/file.json'"):
        node.run(workflow_paths="no/such/file.json", iterations=1, initial_inputs="")


def test_loop_executor_node_returns_a_contact_sheet_of_the_image_port(comfy_nodes, saved_workflows):
    """counter -> +40 gray levels -> an EmptyImage of that gray -> the IMAGE OUTPUT `frame`."""
    workflow = {**counter_workflow(40 * 0x010101),
                "10": {"class_type": "EmptyImage", "inputs": {"width": 160, "height": 96, "batch_size": 1,
                                                              "color": ["2", 0]}},
                "11": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "frame", "input_data": ["10", 0]}}}
    name = saved_workflows(workflow, "frames")
    node = comfy_nodes.NODE_CLASS_MAPPINGS["DiscomfortLoopExecutor"]()
    out = node.run(workflow_paths=name, iterations=3, initial_inputs="counter: 0", return_port="counter")
    result, summary, sheet = out["result"]
    assert result == 120 * 0x010101
    # Three 160 x 96 cells (wider than their labels) in two columns, each over its 20-pixel label strip.
    assert sheet.dtype == torch.float32 and list(sheet.shape) == [1, 2 * (96 + 20), 2 * 160, 3]
    for iteration, (row, column) in enumerate([(0, 0), (0, 1), (1, 0)]):
        cell = sheet[0, row * 116:row * 116 + 96, column * 160:(column + 1) * 160]
        assert (cell * 255 - 40 * (iteration + 1)).abs().max() < 1, iteration
        assert sheet[0, row * 116 + 96:row * 116 + 116, column * 160:(column + 1) * 160].max() > 0.5  # its label
    from discomfort.loop_images import BACKGROUND
    assert (sheet[0, 116:, 160:] * 255 - torch.tensor(BACKGROUND)).abs().max() < 1e-3  # no fourth cell


def test_loop_executor_inside_a_discomfort_run_is_refused_clearly(d, comfy_nodes, saved_workflows):
    name = saved_workflows(counter_workflow(1), "counter")
    outer = {"1": {"class_type": "DiscomfortLoopExecutor",
                   "inputs": {"workflow_paths": name, "iterations": 1, "initial_inputs": "counter: 1"}}}
    with pytest.raises(discomfort.ExecutionError) as info:
        asyncio.run(d.run([outer]))
    assert "cannot nest" in str(info.value) and info.value.class_type == "DiscomfortLoopExecutor"


def test_initial_inputs_parsing():
    from discomfort.comfy_nodes import parse_initial_inputs
    assert parse_initial_inputs("a: 1\nb: [1, 2]\nc: hello world\nd: 'q'\n\n# x") == \
        {"a": 1, "b": [1, 2], "c": "hello world", "d": "q"}
    with pytest.raises(ValueError):
        parse_initial_inputs("no separator")


def test_pyproject_has_the_comfy_table():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    assert project["tool"]["comfy"]["DisplayName"] == "Discomfort"
    assert project["project"]["name"] == "discomfort"


def _checkout_without_build(tmp_path):
    """This checkout's sources (linked) in a folder with no build/: the extension as cloned, not built."""
    checkout = tmp_path / "discomfort"
    checkout.mkdir()
    for name in ("__init__.py", "python", "bridge", "examples"):
        os.symlink(os.path.join(REPO, name), checkout / name)
    return checkout


def test_without_a_built_core_the_extension_says_how_to_build_it(tmp_path):
    # A Python that cannot import discomfort, and a checkout without a build folder.
    checkout = _checkout_without_build(tmp_path)
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("discomfort_ext", {str(checkout / "__init__.py")!r})
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)
node = ext.NODE_CLASS_MAPPINGS["DiscomfortLoopExecutor"]
assert "DiscomfortPort" in ext.NODE_CLASS_MAPPINGS and ext.CORE_ERROR
assert "pip install --no-build-isolation" in node.DESCRIPTION
# The pure-Python nodes register without the core.
assert ext.NODE_CLASS_MAPPINGS["DiscomfortFolderImageLoader"].FUNCTION == "load"
assert ext.NODE_CLASS_MAPPINGS["DiscomfortImageDescriber"].FUNCTION == "describe"
assert "discomfort" not in sys.modules  # nothing imported the package (and its core)
# Each placeholder is the real node's definition, read independently here from comfy_nodes.py.
spec = importlib.util.spec_from_file_location("real_nodes", {os.path.join(REPO, "python", "discomfort", "comfy_nodes.py")!r})
real = importlib.util.module_from_spec(spec)
spec.loader.exec_module(real)
for name, original in real.NODE_CLASS_MAPPINGS.items():
    shown = ext.NODE_CLASS_MAPPINGS[name]
    assert shown.INPUT_TYPES() == original.INPUT_TYPES(), name
    for attribute in ("RETURN_TYPES", "RETURN_NAMES", "FUNCTION", "CATEGORY"):
        assert getattr(shown, attribute) == getattr(original, attribute), (name, attribute)
    assert getattr(shown, "OUTPUT_NODE", False) == getattr(original, "OUTPUT_NODE", False), name
    assert shown.DESCRIPTION.startswith("NOT BUILT") and "(core not built)" in ext.NODE_DISPLAY_NAME_MAPPINGS[name]
    try:
        getattr(shown(), shown.FUNCTION)(workflow_paths="x", iterations=1)
        raise AssertionError(name + " ran without the core")
    except RuntimeError as exc:
        assert "scripts/setup" in str(exc)
print("OK")
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "OK", out.stderr
    assert "need the compiled core" in out.stderr  # the warning in ComfyUI's log


def test_the_build_folder_is_chosen_by_name_not_by_file_time(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "extension_under_test", os.path.join(REPO, "python", "discomfort", "comfy_extension.py"))
    extension = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extension)

    def core(build, age):
        package = tmp_path / "build" / build / "python" / "discomfort"
        package.mkdir(parents=True, exist_ok=True)
        so = package / "_core.cpython-311-x86_64-linux-gnu.so"
        so.write_bytes(b"")
        os.utime(so, (1e9 - age, 1e9 - age))
        return str(tmp_path / "build" / build / "python")

    assert extension.build_package_folders(str(tmp_path)) == []
    core("asan", 0)  # the newest, and never a candidate: a sanitizer build cannot load into a plain Python
    debug = core("debug", 1)
    release = core("release", 100)
    assert extension.build_package_folders(str(tmp_path)) == [release, debug]
    os.remove(os.path.join(release, "discomfort", "_core.cpython-311-x86_64-linux-gnu.so"))
    assert extension.build_package_folders(str(tmp_path)) == [debug]


def test_image_nodes_are_registered(comfy_nodes):
    mappings = comfy_nodes.NODE_CLASS_MAPPINGS
    for name in ("DiscomfortFolderImageLoader", "DiscomfortImageDescriber"):
        assert mappings[name].CATEGORY == "discomfort/image"
    assert mappings["DiscomfortFolderImageLoader"].RETURN_TYPES == ("IMAGE", "INT", "STRING")


def test_test_runner_exposes_a_sub_workflows_ports(comfy_nodes, saved_workflows):
    import torch
    from conftest import passthrough_workflow
    runner = comfy_nodes.NODE_CLASS_MAPPINGS["DiscomfortTestRunner"]()
    counter = saved_workflows(counter_workflow(2), "counter")
    out = runner.run(workflow_json=counter, max_iterations=3, unique_id_input1="counter", input1=10,
                     unique_id_output2="counter")
    assert out == (None, 16, None, None, None)  # state carried over 3 iterations, into the slot asked for
    passthrough = saved_workflows(passthrough_workflow("x", "y"), "pass")
    tensor = torch.rand(1, 4, 4, 3)
    out = runner.run(workflow_json=passthrough, unique_id_input3="x", input3=tensor, unique_id_output1="y")
    assert out[0] is tensor  # by reference, as the original's ref types
    with pytest.raises(KeyError, match="no OUTPUT port 'nope'"):
        runner.run(workflow_json=passthrough, unique_id_input1="x", input1=1, unique_id_output1="nope")
    with pytest.raises(ValueError, match="unique_id_input2 is empty"):
        runner.run(workflow_json=passthrough, input2=1)
    with pytest.raises(ValueError, match="input1 is not connected"):
        runner.run(workflow_json=passthrough, unique_id_input1="x")


def test_original_test_runner_workflow_converts_with_its_widgets(d, comfy_nodes):
    # testrunner2.json was saved by the original's UI: its widget order must map onto our inputs.
    from conftest import ORIGINAL_TESTDATA
    path = os.path.join(ORIGINAL_TESTDATA, "testrunner2.json")
    with open(path) as f:
        api = d._engine.to_api(json.load(f), "testrunner2.json")
    runners = {k: v for k, v in api.items() if v["class_type"] == "DiscomfortTestRunner"}
    assert len(runners) == 2
    by_file = {v["inputs"]["workflow_json"].rsplit("/", 1)[-1]: v for v in runners.values()}
    model, sampler = by_file["test_sdxl_model.json"], by_file["test_sdxl_ksampler.json"]
    assert [model["inputs"][f"unique_id_output{i}"] for i in range(1, 4)] == ["model", "clip", "vae"]
    assert [sampler["inputs"][f"unique_id_input{i}"] for i in range(1, 4)] == ["model", "clip", "vae"]
    assert sampler["inputs"]["unique_id_output1"] == "image" and sampler["inputs"]["max_iterations"] == 1
    model_id = next(k for k, v in runners.items() if v is model)
    assert [sampler["inputs"][f"input{i}"] for i in range(1, 4)] == [[model_id, 0], [model_id, 1], [model_id, 2]]
