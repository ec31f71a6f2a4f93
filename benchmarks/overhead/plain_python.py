"""Contender 3: a plain Python loop — what a ComfyUI user might write instead of Discomfort.

ComfyUI is imported as a library (no server), one PromptExecutor runs the workflow N times, and the
loop-carried image lives in a dict: a tiny loader node reads it, a tiny output node writes it back.

    python plain_python.py --seed seed.png --iterations N --warmup W --work DIR --result out.json --final out.npy
"""

import argparse
import json
import os
import sys
import time

T_LAUNCH = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import DEVICE, import_comfyui, load_rgb_float, run_prompt  # noqa: E402
from workflow import PORT, with_loader_saver  # noqa: E402

STATE = {}      # the loop-carried values
VERSIONS = {}   # bumped on every write so ComfyUI's cache re-runs what reads them


class DictLoad:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"key": ("STRING", {"default": ""})}}
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "load"
    CATEGORY = "bench"

    @classmethod
    def IS_CHANGED(cls, key):
        return VERSIONS.get(key, 0)

    def load(self, key):
        return (STATE[key],)


class DictSave:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "key": ("STRING", {"default": ""})}}
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "bench"

    def save(self, image, key):
        STATE[key] = image
        VERSIONS[key] = VERSIONS.get(key, 0) + 1
        return {}


class Server:  # the little the executor needs from a server
    client_id = None
    last_node_id = None
    last_prompt_id = None
    sockets_metadata = {}

    def send_sync(self, event, data, sid=None):
        pass

    def send_progress_text(self, text, node_id, sid=None):
        pass

    def queue_updated(self):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--work", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--final", required=True)
    a = ap.parse_args()

    nodes, execution = import_comfyui(a.work)
    import torch
    nodes.NODE_CLASS_MAPPINGS.update({"BenchDictLoad": DictLoad, "BenchDictSave": DictSave})
    executor = execution.PromptExecutor(Server(), cache_type=execution.CacheType.CLASSIC,
                                        cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})
    template = with_loader_saver("BenchDictLoad", {"key": PORT}, "BenchDictSave", {"key": PORT})
    t_ready = time.time()

    STATE[PORT] = torch.from_numpy(load_rgb_float(a.seed)).to(DEVICE)
    times = []
    for i in range(a.warmup + a.iterations):
        if i == a.warmup:
            cpu0 = time.process_time()
        t0 = time.perf_counter()
        run_prompt(execution, executor, template, str(i))
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / a.iterations
    final = STATE[PORT]

    # The compute floor: the same five nodes' functions called directly, no executor, no handoff.
    order = [k for k in sorted(template, key=int) if template[k]["class_type"] not in ("BenchDictLoad", "BenchDictSave")]
    frame = torch.from_numpy(load_rgb_float(a.seed)).to(DEVICE)
    bare = []
    with torch.inference_mode():
        for i in range(a.warmup + a.iterations):
            t0 = time.perf_counter()
            values = {"1": (frame,)}
            for k in order:
                node = template[k]
                cls = nodes.NODE_CLASS_MAPPINGS[node["class_type"]]
                kwargs = {n: values[v[0]][v[1]] if isinstance(v, list) else v for n, v in node["inputs"].items()}
                if hasattr(cls, "define_schema"):  # a V3 node: its execute classmethod, output in .result
                    values[k] = tuple(cls.execute(**kwargs).result)
                else:
                    values[k] = tuple(getattr(cls(), cls.FUNCTION)(**kwargs))
            frame = values[order[-1]][0]
            bare.append(time.perf_counter() - t0)
    bare_equal = bool(torch.equal(frame, final))

    import numpy as np
    np.save(a.final, final.cpu().numpy())
    with open(a.result, "w") as f:
        json.dump({"launch": T_LAUNCH, "ready": t_ready, "startup_s": t_ready - T_LAUNCH, "warmup": a.warmup,
                   "iteration_s": times[a.warmup:], "warmup_s": times[:a.warmup], "cpu_per_iteration_s": cpu,
                   "bare_compute_s": bare[a.warmup:], "bare_compute_equal": bare_equal}, f)


if __name__ == "__main__":
    main()
