"""The overhead workload: overhead.json — five weight-free built-in nodes (ImageBlur → ImageSharpen →
ImageFlip → ImageBlend → ImageInvert) between an INPUT and an OUTPUT DiscomfortPort `frame`, so the
image is carried from one iteration to the next.

Discomfort runs that file as it is. The other contenders cannot use DiscomfortPorts, so the two port
nodes are swapped for each contender's own loader / saver node; the five built-in nodes are the same."""

import copy
import json
import os

WORKFLOW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "overhead.json")
INPUT_NODE, OUTPUT_NODE = "1", "7"
PORT = "frame"


def ported():
    with open(WORKFLOW) as f:
        return json.load(f)


def with_loader_saver(loader_class, loader_inputs, saver_class, saver_inputs):
    wf = copy.deepcopy(ported())
    assert wf[INPUT_NODE]["class_type"] == "DiscomfortPort" and wf[OUTPUT_NODE]["class_type"] == "DiscomfortPort"
    source = wf[OUTPUT_NODE]["inputs"]["input_data"]
    wf[INPUT_NODE] = {"class_type": loader_class, "inputs": dict(loader_inputs)}
    wf[OUTPUT_NODE] = {"class_type": saver_class, "inputs": dict(saver_inputs, image=source)}
    for node in wf.values():
        node.pop("_meta", None)
    assert sum(1 for k in wf if k not in (INPUT_NODE, OUTPUT_NODE)) == 5
    return wf
