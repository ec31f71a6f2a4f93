"""WorkflowTools: the original Discomfort's workflow utilities, on the native C++ graph code.

Every function takes a workflow as a path or a dict, in UI or API format. Port types and UI → API
conversion use the node definitions of the running ComfyUI when the tools belong to a started
Discomfort (``d.Tools``); standalone tools work on structure alone.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import _workflows, errors
from ._engine import call_blocking
from ._native import core


class WorkflowTools:
    def __init__(self, definitions: Optional[Callable[[], Any]] = None) -> None:
        self._definitions = definitions  # lazily fetched from the engine

    def _defs(self) -> Any:
        return call_blocking(self._definitions) if self._definitions else None

    # ---------------------------------------------------------------- images
    @staticmethod
    def open_image_as_tensor(image_path: str) -> "torch.Tensor":  # noqa: F821
        """An image file as ComfyUI's IMAGE: float32 RGB in [0, 1], shaped [1, H, W, 3]."""
        import numpy as np
        import torch
        from PIL import Image, ImageOps

        with Image.open(image_path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
            array = np.asarray(img, dtype=np.float32) / 255.0
        return torch.from_numpy(array.copy())[None, ...]

    @staticmethod
    def save_comfy_image_to_disk(tensor: "torch.Tensor", output_path: str) -> str:  # noqa: F821
        """Saves the first image of an IMAGE batch ([B, H, W, C] or [H, W, C], values in [0, 1])."""
        import numpy as np
        from PIL import Image

        t = tensor.detach()
        if t.dim() == 4:
            t = t[0]
        if t.dim() != 3:
            raise errors.TypeMismatchError(f"an IMAGE tensor is [B, H, W, C] or [H, W, C], got shape {list(tensor.shape)}")
        array = (t.float().cpu().clamp(0, 1) * 255.0).round().to(dtype=__import__("torch").uint8).numpy()
        if array.shape[-1] == 1:
            array = array[..., 0]
        parent = os.path.dirname(os.path.abspath(output_path))
        os.makedirs(parent, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(array)).save(output_path)
        return output_path

    # ---------------------------------------------------------------- ports and order
    def discover_port_nodes(self, workflow: _workflows.WorkflowLike) -> Dict[str, Any]:
        """{inputs, outputs, passthrus, unconnected: {unique_id: port}, unique_id_to_node, execution_order}
        where a port is {node_id, type, mode, tags, source, consumers}."""
        name, doc = _workflows.load(workflow)
        ports = core.discover_ports(doc, self._defs(), name)
        out: Dict[str, Any] = {}
        uid_to_node: Dict[str, str] = {}
        for role in ("inputs", "outputs", "passthrus", "unconnected"):
            out[role] = {p["unique_id"]: p for p in ports[role]}
            for p in ports[role]:
                uid_to_node[p["unique_id"]] = p["node_id"]
        out["unique_id_to_node"] = uid_to_node
        out["execution_order"] = core.execution_order(doc)
        return out

    def get_execution_order(self, workflow: _workflows.WorkflowLike) -> List[str]:
        return core.execution_order(_workflows.load(workflow)[1])

    # ---------------------------------------------------------------- stitching, pruning, reroutes
    def stitch_workflows(self, workflows: Sequence[_workflows.WorkflowLike], delete_input_ports: bool = False,
                         delete_output_ports: bool = False) -> Dict[str, Any]:
        """Joins workflows in order; an OUTPUT port feeds the later INPUT ports with its unique_id.
        Returns {stitched_workflow, inputs, outputs, passthrus, execution_order}."""
        loaded = _workflows.load_all(workflows)
        r = core.stitch([d for _, d in loaded], delete_input_ports, delete_output_ports, [n for n, _ in loaded],
                        self._defs())
        ports = r["ports"]
        return {
            "stitched_workflow": r["workflow"],
            "inputs": {p["unique_id"]: p for p in ports["inputs"]},
            "outputs": {p["unique_id"]: p for p in ports["outputs"]},
            "passthrus": {p["unique_id"]: p for p in ports["passthrus"]},
            "execution_order": r["execution_order"],
        }

    def prune_workflow_to_output(self, workflow: _workflows.WorkflowLike, unique_id: str) -> Dict[str, Any]:
        """The minimal sub-workflow that produces OUTPUT port ``unique_id`` (KeyError when absent)."""
        return core.prune_to_output(_workflows.load(workflow)[1], unique_id, self._defs())

    _prune_workflow_to_output = prune_workflow_to_output  # the original's name

    def remove_reroute_nodes(self, workflow: Any, links: Optional[List[List[Any]]] = None) -> Any:
        """A UI workflow without Reroute nodes, consumers linked straight to the real sources.

        The original's form, ``remove_reroute_nodes(nodes, links)`` with ``nodes`` a {node_id: node}
        mapping and ``links`` the UI link arrays, returns its tuple: (the nodes without Reroutes,
        the rewired links, {link_id: link_id} of the links kept)."""
        if links is None:
            return core.remove_reroutes(_workflows.load(workflow)[1])
        nodes = workflow
        rewired = core.remove_reroutes({"nodes": list(nodes.values()), "links": [list(link) for link in links]})
        kept = [list(link) for link in rewired["links"]]
        return ({node_id: node for node_id, node in nodes.items() if node.get("type") != "Reroute"}, kept,
                {link[0]: link[0] for link in kept})

    # ---------------------------------------------------------------- validation and conversion
    def validate_workflow(self, workflow: _workflows.WorkflowLike, raise_on_error: bool = True) -> Any:
        """Checks links, node types, link types, required inputs, cycles and port clashes.
        Returns True when valid; otherwise raises ValidationError (its ``problems`` list them all),
        or with raise_on_error=False returns the list of problems (exceptions, not raised)."""
        name, doc = _workflows.load(workflow)
        problems = [errors.from_status(p) for p in core.validate_workflow(doc, self._defs(), name)]
        if not raise_on_error:
            return problems
        if problems:
            first = problems[0]
            summary = f"{len(problems)} problem(s) in {name}: " + "; ".join(str(p) for p in problems[:5])
            raise errors.ValidationError(summary, workflow=name, node_id=first.node_id, class_type=first.class_type,
                                         input_name=first.input_name, extra={"problems": problems})
        return True

    def to_api(self, workflow: _workflows.WorkflowLike) -> Dict[str, Any]:
        """The API prompt of a workflow (UI workflows converted natively with the node definitions)."""
        name, doc = _workflows.load(workflow)
        return core.to_api(doc, self._defs(), name)

    @staticmethod
    def detect_format(workflow: _workflows.WorkflowLike) -> str:
        return core.detect_format(_workflows.load(workflow)[1])
