"""Reading workflow arguments: file paths or dicts, UI or API format."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Sequence, Tuple, Union

from . import errors

WorkflowLike = Union[str, "os.PathLike[str]", Dict[str, Any]]


def load(workflow: WorkflowLike, index: int = 0) -> Tuple[str, Dict[str, Any]]:
    """(name, document). Paths are read now; dicts are used as they are; a (name, dict) pair or a
    WorkflowBuilder (discomfort.builder) gives its API prompt."""
    if isinstance(workflow, dict):
        return f"workflow_{index}", workflow
    if isinstance(workflow, tuple) and len(workflow) == 2 and isinstance(workflow[0], str) \
            and isinstance(workflow[1], dict):
        return workflow
    if hasattr(workflow, "to_api") and callable(workflow.to_api):
        return f"built_{index}.json", workflow.to_api()
    if isinstance(workflow, (str, os.PathLike)):
        path = os.fspath(workflow)
        if not os.path.isfile(path):
            raise errors.WorkflowFileNotFoundError(f"workflow file not found: {path}", workflow=path)
        with open(path, encoding="utf-8") as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError as exc:
                raise errors.WorkflowParseError(f"malformed JSON in {path}: {exc}", workflow=path) from exc
        if not isinstance(doc, dict):
            raise errors.WorkflowParseError(f"{path} does not hold a workflow (a JSON object)", workflow=path)
        return os.path.basename(path), doc
    raise errors.TypeMismatchError(f"a workflow is a file path or a dict, not {type(workflow).__name__}")


def load_all(workflows: Sequence[WorkflowLike]) -> List[Tuple[str, Dict[str, Any]]]:
    if isinstance(workflows, (str, os.PathLike, dict)) or hasattr(workflows, "to_api"):
        raise errors.TypeMismatchError("workflows must be a list of paths or dicts")
    if not workflows:
        raise errors.InvalidArgumentError("workflows must be a non-empty list")
    return [load(w, i) for i, w in enumerate(workflows)]
