"""Workflows built in code, checked against the running ComfyUI's node definitions at every call.

    b = d.new_workflow()
    blur = b.add_node("ImageBlur")
    b.set(blur, "blur_radius", 3)                 # out of range -> InvalidArgumentError at once
    b.add_input_port("frame", blur, "image")
    b.add_output_port("frame", blur, "IMAGE")
    await d.run([b.workflow("blur.json")], inputs={"frame": image}, iterations=4)
    b.save_ui("blur.json")                         # opens in the ComfyUI web UI

Errors are the package's exceptions (NotFoundError for an unknown class or input, TypeMismatchError,
InvalidArgumentError for values out of range, CycleError), raised by the call that makes them.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Sequence, Tuple, Union

from ._native import core

Output = Union[int, str]


class WorkflowBuilder:
    def __init__(self, definitions: Any) -> None:
        self._core = core.WorkflowBuilder(definitions)

    def add_node(self, class_type: str, title: str = "") -> int:
        """Adds a node; returns its id."""
        return self._core.add_node(class_type, title)

    def set(self, node: int, input: str, value: Any) -> "WorkflowBuilder":
        """Sets a widget (None: back to the default)."""
        self._core.set(node, input, value)
        return self

    def connect(self, from_node: int, output: Output, to_node: int, input: str) -> "WorkflowBuilder":
        """Links an output (slot index or name) to an input."""
        self._core.connect(from_node, output, to_node, input)
        return self

    def add_input_port(self, unique_id: str, to_node: int, input: str, tags: Sequence[str] = ()) -> int:
        return self._core.add_input_port(unique_id, to_node, input, list(tags))

    def add_output_port(self, unique_id: str, from_node: int, output: Output, tags: Sequence[str] = ()) -> int:
        return self._core.add_output_port(unique_id, from_node, output, list(tags))

    def add_passthrough_port(self, unique_id: str, from_node: int, output: Output, to_node: int, input: str,
                             tags: Sequence[str] = ()) -> int:
        return self._core.add_passthrough_port(unique_id, from_node, output, to_node, input, list(tags))

    def to_api(self) -> Dict[str, Any]:
        """The API prompt (ValidationError naming the node and input when a required one is unset)."""
        return self._core.to_api()

    def to_ui(self) -> Dict[str, Any]:
        """A UI workflow as the web UI saves one, laid out left to right."""
        return self._core.to_ui()

    def workflow(self, name: str = "built.json") -> Tuple[str, Dict[str, Any]]:
        """(name, API prompt): what d.run / d.sweep / d.run_plan accept in their workflow lists."""
        return (name, self.to_api())

    def save_api(self, path: Union[str, os.PathLike]) -> str:
        return _write_json(path, self.to_api())

    def save_ui(self, path: Union[str, os.PathLike]) -> str:
        return _write_json(path, self.to_ui())

    def __len__(self) -> int:
        return len(self._core)


def _write_json(path: Union[str, os.PathLike], doc: Dict[str, Any]) -> str:
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path
