"""Constants and helpers of the Ray sweep tests (fixtures are in conftest.py)."""

import importlib.util
import os

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEST_NODES = os.path.join(REPO, "tests", "bridge", "nodes", "discomfort_test_nodes.py")
DATA = os.path.join(os.path.dirname(__file__), "data")
SEED_IMAGE = os.path.join(REPO, "examples", "feedback_loop", "seed.png")


def package_dir() -> str:
    """The built discomfort package, found without importing it."""
    spec = importlib.util.find_spec("discomfort")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the discomfort package is not on PYTHONPATH (PYTHONPATH=<build>/python)")
    return list(spec.submodule_search_locations)[0]


def sweep_points(grid=None, images=None):
    """The points the engine makes for a grid [(key, [values])] or a list of images."""
    from discomfort._native import core
    return core.make_sweep_points(grid=grid or [], images=images or [], shard=None)
