"""Writes ComfyUI's node definitions (/object_info shape) to a JSON file, without a server.
Usage: python dump_object_info.py COMFYUI_PATH OUT.json   (`discomfort object-info` does the same from C++)"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from discomfort_bridge import HOST  # noqa: E402

comfy, out = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp(prefix="discomfort-objinfo-")
HOST.start(comfy, *(os.path.join(work, d) for d in ("output", "temp", "input", "user")))
info = json.loads(HOST.object_info())
with open(out, "w") as f:
    json.dump(info["object_info"], f, indent=1, sort_keys=True)
print(f"{len(info['object_info'])} node definitions -> {out}; failures: {info['failures']}")
