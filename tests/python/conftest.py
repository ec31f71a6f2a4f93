"""pytest for the discomfort package against the real ComfyUI (COMFYUI_PATH, else ~/ComfyUI).

ComfyUI imports once per process, so one session-scoped Discomfort serves every test; tests drive
it with asyncio.run (the instance is not bound to an event loop).
Run: PYTHONPATH=<build>/python .venv/bin/python -m pytest tests/python (ctest: python.pytest).
"""

import asyncio
import os
import tempfile

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEST_NODES = os.path.join(REPO, "tests", "bridge", "nodes", "discomfort_test_nodes.py")
# The original Discomfort's saved workflows, checked in (tests/data/README.md).
ORIGINAL_TESTDATA = os.path.join(REPO, "tests", "data", "original_discomfort")


@pytest.fixture(scope="session")
def work_dir():
    with tempfile.TemporaryDirectory(prefix="discomfort-pytest-") as d:
        yield d


@pytest.fixture(scope="session")
def d(work_dir):
    from discomfort import Discomfort

    instance = asyncio.run(Discomfort.create(work_dir=work_dir, cpu=True, extra_nodes=[TEST_NODES]))
    yield instance
    asyncio.run(instance.shutdown())


def link(node, slot=0):
    return [node, slot]


def port(uid, source=None):
    inputs = {"unique_id": uid}
    if source is not None:
        inputs["input_data"] = source
    return {"class_type": "DiscomfortPort", "inputs": inputs}


def counter_workflow(amount=1, fail_at=-1):
    """counter -> +amount -> (fails when it equals fail_at) -> counter"""
    return {
        "1": port("counter"),
        "2": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("1"), "amount": amount}},
        "3": {"class_type": "DiscomfortTestFailAt", "inputs": {"value": link("2"), "fail_at": fail_at}},
        "4": port("counter", link("3")),
    }


def passthrough_workflow(src="x", dst="y"):
    return {"1": port(src), "2": port(dst, link("1"))}


def sleep_workflow(seconds):
    return {"1": port("x"),
            "2": {"class_type": "DiscomfortTestSleep", "inputs": {"value": link("1"), "seconds": seconds}},
            "3": port("y", link("2"))}
