"""d.Tools (native workflow utilities) and d.Worker (files, conversion, single runs)."""

import asyncio
import json
import os

import pytest
import torch

import discomfort
from conftest import ORIGINAL_TESTDATA, counter_workflow

KSAMPLER = os.path.join(ORIGINAL_TESTDATA, "sdxl_run_ksampler.json")
LOADER = os.path.join(ORIGINAL_TESTDATA, "sdxl_load_model_and_lora.json")


def test_image_round_trip(d, tmp_path):
    image = torch.rand(2, 5, 7, 3)
    path = d.Tools.save_comfy_image_to_disk(image, str(tmp_path / "out" / "a.png"))
    back = d.Tools.open_image_as_tensor(path)
    assert tuple(back.shape) == (1, 5, 7, 3) and back.dtype == torch.float32
    assert torch.allclose(back[0], image[0], atol=1 / 255 + 1e-6)


def test_discover_ports_on_ui_and_api_workflows(d):
    ports = d.Tools.discover_port_nodes(KSAMPLER)
    assert set(ports["inputs"]) == {"model", "clip", "vae", "prompt", "latent", "denoise"}
    assert set(ports["outputs"]) == {"output_image"}
    assert ports["inputs"]["model"]["type"] == "MODEL" and ports["outputs"]["output_image"]["type"] == "IMAGE"
    assert len(ports["execution_order"]) > 0
    api = d.Tools.discover_port_nodes(counter_workflow())
    assert set(api["inputs"]) == {"counter"} and set(api["outputs"]) == {"counter"}


def test_stitch_prune_and_reroutes(d):
    stitched = d.Tools.stitch_workflows([LOADER, KSAMPLER])
    # The loader's model/clip/vae OUTPUTs now feed the sampler's INPUTs.
    assert {"model", "clip", "vae"}.isdisjoint(stitched["inputs"])
    assert "output_image" in stitched["outputs"] and "model" in stitched["passthrus"]
    pruned = d.Tools.prune_workflow_to_output(LOADER, "vae")
    types = {n["type"] for n in pruned["nodes"]}
    assert "LoraLoader" not in types and "CheckpointLoaderSimple" in types
    with pytest.raises(KeyError):
        d.Tools.prune_workflow_to_output(LOADER, "nope")
    no_reroutes = d.Tools.remove_reroute_nodes(os.path.join(ORIGINAL_TESTDATA, "discomfort_supir_upscaler.json"))
    assert all(n["type"] != "Reroute" for n in no_reroutes["nodes"])


def test_validate_workflow(d):
    assert d.Tools.validate_workflow(KSAMPLER) is True
    broken = {"1": {"class_type": "NoSuchNode", "inputs": {}},
              "2": {"class_type": "ImageBlur", "inputs": {"image": ["9", 0]}}}
    with pytest.raises(discomfort.ValidationError) as info:
        d.Tools.validate_workflow(broken)
    assert len(info.value.problems) >= 2
    assert d.Tools.validate_workflow(broken, raise_on_error=False)


def test_get_prompt_from_workflow_converts_natively(d):
    prompt = asyncio.run(d.Worker.get_prompt_from_workflow(KSAMPLER))
    classes = {n["class_type"] for n in prompt.values()}
    assert {"KSampler", "CLIPTextEncode", "VAEDecode", "DiscomfortPort"} <= classes
    sampler = next(n for n in prompt.values() if n["class_type"] == "KSampler")
    assert sampler["inputs"]["steps"] == 20 and sampler["inputs"]["sampler_name"] == "uni_pc"


def test_run_workflow_once(d):
    wf = {"1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0}},
          "2": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "img", "input_data": ["1", 0]}}}
    result = asyncio.run(d.Worker.run_workflow(wf))
    assert tuple(result["outputs"]["img"].shape) == (1, 4, 4, 3)


def test_upload_data_and_path_escapes(d, tmp_path):
    src = tmp_path / "pic.png"
    d.Tools.save_comfy_image_to_disk(torch.zeros(1, 2, 2, 3), str(src))
    info = d.Worker.upload_data(str(src), "input", subfolder="sub")
    assert info["name"] == "pic.png" and info["subfolder"] == "sub"
    assert info["path"] == os.path.join(d.Worker.folder("input"), "sub", "pic.png") and os.path.exists(info["path"])
    with pytest.raises(FileExistsError):
        d.Worker.upload_data(str(src), "input", subfolder="sub")
    d.Worker.upload_data(str(src), "input", subfolder="sub", overwrite=True)
    for bad in ("../escape", "/etc", "a/../../b"):
        with pytest.raises(ValueError):
            d.Worker.upload_data(str(src), "input", subfolder=bad)
    os.symlink(str(tmp_path), os.path.join(d.Worker.folder("input"), "link_out"))
    with pytest.raises(ValueError):
        d.Worker.upload_data(str(src), "input", subfolder="link_out")
    with pytest.raises(FileNotFoundError):
        d.Worker.upload_data(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError):
        d.Worker.upload_data(str(src), "elsewhere")
    # The uploaded image is usable by LoadImage by name.
    wf = {"1": {"class_type": "LoadImage", "inputs": {"image": "sub/pic.png"}},
          "2": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "img", "input_data": ["1", 0]}}}
    assert tuple(asyncio.run(d.run([wf]))["img"].shape) == (1, 2, 2, 3)


def test_ephemeral_uploads_are_removed_at_shutdown(d, tmp_path):
    src = tmp_path / "eph.txt"
    src.write_text("x")
    other = asyncio.run(discomfort.Discomfort.create())  # shares the running ComfyUI
    kept = other.Worker.upload_data(str(src), "temp", subfolder="keep")["path"]
    gone = other.Worker.upload_data(str(src), "input", subfolder="eph", is_ephemeral=True)["path"]
    assert os.path.exists(gone)
    asyncio.run(other.shutdown())
    assert not os.path.exists(gone) and os.path.exists(kept)
    with pytest.raises(ValueError):
        asyncio.run(other.run([counter_workflow()], inputs={"counter": 1}))
