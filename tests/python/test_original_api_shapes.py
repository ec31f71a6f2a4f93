"""A script written for the original Discomfort keeps working: every public method of the original's
classes exists here with the same sync/async shape (an ``async def`` there is an ``async def`` here,
a plain ``def`` a plain ``def``), as a classmethod where it was one, and takes the original's
parameters by position.

ORIGINAL_SURFACE was extracted from the original's code, the public repository
Distillery-Dev/ComfyUI-serverless at its newest commit 31c8697586bc8c57f0855c49840bc246bebcdc04
(2025-08-04): every method whose name has no leading underscore, and the context-manager protocol,
of the classes scripts use, read with Python's ``ast`` module (``async def`` → "async", ``def`` →
"sync"). Files: discomfort.py (Discomfort), comfy_serverless.py (ComfyConnector, which is
``d.Worker``; here the Worker class), workflow_tools.py (WorkflowTools, ``d.Tools``),
workflow_context.py (WorkflowContext, ``d.Context``). Its node classes (nodes.py) are called by
ComfyUI, not by scripts, and are left out.
"""

import asyncio
import inspect
import json
import os

import torch

import discomfort
from conftest import ORIGINAL_TESTDATA

ORIGINAL_SURFACE = {  # class: {method: (shape, its parameters after self/cls)}
    "Discomfort": {
        "create": ("async", ["config_path"]),  # classmethod
        "run": ("async", ["workflows", "inputs", "iterations", "use_ram", "context"]),
        "shutdown": ("async", []),
    },
    "ComfyConnector": {
        "create": ("async", ["config_path"]),  # classmethod
        "get_prompt_from_workflow": ("async", ["workflow"]),
        "kill_api": ("async", []),
        "run_workflow": ("async", ["payload", "use_workflow_json"]),
        "upload_data": ("sync", ["source_path", "folder_type", "subfolder", "overwrite", "is_ephemeral"]),
    },
    "WorkflowTools": {
        "discover_port_nodes": ("sync", ["workflow_path"]),
        "open_image_as_tensor": ("sync", ["image_path"]),
        "remove_reroute_nodes": ("sync", ["nodes", "links"]),
        "save_comfy_image_to_disk": ("sync", ["tensor", "output_path"]),
        "stitch_workflows": ("sync", ["workflows", "delete_input_ports", "delete_output_ports"]),
        "validate_workflow": ("sync", ["workflow"]),
    },
    "WorkflowContext": {
        "__enter__": ("sync", []),
        "__exit__": ("sync", ["exc_type", "exc_val", "exc_tb"]),
        "export_data": ("sync", ["unique_id", "destination_path", "overwrite"]),
        "get_storage_info": ("sync", ["unique_id"]),
        "get_usage": ("sync", []),
        "list_keys": ("sync", []),
        "load": ("sync", ["unique_id"]),
        "save": ("sync", ["unique_id", "data", "use_ram", "pass_by"]),
        "shutdown": ("sync", []),
    },
}
CLASSMETHODS = {("Discomfort", "create"), ("ComfyConnector", "create")}
OURS = {
    "Discomfort": discomfort.Discomfort,
    "ComfyConnector": discomfort.Worker,
    "WorkflowTools": discomfort.WorkflowTools,
    "WorkflowContext": discomfort.WorkflowContext,
}
KSAMPLER = os.path.join(ORIGINAL_TESTDATA, "sdxl_run_ksampler.json")


def shape(function):
    if inspect.iscoroutinefunction(function):
        return "async"
    if inspect.isasyncgenfunction(function):
        return "async generator"
    return "sync"


def test_every_original_method_exists_with_its_shape():
    wrong = []
    for original_class, methods in ORIGINAL_SURFACE.items():
        ours = OURS[original_class]
        for name, (expected, params) in methods.items():
            where = f"{original_class}.{name} (ours: {ours.__name__}.{name})"
            if not hasattr(ours, name):
                wrong.append(f"{where} is missing")
                continue
            attr = inspect.getattr_static(ours, name)
            if ((original_class, name) in CLASSMETHODS) != isinstance(attr, classmethod):
                wrong.append(f"{where}: classmethod in one and not the other")
            got = shape(getattr(ours, name))
            if got != expected:
                wrong.append(f"{where} is {got}, the original's is {expected}")
            # A call passing the original's parameters by position still binds.
            signature = inspect.signature(getattr(ours, name))
            if not isinstance(attr, (classmethod, staticmethod)):
                signature = signature.replace(parameters=list(signature.parameters.values())[1:])  # self
            try:
                signature.bind(*params)
            except TypeError as e:
                wrong.append(f"{where}: cannot take the original's parameters {params}: {e}")
    assert not wrong, "\n".join(wrong)


def test_the_discomfort_instance_exposes_the_original_attributes(d):
    assert d.Context is discomfort.WorkflowContext
    assert isinstance(d.Tools, discomfort.WorkflowTools) and isinstance(d.Worker, discomfort.Worker)


def test_a_script_awaiting_get_prompt_from_workflow_runs(d):
    with open(KSAMPLER) as f:
        wf = json.load(f)

    async def script():  # as the original's users wrote it
        return await d.Worker.get_prompt_from_workflow(wf)

    prompt = asyncio.run(script())
    assert {"KSampler", "CLIPTextEncode", "VAEDecode"} <= {n["class_type"] for n in prompt.values()}


def test_kill_api_is_awaitable_and_removes_ephemeral_uploads(d, tmp_path):
    src = tmp_path / "ephemeral.png"
    d.Tools.save_comfy_image_to_disk(torch.zeros(1, 2, 2, 3), str(src))
    info = d.Worker.upload_data(str(src), "input", overwrite=True, is_ephemeral=True)
    assert os.path.exists(info["path"])
    asyncio.run(d.Worker.kill_api())
    assert not os.path.exists(info["path"])
    asyncio.run(d.Worker.kill_api())  # idempotent, as the original's


def test_worker_create_gives_a_working_worker(d):
    async def script():
        worker = await discomfort.Worker.create()
        return worker, await worker.get_prompt_from_workflow(KSAMPLER)

    worker, prompt = asyncio.run(script())
    assert isinstance(worker, discomfort.Worker) and prompt


def test_remove_reroute_nodes_takes_the_originals_nodes_and_links(d):
    with open(os.path.join(ORIGINAL_TESTDATA, "discomfort_supir_upscaler.json")) as f:
        wf = json.load(f)
    nodes = {n["id"]: n for n in wf["nodes"]}
    reroutes = {i for i, n in nodes.items() if n["type"] == "Reroute"}
    assert reroutes
    new_nodes, new_links, link_ids = d.Tools.remove_reroute_nodes(nodes, wf["links"])
    assert set(new_nodes) == set(nodes) - reroutes
    assert all(link[1] not in reroutes and link[3] not in reroutes for link in new_links)
    assert link_ids == {link[0]: link[0] for link in new_links}
    # The workflow form gives the same links.
    assert sorted(map(tuple, new_links)) == sorted(map(tuple, d.Tools.remove_reroute_nodes(wf)["links"]))
