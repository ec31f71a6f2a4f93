"""Loaded into every contender's ComfyUI (as custom nodes: `--nodes` for the CLI, extra_nodes for the Python
package, imported by the plain loop, symlinked into the nested server's custom_nodes):

* a checkpoint read counter: comfy.utils.load_torch_file is wrapped at import and every read of a file in a
  `checkpoints` folder appends a line to $BENCH_LOAD_LOG — the same count for every contender;
* for the nested server, the original Discomfort's way of passing values: a LATENT/IMAGE travels as a base64
  torch.save envelope inside the prompt and comes back in an output node's UI result; a string value
  (the checkpoint name of a stitched ref sub-workflow) comes from a context-loader stand-in whose
  IS_CHANGED is NaN, as the original's DiscomfortContextLoader was — which is what made ComfyUI re-run
  (re-read) the stitched checkpoint loader on every consuming run;
* for the plain Python loop, dict-backed loader / saver nodes (objects by reference)."""

import base64
import io
import json
import os

import torch


def _install_counter():
    import comfy.utils
    if getattr(comfy.utils.load_torch_file, "_bench_counter", False):
        return
    original = comfy.utils.load_torch_file

    def load_torch_file(ckpt, *args, **kwargs):
        log = os.environ.get("BENCH_LOAD_LOG")
        if log and f"{os.sep}checkpoints{os.sep}" in os.path.realpath(str(ckpt)):
            with open(log, "a") as f:
                f.write(os.path.basename(str(ckpt)) + "\n")
        return original(ckpt, *args, **kwargs)

    load_torch_file._bench_counter = True
    comfy.utils.load_torch_file = load_torch_file


try:  # inside a ComfyUI; the benchmark's client process imports this file only for decode()
    _install_counter()
    if os.environ.get("BENCH_CHECKPOINTS"):  # the generated checkpoint's folder, as extra_model_paths.yaml would
        import folder_paths
        folder_paths.add_model_folder_path("checkpoints", os.environ["BENCH_CHECKPOINTS"])
except ImportError:
    pass


class AnyType(str):
    def __ne__(self, other):
        return False


ANY = AnyType("*")


def encode(value):
    buf = io.BytesIO()
    torch.save(value, buf)
    return json.dumps({"type": "TORCH", "content": base64.b64encode(buf.getbuffer()).decode("ascii")})


def decode(envelope):
    env = json.loads(envelope)
    return torch.load(io.BytesIO(base64.b64decode(env["content"])), weights_only=True)


class BenchEnvelopeLoadLatent:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"envelope": ("STRING", {"default": "", "multiline": True})}}
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "load"
    CATEGORY = "bench"

    @classmethod
    def IS_CHANGED(cls, envelope):
        return float("nan")  # as the original's context loader

    def load(self, envelope):
        return (decode(envelope),)


class BenchEnvelopeSaveAny:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,), "key": ("STRING", {"default": "value"})}}
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "bench"

    def save(self, value, key):
        if isinstance(value, dict):  # LATENT: only the tensors travel
            value = {k: v for k, v in value.items() if isinstance(v, torch.Tensor)}
        return {"ui": {"discomfort_output": [key, encode(value)]}}


class BenchContextValue:
    """The original's context loader for a val input feeding a stitched ref sub-workflow (a model name)."""
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"default": ""})}}
    RETURN_TYPES = (ANY,)
    FUNCTION = "load"
    CATEGORY = "bench"

    @classmethod
    def IS_CHANGED(cls, value):
        return float("nan")

    def load(self, value):
        return (value,)


class BenchDiscard:
    """The original's saver for a ref OUTPUT: the object is computed, then dropped (only its recipe is kept)."""
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,)}}
    RETURN_TYPES = ()
    FUNCTION = "discard"
    OUTPUT_NODE = True
    CATEGORY = "bench"

    def discard(self, value):
        return {}


STATE = {}
VERSIONS = {}


class BenchDictLoad:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"key": ("STRING", {"default": ""})}}
    RETURN_TYPES = (ANY,)
    FUNCTION = "load"
    CATEGORY = "bench"

    @classmethod
    def IS_CHANGED(cls, key):
        return VERSIONS.get(key, 0)

    def load(self, key):
        return (STATE[key],)


class BenchDictSave:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,), "key": ("STRING", {"default": ""})}}
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "bench"

    def save(self, value, key):
        STATE[key] = value
        VERSIONS[key] = VERSIONS.get(key, 0) + 1
        return {}


NODE_CLASS_MAPPINGS = {c.__name__: c for c in (BenchEnvelopeLoadLatent, BenchEnvelopeSaveAny, BenchContextValue,
                                                BenchDiscard, BenchDictLoad, BenchDictSave)}
