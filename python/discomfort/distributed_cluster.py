"""The Ray cluster of a distributed sweep, seen from the driver: reaching it (or starting a local
one), choosing the worker slots, and the versions every worker must match.

Driver side only: nothing here imports the Discomfort engine or ComfyUI, so the CLI's embedded
Python can load it without the compiled core.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

INSTALL_HINT = ("Ray is not installed in this Python: pip install 'discomfort[ray]' (it pins ray==2.60.0), on "
                "the machine that starts the sweep and on every machine of the cluster")

# Ray turns a loopback address into the machine's network address before connecting, so a cluster
# bound to 127.0.0.1 would be unreachable; this switch (meant for one-machine clusters) keeps
# Ray on loopback. It must be in the environment of every Ray process of that cluster.
_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

PROBE_SECONDS = 3.0
_CONNECT_RETRIES = 6  # about a second each


class SweepError(Exception):
    """A sweep that cannot start or go on (not a failing point): ``code`` is one of the engine's
    error codes, so the Python API raises the matching Discomfort exception."""

    def __init__(self, message: str, code: str = "invalid_argument") -> None:
        super().__init__(message)
        self.code = code


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise SweepError(f"{INSTALL_HINT} (cause: {exc})", code="python") from exc
    return ray


def use_loopback(ray_module=None) -> None:
    """Keeps this process (and the Ray processes it starts) on 127.0.0.1."""
    os.environ[_LOOPBACK_SWITCH] = "0"
    if ray_module is not None:
        from ray._private import ray_constants
        ray_constants.ENABLE_RAY_CLUSTER = False


def parse_address(address: Any) -> Tuple[str, Any]:
    """("local", N) for "local:N", ("auto", None), or ("remote", (host, port)) for "HOST:PORT"."""
    if not isinstance(address, str) or not address.strip():
        raise SweepError(f"address must be 'auto', 'HOST:PORT' or 'local:N', got {address!r}")
    address = address.strip()
    if address == "auto":
        return "auto", None
    if address.startswith("local:"):
        count = address[len("local:"):]
        if not count.isdigit() or int(count) < 1:
            raise SweepError(f"'local:N' takes a number of worker nodes >= 1, got {address!r}")
        return "local", int(count)
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SweepError(f"a Ray address is HOST:PORT (the head's GCS port, 6379 by default), 'auto' or 'local:N', "
                         f"got {address!r}")
    return "remote", (host.strip("[]"), int(port))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return socket.gethostbyname(host).startswith("127.")
    except OSError:
        return False


def probe(host: str, port: int, timeout: float = PROBE_SECONDS) -> None:
    """Fails within ``timeout`` seconds when nothing listens at host:port (Ray itself would retry
    for minutes)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise SweepError(f"cannot reach the Ray head at {host}:{port} ({reason} after at most {timeout:g} s): start "
                         f"it with `ray start --head --port={port}` on that machine, and check the address and "
                         f"the firewall", code="io") from exc


@dataclass
class Connection:
    """A connected driver; close() undoes what connect() did (and only that)."""
    ray: Any
    address: str
    initialized_here: bool = False
    local_cluster: Any = None
    notes: List[str] = field(default_factory=list)

    def close(self) -> None:
        if self.initialized_here:
            self.ray.shutdown()
        if self.local_cluster is not None:
            self.local_cluster.shutdown()


def connect(address: str, workers_per_node: int, log: Callable[[str], None]) -> Connection:
    """Connects this process to the cluster at ``address``, starting a local one for "local:N".
    A Ray session this process already has is used as it is."""
    kind, detail = parse_address(address)
    loopback = kind == "local" or (kind == "remote" and is_loopback(detail[0]))
    if loopback:
        use_loopback()
    ray = import_ray()
    if loopback:
        use_loopback(ray)
    if ray.is_initialized():
        log("using this process's Ray session")
        return Connection(ray, address)
    if kind == "remote":
        probe(*detail)
        _give_up_sooner(ray)
    _python_for_ray()
    init_options: Dict[str, Any] = {"log_to_driver": True, "configure_logging": True, "logging_level": "WARNING"}
    if loopback:
        init_options["_node_ip_address"] = "127.0.0.1"
    if kind == "local":
        cluster = start_local_cluster(detail, workers_per_node)
        try:
            ray.init(address=cluster.address, **init_options)
        except Exception:
            cluster.shutdown()
            raise
        log(f"started a local Ray cluster of {detail} worker node(s) on 127.0.0.1")
        return Connection(ray, cluster.address, initialized_here=True, local_cluster=cluster)
    try:
        ray.init(address="auto" if kind == "auto" else f"{detail[0]}:{detail[1]}", **init_options)
    except ConnectionError as exc:
        raise SweepError(f"cannot connect to the Ray cluster at {address}: {exc} (is a Ray head, `ray start --head`, "
                         f"listening there? Its GCS port is 6379 by default)", code="io") from exc
    return Connection(ray, address, initialized_here=True)


def _give_up_sooner(ray) -> None:
    """Something answers at the address (the probe passed) but may not be Ray: Ray's own retries
    would take about 20 s to say so; about 6 s unless the user set RAY_NUM_REDIS_GET_RETRIES."""
    if "RAY_NUM_REDIS_GET_RETRIES" in os.environ:
        return
    from ray._private import ray_constants
    ray_constants.NUM_REDIS_GET_RETRIES = min(ray_constants.NUM_REDIS_GET_RETRIES, _CONNECT_RETRIES)


def start_local_cluster(nodes: int, workers_per_node: int):
    """A head (which runs no worker) and ``nodes`` worker nodes on 127.0.0.1, each with room for
    ``workers_per_node`` actors; the machine's GPUs are split between the nodes."""
    from ray.cluster_utils import Cluster
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    gpus = local_gpu_ids()
    share = len(gpus) // nodes
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1"})
    try:
        for i in range(nodes):
            args: Dict[str, Any] = {"num_cpus": workers_per_node, "node_ip_address": "127.0.0.1"}
            if share:
                args["num_gpus"] = share
                args["env_vars"] = {"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * share:(i + 1) * share])}
            cluster.add_node(**args)
        cluster.wait_for_nodes()
    except Exception:
        cluster.shutdown()
        raise
    return cluster


def local_gpu_ids() -> List[str]:
    """This machine's NVIDIA GPUs (CUDA_VISIBLE_DEVICES when set, else nvidia-smi's list)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def _python_for_ray() -> None:
    """Ray starts its processes with sys.executable; inside the CLI's embedded interpreter that is
    the CLI itself, so point it at the environment's python. Ray also reads sys.argv[0], which an
    embedded interpreter may not have."""
    if not getattr(sys, "argv", None):
        sys.argv = ["discomfort"]
    name = os.path.basename(sys.executable or "")
    if name.startswith("python"):
        return
    # The environment Ray is installed in (<env>/lib/pythonX.Y/site-packages/ray), else sys.prefix.
    import ray
    environment = os.path.abspath(os.path.join(os.path.dirname(ray.__file__), "..", "..", "..", ".."))
    for folder in (environment, sys.prefix):
        for candidate in (os.path.join(folder, "bin", "python3"), os.path.join(folder, "bin", "python")):
            if os.access(candidate, os.X_OK):
                sys.executable = candidate
                return


@dataclass
class Slot:
    """Room for one actor: a node and the resources its actor asks for."""
    number: int
    node_id: str
    ip: str
    options: Dict[str, Any]


def plan_slots(ray, workers_per_node: int, cpu_only: bool) -> List[Slot]:
    """``workers_per_node`` slots on every alive node that has a CPU or a GPU: an actor asks for one
    GPU where the node has them (a share when there are fewer GPUs than workers), else one CPU (a
    share likewise), and is pinned to its node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    slots: List[Slot] = []
    nodes = sorted((n for n in ray.nodes() if n.get("Alive")), key=lambda n: n["NodeID"])
    for node in nodes:
        resources = node.get("Resources") or {}
        gpus = 0.0 if cpu_only else float(resources.get("GPU", 0))
        cpus = float(resources.get("CPU", 0))
        if gpus > 0:
            options = {"num_gpus": min(1.0, gpus / workers_per_node), "num_cpus": 0}
        elif cpus > 0:
            options = {"num_cpus": min(1.0, cpus / workers_per_node)}
        else:
            continue
        for _ in range(workers_per_node):
            # Pinned (not soft): an actor whose node is gone is gone too, and its points move to
            # the other actors instead of waiting for room that may never come.
            options = dict(options, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
            slots.append(Slot(len(slots), node["NodeID"], node.get("NodeManagerAddress", "?"), options))
    return slots


def package_root() -> str:
    """The folder that holds the discomfort package this file belongs to."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker_pythonpath() -> Optional[str]:
    """What the workers put in front of their PYTHONPATH to import the same Discomfort: the build
    tree or checkout the driver runs from. None for an installed package (a site-packages folder
    is the environment's own, not something to hand to another machine)."""
    root = package_root()
    if os.path.basename(root) in ("site-packages", "dist-packages"):
        return None
    return root


def driver_versions(comfyui_path: Optional[str]) -> Dict[str, Optional[str]]:
    """{"discomfort": ..., "comfyui": ...} read from files, importing neither."""
    here = os.path.dirname(os.path.abspath(__file__))
    return {"discomfort": _read_version(os.path.join(here, "__init__.py")),
            "comfyui": _read_version(os.path.join(find_comfyui(comfyui_path), "comfyui_version.py"))}


def find_comfyui(explicit: Optional[str]) -> str:
    """The ComfyUI the engine would use here: the given path, $COMFYUI_PATH, the ComfyUI whose
    custom_nodes/ holds this package, else ~/ComfyUI."""
    if explicit:
        return os.path.expanduser(explicit)
    if os.environ.get("COMFYUI_PATH"):
        return os.path.expanduser(os.environ["COMFYUI_PATH"])
    folder = os.path.abspath(__file__)
    while os.path.dirname(folder) != folder:
        parent = os.path.dirname(folder)
        if os.path.basename(parent) == "custom_nodes":
            return os.path.dirname(parent)
        folder = parent
    return os.path.expanduser("~/ComfyUI")


def _read_version(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as f:
            match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", f.read(), re.MULTILINE)
    except OSError:
        return None
    return match.group(1) if match else None
