"""The original Discomfort's own scenario (issue 6): its test3 "advanced example" run unchanged against its
saved workflows, with locally generated random-weight SD1.5 checkpoint and LoRA files under the names the
workflows expect (mohawk.safetensors, scifixl.safetensors; benchmarks/models/make_random_models.py, cached).

On CPU the workflows are edited COPIES (64x64 empty latent, a 128x128 img2img input, one euler step); the
files in tests/data/original_discomfort stay untouched. DISCOMFORT_SCENARIO_FULL=1 runs the files as they are (1024x1024,
20 steps: for a GPU machine).

Not named test_*.py on purpose: it is its own ctest entry (python.original_scenario), not part of
python.pytest's collection. Run:
    PYTHONPATH=build/release/python .venv/bin/python -m pytest -q -p no:cacheprovider \
        tests/python/original_scenario/check_original_scenario.py
"""

import asyncio
import importlib
import itertools
import json
import os
import shutil
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
TESTDATA = os.path.join(REPO, "tests", "data", "original_discomfort")
FILES = ["sdxl_load_model_and_lora.json", "latent_1024x1024_empty.json", "latent_from_input_image.json",
         "sdxl_run_ksampler.json"]
FULL = os.environ.get("DISCOMFORT_SCENARIO_FULL", "0") not in ("", "0")
# CPU edit: the empty latent gives 64x64 images; the input image (128x128) scaled to 128*128 pixels gives 128x128.
EMPTY_SIZE, INPUT_SIZE, STEPS = (1024, 1024, 20) if FULL else (64, 128, 1)

sys.path.insert(0, os.path.join(REPO, "benchmarks", "models"))
import make_random_models  # noqa: E402


def _node(wf, class_type):
    nodes = [n for n in wf["nodes"] if n["type"] == class_type]
    assert len(nodes) == 1, f"expected one {class_type} node"
    return nodes[0]


def _copy_workflows(dst):
    """Copies the four files, editing the copies (never the originals) for a CPU-sized run."""
    for name in FILES:
        src = os.path.join(TESTDATA, name)
        if not os.path.exists(src):
            pytest.fail(f"the original's workflow {src} is missing (checked in under tests/data)")
        with open(src) as f:
            wf = json.load(f)
        if not FULL:
            if name == "latent_1024x1024_empty.json":
                _node(wf, "EmptyLatentImage")["widgets_values"][:2] = [EMPTY_SIZE, EMPTY_SIZE]
            elif name == "latent_from_input_image.json":
                node = _node(wf, "ImageScaleToTotalPixels")
                node["widgets_values"][1] = INPUT_SIZE * INPUT_SIZE / (1024 * 1024)  # megapixels
            elif name == "sdxl_run_ksampler.json":
                # [seed, control, steps, cfg, sampler, scheduler, denoise]: one euler step. The saved uni_pc/karras
                # at one step returns a latent that does not depend on the model at all (seen: LoRA strength 0
                # and 0.2 gave identical samples), which would make the LoRA check below vacuous.
                _node(wf, "KSampler")["widgets_values"][2:6] = [STEPS, 6, "euler", "normal"]
        with open(os.path.join(dst, name), "w") as f:
            json.dump(wf, f)


def _write_input_image(path, size):
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 255 // size, y * 255 // size, ((x + y) % 32) * 8], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


class Recorder:
    """Wraps ComfyUI functions to see what really happens: disk reads of the checkpoint, and which objects
    reach the sampler, the encoder and the decoder."""

    def __init__(self, checkpoint_path):
        self.checkpoint = os.path.realpath(checkpoint_path)
        self.checkpoint_reads = 0
        self.checkpoint_loads = 0
        self.loader_outputs = []  # per CheckpointLoaderSimple execution: (model, clip, vae) ids
        self.lora_outputs = []  # per LoraLoader execution: (strength_model, model id, clip id)
        # Per LoraLoader execution, a serial number given to its MODEL the first time it is seen: ids
        # are addresses, reused once an earlier patched model is freed, so distinctness is counted here.
        self.lora_model_serials = []
        self._serials = itertools.count()
        self.sampler_calls = []  # (model id, latent shape, latent abs max, denoise)
        self.sampled = []  # the sampler's output latents
        self.encode_vaes = []
        self.decode_vaes = []
        self._undo = []

    def _patch(self, owner, name, make):
        original = getattr(owner, name)
        setattr(owner, name, make(original))
        self._undo.append((owner, name, original))

    def install(self):
        import comfy.sd
        import comfy.utils
        import nodes

        def reads(orig):
            def wrapper(path, *a, **k):
                if os.path.realpath(str(path)) == self.checkpoint:
                    self.checkpoint_reads += 1
                return orig(path, *a, **k)
            return wrapper

        def loads(orig):
            def wrapper(path, *a, **k):
                if os.path.realpath(str(path)) == self.checkpoint:
                    self.checkpoint_loads += 1
                return orig(path, *a, **k)
            return wrapper

        def ckpt_node(orig):
            def wrapper(node_self, *a, **k):
                out = orig(node_self, *a, **k)
                self.loader_outputs.append(tuple(id(o) for o in out[:3]))
                return out
            return wrapper

        def lora_node(orig):
            def wrapper(node_self, model, clip, lora_name, strength_model, strength_clip, *a, **k):
                out = orig(node_self, model, clip, lora_name, strength_model, strength_clip, *a, **k)
                self.lora_outputs.append((float(strength_model), id(out[0]), id(out[1]), id(model), id(clip)))
                if not hasattr(out[0], "_discomfort_test_serial"):
                    out[0]._discomfort_test_serial = next(self._serials)
                self.lora_model_serials.append(out[0]._discomfort_test_serial)
                return out
            return wrapper

        def sampler(orig):
            def wrapper(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, *a, **k):
                s = latent["samples"]
                denoise = k.get("denoise", a[0] if a else 1.0)
                self.sampler_calls.append((id(model), tuple(s.shape), float(s.abs().max()), float(denoise)))
                out = orig(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, *a, **k)
                self.sampled.append(out[0]["samples"].detach().float().clone())
                return out
            return wrapper

        def encode(orig):
            def wrapper(node_self, vae, *a, **k):
                self.encode_vaes.append(id(vae))
                return orig(node_self, vae, *a, **k)
            return wrapper

        def decode(orig):
            def wrapper(node_self, vae, *a, **k):
                self.decode_vaes.append(id(vae))
                return orig(node_self, vae, *a, **k)
            return wrapper

        self._patch(comfy.utils, "load_torch_file", reads)
        self._patch(comfy.sd, "load_checkpoint_guess_config", loads)
        self._patch(nodes.CheckpointLoaderSimple, "load_checkpoint", ckpt_node)
        self._patch(nodes.LoraLoader, "load_lora", lora_node)
        self._patch(nodes, "common_ksampler", sampler)
        self._patch(nodes.VAEEncode, "encode", encode)
        self._patch(nodes.VAEDecode, "decode", decode)

    def uninstall(self):
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)


def test_original_advanced_example(tmp_path, monkeypatch):
    t0 = time.time()
    models = make_random_models.ensure_models(checkpoint_names=["mohawk.safetensors"],
                                              lora_names=["scifixl.safetensors"])
    t_models = time.time() - t0
    workflows = tmp_path / "workflows"
    out_dir = tmp_path / "out"
    workflows.mkdir()
    out_dir.mkdir()
    _copy_workflows(str(workflows))
    input_image = str(tmp_path / "test_woman.png")
    _write_input_image(input_image, INPUT_SIZE)
    monkeypatch.setenv("DISCOMFORT_EXAMPLE_WORKFLOWS", str(workflows))
    monkeypatch.setenv("DISCOMFORT_EXAMPLE_INPUT_IMAGE", input_image)
    monkeypatch.setenv("DISCOMFORT_EXAMPLE_OUTPUT_DIR", str(out_dir))

    from discomfort import Discomfort

    # Import ComfyUI (the script's own create() reuses it), then show it the generated model folders the
    # way extra_model_paths.yaml would — nothing is written into the ComfyUI checkout.
    d = asyncio.run(Discomfort.create(work_dir=str(tmp_path / "work"), cpu=not FULL))
    import folder_paths
    folder_paths.add_model_folder_path("checkpoints", models["checkpoints"])
    folder_paths.add_model_folder_path("loras", models["loras"])
    assert "mohawk.safetensors" in folder_paths.get_filename_list("checkpoints")

    ckpt_path = folder_paths.get_full_path("checkpoints", "mohawk.safetensors")
    rec = Recorder(ckpt_path)
    rec.install()
    try:
        sys.path.insert(0, HERE)
        example = importlib.import_module("advanced_example")
        t1 = time.time()
        asyncio.run(example.main())
        t_run = time.time() - t1
    finally:
        rec.uninstall()
        asyncio.run(d.shutdown())
    print(f"\nmodels ready in {t_models:.1f} s; scenario ran in {t_run:.1f} s")

    # Ten images of the expected size: even iterations from the empty latent, odd ones from the input image.
    from PIL import Image
    for i in range(10):
        path = out_dir / f"img_{i}.png"
        assert path.exists(), f"iteration {i} wrote no image"
        size = EMPTY_SIZE if i % 2 == 0 else INPUT_SIZE
        with Image.open(path) as im:
            assert im.size == (size, size), f"img_{i}.png is {im.size}, expected {size}x{size}"

    # The checkpoint is read from disk exactly once over the whole run; the loader node itself ran once
    # (ComfyUI's cache serves it afterwards), while LoraLoader re-ran for every new strength.
    assert rec.checkpoint_reads == 1, f"checkpoint read {rec.checkpoint_reads} times"
    assert rec.checkpoint_loads == 1, f"load_checkpoint_guess_config called {rec.checkpoint_loads} times"
    assert len(rec.loader_outputs) == 1, f"CheckpointLoaderSimple ran {len(rec.loader_outputs)} times"
    ckpt_model, ckpt_clip, ckpt_vae = rec.loader_outputs[0]
    strengths = [round(s, 6) for s, *_ in rec.lora_outputs]
    assert strengths == [round(0.1 * i, 6) for i in range(10)], f"LoraLoader strengths {strengths}"

    # MODEL/CLIP/VAE by pointer: the sampler gets the very ModelPatcher LoraLoader produced in the same
    # iteration, and the encoder/decoder the very VAE the checkpoint loader produced — no copies, no reloads.
    assert len(rec.sampler_calls) == 10 and len(rec.decode_vaes) == 10 and len(rec.encode_vaes) == 5
    for i, ((strength, lora_model, lora_clip, in_model, in_clip), (model_id, shape, absmax, denoise)) in \
            enumerate(zip(rec.lora_outputs, rec.sampler_calls)):
        assert in_model == ckpt_model and in_clip == ckpt_clip, f"iteration {i}: LoraLoader got other objects"
        assert model_id == lora_model, f"iteration {i}: the sampler's MODEL is not LoraLoader's output"
        latent = EMPTY_SIZE // 8 if i % 2 == 0 else INPUT_SIZE // 8
        assert shape == (1, 4, latent, latent), f"iteration {i}: latent {shape}"
        if i % 2 == 0:  # empty latent, full denoise
            assert absmax == 0.0 and denoise == 1.0, f"iteration {i}: {absmax} {denoise}"
        else:  # the img2img path: an encoded, non-zero latent at denoise 0.5
            assert absmax > 0.0 and denoise == 0.5, f"iteration {i}: {absmax} {denoise}"
    assert rec.lora_outputs[0][1] == ckpt_model, "strength 0 should hand the checkpoint's model through"
    assert len(set(rec.lora_model_serials[1:])) == 9, "each new strength gives a new patched model"
    assert set(rec.decode_vaes) == {ckpt_vae} and set(rec.encode_vaes) == {ckpt_vae}

    # The LoRA really patches the sampled model (kohya names matched): iterations 0 and 2 differ only in
    # lora_strength (0 vs 0.2: same empty latent, seed, denoise), so their sampled latents must differ.
    # (The 8-bit images of a random VAE may not show a one-step difference; the latents do.)
    import numpy as np
    import torch
    assert len(rec.sampled) == 10
    assert all(torch.isfinite(t).all() for t in rec.sampled), "non-finite sampler output"
    assert not torch.equal(rec.sampled[0], rec.sampled[2]), "LoRA strength 0 and 0.2 sampled the same latent"
    imgs = [np.asarray(Image.open(out_dir / f"img_{i}.png"), dtype=np.int16) for i in range(10)]
    assert all(im.std() > 0 for im in imgs), "a flat image: the random model produced nothing"
