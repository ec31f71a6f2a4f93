"""Two SD1.5-architecture models used in turns: model A (checkpoint random_sd15.safetensors) and model B
(checkpoint mohawk.safetensors with a LoRA, its strength an INPUT port). Iteration 0 loads A, iteration 1
loads B (each by a workflow of its own, run once); from then on even iterations sample with A and odd ones
with B, both read from the context (seed = iteration, 64x64, one euler step).

The two checkpoint files hold the same random weights (benchmarks/models/make_random_models.py writes every
name with the same bytes), but are loaded separately: two models in RAM, and the LoRA makes B's images
differ from A's."""

import json
import os

CHECKPOINT_A = "random_sd15.safetensors"
CHECKPOINT_B = "mohawk.safetensors"
LORA = "random_sd15_lora.safetensors"
LORA_STRENGTH = 0.8
SIZE = 64


def port(uid, source=None):
    inputs = {"unique_id": uid}
    if source is not None:
        inputs["input_data"] = source
    return {"class_type": "DiscomfortPort", "inputs": inputs}


def load_a():
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT_A}},
            "2": port("modelA", ["1", 0]), "3": port("clipA", ["1", 1]), "4": port("vaeA", ["1", 2])}


def load_b():
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT_B}},
            "5": port("lora_strength"),
            "2": {"class_type": "LoraLoader", "inputs": {
                "model": ["1", 0], "clip": ["1", 1], "lora_name": LORA,
                "strength_model": ["5", 0], "strength_clip": ["5", 0]}},
            "6": port("modelB", ["2", 0]), "7": port("clipB", ["2", 1]), "8": port("vaeB", ["1", 2])}


def sample(suffix):
    return {
        "11": port("model" + suffix), "12": port("clip" + suffix), "13": port("vae" + suffix),
        "14": port("iteration"),
        "20": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in the snow", "clip": ["12", 0]}},
        "21": {"class_type": "CLIPTextEncode", "inputs": {"text": "low quality", "clip": ["12", 0]}},
        "25": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "30": {"class_type": "KSampler", "inputs": {
            "model": ["11", 0], "seed": ["14", 0], "steps": 1, "cfg": 6.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["20", 0], "negative": ["21", 0], "latent_image": ["25", 0],
            "denoise": 1.0}},
        "40": {"class_type": "VAEDecode", "inputs": {"samples": ["30", 0], "vae": ["13", 0]}},
        "41": port("image", ["40", 0]),
    }


def write_all(folder):
    """loadA.json, loadB.json, sampleA.json, sampleB.json and plan.json in `folder`; the plan's path."""
    os.makedirs(folder, exist_ok=True)
    files = {"loadA.json": load_a(), "loadB.json": load_b(), "sampleA.json": sample("A"),
             "sampleB.json": sample("B"),
             "plan.json": {"max_iterations": 6, "inputs": {"lora_strength": LORA_STRENGTH}, "stages": [
                 {"name": "loadA", "workflows": ["loadA.json"], "when": "iteration == 0"},
                 {"name": "loadB", "workflows": ["loadB.json"], "when": "iteration == 1"},
                 {"name": "sampleA", "workflows": ["sampleA.json"], "when": "iteration % 2 == 0"},
                 {"name": "sampleB", "workflows": ["sampleB.json"], "when": "iteration % 2 == 1"}]}}
    for name, doc in files.items():
        with open(os.path.join(folder, name), "w") as f:
            json.dump(doc, f, indent=1)
    return os.path.join(folder, "plan.json")
