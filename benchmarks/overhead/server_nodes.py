"""Custom nodes loaded into the nested ComfyUI server (contender 2), doing what the original
Discomfort's ports did there (its commits d3a2669..910ebc1, "inline" mode): a loop-carried tensor
travels inside the prompt as a JSON envelope {"type": "TORCH_TENSOR", "content": base64(torch.save)},
and comes back in the output node's UI result `discomfort_output`, read from /history."""

import base64
import io
import json

import torch


def encode(tensor):
    buf = io.BytesIO()
    torch.save(tensor, buf)
    return json.dumps({"type": "TORCH_TENSOR", "content": base64.b64encode(buf.getbuffer()).decode("ascii")})


def decode(envelope):
    env = json.loads(envelope)
    assert env["type"] == "TORCH_TENSOR", env["type"]
    return torch.load(io.BytesIO(base64.b64decode(env["content"])), weights_only=True)


class BenchEnvelopeLoad:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"envelope": ("STRING", {"default": "", "multiline": True})}}
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "load"
    CATEGORY = "bench"

    def load(self, envelope):
        return (decode(envelope),)


class BenchEnvelopeSave:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "bench"

    def save(self, image):
        return {"ui": {"discomfort_output": [encode(image)]}}


NODE_CLASS_MAPPINGS = {"BenchEnvelopeLoad": BenchEnvelopeLoad, "BenchEnvelopeSave": BenchEnvelopeSave}
