"""DiscomfortFolderImageLoader and DiscomfortImageDescriber, as ComfyUI calls them, inside the real
ComfyUI imported by the session's Discomfort (its input folder, comfy.utils' resizing); the describer
against a local OpenAI-compatible stub on loopback."""

import os
import shutil

import pytest
import torch
from PIL import Image

from discomfort import image_nodes
from openai_stub import KEY, OpenAIStub


@pytest.fixture
def input_folder(d):
    """A fresh folder under ComfyUI's input folder: (its name relative to input/, its path)."""
    import folder_paths
    name = "discomfort-folder-test"
    path = os.path.join(folder_paths.get_input_directory(), name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    yield name, path
    shutil.rmtree(path, ignore_errors=True)


def _write(path, size, colour, **save):
    Image.new("RGB", size, colour).save(path, **save)


def test_folder_loads_one_batch_sorted_by_name_resized_to_the_first(input_folder):
    name, path = input_folder
    _write(os.path.join(path, "b.png"), (32, 24), (255, 0, 0))
    _write(os.path.join(path, "a.jpg"), (16, 12), (0, 255, 0), quality=100)
    _write(os.path.join(path, "c.webp"), (40, 30), (0, 0, 255), lossless=True)
    open(os.path.join(path, "notes.txt"), "w").write("not an image")
    os.makedirs(os.path.join(path, "sub.png"))  # a folder with an image-like name is skipped
    loader = image_nodes.DiscomfortFolderImageLoader()

    images, count, names = loader.load(name)
    assert images.shape == (3, 12, 16, 3) and images.dtype == torch.float32 and count == 3
    assert names.splitlines() == ["a.jpg", "b.png", "c.webp"]
    assert 0.0 <= images.min() and images.max() <= 1.0
    centre = images[:, 6, 8, :]  # solid colours survive resizing
    assert torch.allclose(centre, torch.tensor([[0., 1., 0.], [1., 0., 0.], [0., 0., 1.]]), atol=0.03)

    images, count, _ = loader.load(name, size_mode="custom", width=20, height=10, resize_method="bilinear")
    assert images.shape == (3, 10, 20, 3) and count == 3
    images, _, _ = loader.load(name, size_mode="custom", width=8, height=8, crop="center", resize_method="area")
    assert images.shape == (3, 8, 8, 3)

    images, count, names = loader.load(name, pattern="*.png")
    assert images.shape == (1, 24, 32, 3) and names == "b.png"
    images, count, names = loader.load(name, max_images=2)
    assert count == 2 and names.splitlines() == ["a.jpg", "b.png"]
    # The cache key follows the folder's content.
    before = loader.IS_CHANGED(name)
    _write(os.path.join(path, "d.png"), (8, 8), (9, 9, 9))
    assert loader.IS_CHANGED(name) != before


def test_folder_paths_may_not_escape_the_input_folder(input_folder, tmp_path):
    name, path = input_folder
    loader = image_nodes.DiscomfortFolderImageLoader()
    outside = tmp_path / "outside"
    outside.mkdir()
    _write(str(outside / "x.png"), (4, 4), (1, 2, 3))
    with pytest.raises(PermissionError, match="escape"):
        loader.load(os.path.join(name, "..", "..", "..", str(outside).lstrip("/")))
    os.symlink(outside, os.path.join(path, "link"))
    with pytest.raises(PermissionError, match="outside ComfyUI's input folder"):
        loader.load(os.path.join(name, "link"))
    with pytest.raises(PermissionError, match="allow_absolute_path"):
        loader.load(str(outside))
    images, count, _ = loader.load(str(outside), allow_absolute_path=True)
    assert count == 1 and images.shape == (1, 4, 4, 3)
    with pytest.raises(ValueError, match="file names only"):
        loader.load(name, pattern="../*.png")


def test_folder_errors_name_the_folder_or_file(input_folder):
    name, path = input_folder
    loader = image_nodes.DiscomfortFolderImageLoader()
    with pytest.raises(FileNotFoundError, match="no images"):
        loader.load(name)
    with pytest.raises(FileNotFoundError, match="missing-folder"):
        loader.load("missing-folder")
    open(os.path.join(path, "broken.png"), "wb").write(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        loader.load(name)


def _images(*sizes):
    """One IMAGE batch per size ([1, H, W, 3]); pixel values encode the index."""
    return [torch.full((1, h, w, 3), (i + 1) / 10.0) for i, (w, h) in enumerate(sizes)]


def test_describer_sends_each_image_as_a_png_data_url(monkeypatch):
    monkeypatch.setenv("DISCOMFORT_TEST_KEY", KEY)
    batch = torch.cat([torch.full((1, 12, 20, 3), 0.2), torch.full((1, 12, 20, 3), 0.6)])
    node = image_nodes.DiscomfortImageDescriber()
    with OpenAIStub() as stub:
        out = node.describe(batch, prompt="what is it?", model="vision-1", base_url=stub.base_url,
                            api_key_env="DISCOMFORT_TEST_KEY", max_tokens=77, timeout=10)
        # A full completions URL works too (the original appended the path twice).
        again = node.describe(batch[:1], prompt="p", model="vision-1", base_url=stub.base_url + "/chat/completions/",
                              api_key_env="DISCOMFORT_TEST_KEY")
    assert stub.problems == []
    joined, per_image = out["result"]
    assert per_image == ["an image of 20x12 (what is it?)"] * 2 and out["ui"]["text"] == per_image
    assert joined == "an image of 20x12 (what is it?)\n\nan image of 20x12 (what is it?)"
    assert [r["model"] for r in stub.requests] == ["vision-1"] * 3 and stub.requests[0]["max_tokens"] == 77
    assert [r["pixel"] for r in stub.requests[:2]] == [(51, 51, 51), (153, 153, 153)]  # in batch order
    assert again["result"][1] == ["an image of 20x12 (p)"]


def test_describer_errors_are_clear(monkeypatch):
    node = image_nodes.DiscomfortImageDescriber()
    image = torch.rand(1, 8, 8, 3)
    monkeypatch.delenv("DISCOMFORT_TEST_KEY", raising=False)
    with OpenAIStub() as stub:
        with pytest.raises(KeyError, match="DISCOMFORT_TEST_KEY"):
            node.describe(image, "p", "vision-1", stub.base_url, api_key_env="DISCOMFORT_TEST_KEY")
        monkeypatch.setenv("DISCOMFORT_TEST_KEY", "wrong-key")
        with pytest.raises(RuntimeError, match="HTTP 400.*authorization"):
            node.describe(image, "p", "vision-1", stub.base_url, api_key_env="DISCOMFORT_TEST_KEY")
        monkeypatch.setenv("DISCOMFORT_TEST_KEY", KEY)
        with pytest.raises(RuntimeError, match="image 1 of 1.*HTTP 500.*stub failure"):
            node.describe(image, "p", "fail-500", stub.base_url, api_key_env="DISCOMFORT_TEST_KEY")
        with pytest.raises(RuntimeError, match="malformed reply.*choices"):
            node.describe(image, "p", "malformed", stub.base_url, api_key_env="DISCOMFORT_TEST_KEY")
        # Without a key variable no Authorization header goes out: this stub refuses that.
        with pytest.raises(RuntimeError, match="authorization None"):
            node.describe(image, "p", "vision-1", stub.base_url, api_key_env="")
    with pytest.raises(ValueError, match="http"):
        node.describe(image, "p", "vision-1", "ftp://example", api_key_env="")
    with pytest.raises(ConnectionError, match="127.0.0.1:9"):
        node.describe(image, "p", "vision-1", "http://127.0.0.1:9/v1", api_key_env="", timeout=5)
