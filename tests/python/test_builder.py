"""Workflows built in code (discomfort.builder): every call checked against the running ComfyUI's
node definitions, the result run like a file workflow, saved as API and UI workflows."""

import asyncio
import json

import pytest
import torch

import discomfort


def blur_builder(d, radius=2):
    b = d.new_workflow()
    blur = b.add_node("ImageBlur", title="Blur")
    b.set(blur, "blur_radius", radius)
    invert = b.add_node("ImageInvert")
    b.connect(blur, "IMAGE", invert, "image")
    b.add_input_port("frame", blur, "image")
    b.add_output_port("frame", invert, 0)
    return b


def test_each_call_is_checked_when_it_is_made(d):
    b = d.new_workflow()
    with pytest.raises(discomfort.NotFoundError) as unknown:
        b.add_node("ImageBlurr")
    assert "ImageBlurr" in str(unknown.value) and "ImageBlur" in str(unknown.value)  # the close match
    blur = b.add_node("ImageBlur")
    with pytest.raises(discomfort.NotFoundError) as no_input:
        b.set(blur, "radius", 3)
    assert "blur_radius" in str(no_input.value)
    with pytest.raises(discomfort.TypeMismatchError):
        b.set(blur, "blur_radius", "three")
    with pytest.raises(discomfort.InvalidArgumentError) as out_of_range:
        b.set(blur, "blur_radius", 99)
    assert "31" in str(out_of_range.value) and "blur_radius" in str(out_of_range.value)
    flip = b.add_node("ImageFlip")
    with pytest.raises(discomfort.InvalidArgumentError):
        b.set(flip, "flip_method", "diagonally")
    latent = b.add_node("EmptyLatentImage")
    with pytest.raises(discomfort.TypeMismatchError) as mismatch:
        b.connect(latent, "LATENT", blur, "image")
    assert "LATENT" in str(mismatch.value) and "IMAGE" in str(mismatch.value)
    with pytest.raises(discomfort.ValidationError) as incomplete:
        b.to_api()  # ImageBlur's image is not connected
    assert "image" in str(incomplete.value)


def test_a_built_workflow_runs_like_the_same_workflow_from_a_file(d, tmp_path):
    b = blur_builder(d)
    frame = torch.rand(1, 24, 24, 3)
    built = asyncio.run(d.run([b.workflow("blur.json")], inputs={"frame": frame}, iterations=3))
    path = b.save_api(tmp_path / "blur_api.json")
    from_file = asyncio.run(d.run([path], inputs={"frame": frame}, iterations=3))
    assert torch.equal(built["frame"], from_file["frame"])
    # The UI form converts back to the same prompt (the frontend's rules, natively).
    ui_path = b.save_ui(tmp_path / "blur_ui.json")
    with open(ui_path) as f:
        ui = json.load(f)
    assert ui["version"] == 0.4 and len(ui["nodes"]) == 4
    assert d.Tools.to_api(ui_path) == b.to_api()
    from_ui = asyncio.run(d.run([ui_path], inputs={"frame": frame}, iterations=3))
    assert torch.equal(built["frame"], from_ui["frame"])
