"""Probe node for the soak test (tests/reliability/soak.py), loaded with `discomfort run --nodes`.

DiscomfortSoakProbe is an output node that records, each time it runs, how many objects Python's
garbage collector tracks and how many memory blocks the interpreter has allocated, into the file
named by $DISCOMFORT_SOAK_PROBE ("<calls> <gc objects> <allocated blocks>\n", overwritten), on its
first call and then every $DISCOMFORT_SOAK_PROBE_EVERY calls (default 100): a full gc pass over
ComfyUI's objects takes about a second.
"""
import gc
import os
import sys


class DiscomfortSoakProbe:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {})}}

    RETURN_TYPES = ()
    FUNCTION = "probe"
    OUTPUT_NODE = True
    CATEGORY = "discomfort/test"

    @classmethod
    def IS_CHANGED(cls, value):
        return float("nan")  # run every iteration

    calls = 0

    def probe(self, value):
        DiscomfortSoakProbe.calls += 1
        path = os.environ.get("DISCOMFORT_SOAK_PROBE")
        every = int(os.environ.get("DISCOMFORT_SOAK_PROBE_EVERY", "100"))
        if path and (DiscomfortSoakProbe.calls - 1) % every == 0:
            gc.collect()
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{DiscomfortSoakProbe.calls} {len(gc.get_objects())} {sys.getallocatedblocks()}\n")
            os.replace(tmp, path)
        return {}


NODE_CLASS_MAPPINGS = {"DiscomfortSoakProbe": DiscomfortSoakProbe}
