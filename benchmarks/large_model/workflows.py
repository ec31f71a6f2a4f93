"""The large-model workloads as API-format prompts, one source for every contender.

(a) loop: an init workflow (EmptyLatentImage -> OUTPUT `latent`, iteration 0 only) and a sampling
    workflow (CheckpointLoaderSimple, two CLIPTextEncode, KSampler on the INPUT `latent`, OUTPUT `latent`
    carried to the next iteration, VAEDecode -> OUTPUT `image`).
(b) handoff: workflow 1 loads the checkpoint and exposes OUTPUT `model`/`clip`/`vae`; workflow 2 receives
    them through INPUT ports and samples an empty latent with seed = `iteration`, OUTPUT `image`.

Other contenders swap the ports for their own loader / saver nodes (with_nodes)."""

import copy
import json
import os

CHECKPOINT = "random_sd15.safetensors"
SIZE = 64        # pixels: an 8x8 latent
STEPS = 1
CFG = 6.0
SEED = 42
SAMPLER, SCHEDULER = "euler", "normal"
POSITIVE, NEGATIVE = "a photograph of a fox in the snow", "low quality"


def port(uid, source=None):
    inputs = {"unique_id": uid}
    if source is not None:
        inputs["input_data"] = source
    return {"class_type": "DiscomfortPort", "inputs": inputs}


def _encoders(clip):
    return {"20": {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": clip}},
            "21": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": clip}}}


def _ksampler(model, latent, seed):
    return {"class_type": "KSampler", "inputs": {
        "model": model, "seed": seed, "steps": STEPS, "cfg": CFG, "sampler_name": SAMPLER, "scheduler": SCHEDULER,
        "positive": ["20", 0], "negative": ["21", 0], "latent_image": latent, "denoise": 1.0}}


def loader():
    return {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}}


def init_latent():
    return {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
            "2": port("latent", ["1", 0])}


def loop_sampler():
    wf = {"1": loader(), "10": port("latent")}
    wf.update(_encoders(["1", 1]))
    wf["30"] = _ksampler(["1", 0], ["10", 0], SEED)
    wf["31"] = port("latent", ["30", 0])
    wf["40"] = {"class_type": "VAEDecode", "inputs": {"samples": ["30", 0], "vae": ["1", 2]}}
    wf["41"] = port("image", ["40", 0])
    return wf


def handoff_loader():
    return {"1": loader(), "2": port("model", ["1", 0]), "3": port("clip", ["1", 1]), "4": port("vae", ["1", 2])}


def handoff_sampler():
    wf = {"11": port("model"), "12": port("clip"), "13": port("vae"), "14": port("iteration")}
    wf.update(_encoders(["12", 0]))
    wf["25"] = {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}}
    wf["30"] = _ksampler(["11", 0], ["25", 0], ["14", 0])
    wf["40"] = {"class_type": "VAEDecode", "inputs": {"samples": ["30", 0], "vae": ["13", 0]}}
    wf["41"] = port("image", ["40", 0])
    return wf


def with_nodes(wf, load, save, constants=None):
    """Replaces INPUT ports by load(uid) nodes (or a literal from `constants`, wired straight into the
    consumers) and OUTPUT ports by save(uid, source) nodes."""
    wf = copy.deepcopy(wf)
    constants = constants or {}
    for nid, node in list(wf.items()):
        if node["class_type"] != "DiscomfortPort":
            continue
        uid = node["inputs"]["unique_id"]
        if "input_data" in node["inputs"]:
            wf[nid] = save(uid, node["inputs"]["input_data"])
        elif uid in constants:
            del wf[nid]
            for other in wf.values():
                for k, v in other["inputs"].items():
                    if v == [nid, 0]:
                        other["inputs"][k] = constants[uid]
        else:
            wf[nid] = load(uid)
    return wf


def write_all(folder):
    """The Discomfort files: init.json, sample.json, plan.json (a), load.json, handoff.json (b)."""
    os.makedirs(folder, exist_ok=True)
    files = {"init.json": init_latent(), "sample.json": loop_sampler(), "load.json": handoff_loader(),
             "handoff.json": handoff_sampler(),
             "plan.json": {"max_iterations": 1, "stages": [
                 {"name": "init", "workflows": ["init.json"], "when": "iteration == 0"},
                 {"name": "sample", "workflows": ["sample.json"]}]}}
    for name, wf in files.items():
        with open(os.path.join(folder, name), "w") as f:
            json.dump(wf, f, indent=1)
    return {k: os.path.join(folder, k) for k in files}
