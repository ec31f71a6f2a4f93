"""Sweeps on Ray against the real ComfyUI, on a Ray cluster of this machine: a head (which runs no
worker) and two worker nodes with one CPU each, bound to 127.0.0.1, shared by every test.

The driver is loaded from the built package by its file path, as the CLI's embedded Python loads
it (so it runs without the compiled core in its process); the local sweeps the results are compared
with run in this process through the Python API.
Run: PYTHONPATH=<build>/python .venv/bin/python -m pytest tests/ray (ctest: ray.sweep).
"""

import asyncio
import importlib.util
import os
import sys
import tempfile

# Ray turns 127.0.0.1 into the machine's network address unless this is set before it is imported
# (by every process of the cluster: the nodes inherit this environment).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest

from ray_sweep_support import TEST_NODES, package_dir


@pytest.fixture(scope="session")
def distributed():
    """distributed.py loaded by path (the CLI's way); its siblings load the same way."""
    path = os.path.join(package_dir(), "distributed.py")
    spec = importlib.util.spec_from_file_location("discomfort_distributed", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["discomfort_distributed"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def cluster():
    import ray
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1"})
    try:
        for _ in range(2):
            c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        c.wait_for_nodes()
        ray.init(address=c.address, _node_ip_address="127.0.0.1", log_to_driver=True, logging_level="WARNING")
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture
def two_worker_nodes(cluster):
    """The cluster with exactly two worker nodes (a test may have removed one)."""
    while len(cluster.worker_nodes) < 2:
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture(scope="session")
def work_dir():
    with tempfile.TemporaryDirectory(prefix="discomfort-ray-pytest-") as d:
        yield d


@pytest.fixture(scope="session")
def d(work_dir):
    """A local Discomfort (ComfyUI in this process) for the sweeps the Ray results must equal."""
    from discomfort import Discomfort
    instance = asyncio.run(Discomfort.create(work_dir=work_dir, cpu=True, extra_nodes=[TEST_NODES]))
    yield instance
    asyncio.run(instance.shutdown())
