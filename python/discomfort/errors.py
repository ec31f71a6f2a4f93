"""Discomfort's exceptions: one class per engine error code, each also an instance of the built-in
exception kind the original Discomfort documented (ValueError, RuntimeError, KeyError,
FileNotFoundError, TypeError), so existing ``except`` clauses keep working.

Engine errors become exceptions in one place: the C++ module calls :func:`from_status` with the
error's fields and raises what it returns.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional


class DiscomfortError(Exception):
    """Base of every Discomfort error. Where-fields are None when unknown."""

    code: str = "internal"

    def __init__(self, message: str = "", *, text: Optional[str] = None, workflow: Optional[str] = None,
                 node_id: Optional[str] = None, class_type: Optional[str] = None,
                 input_name: Optional[str] = None, port: Optional[str] = None,
                 json_pointer: Optional[str] = None, stage: Optional[str] = None,
                 iteration: Optional[int] = None, traceback: Optional[str] = None,
                 extra: Any = None) -> None:
        super().__init__(message)
        self.message = message
        # The full one-line description with its location, as the CLI prints it.
        self.text = text or message
        self.workflow = workflow
        self.node_id = node_id
        self.class_type = class_type
        self.input_name = input_name
        self.port = port
        self.json_pointer = json_pointer
        self.stage = stage
        self.iteration = iteration
        # The Python traceback of the node that raised (execution errors), as text.
        self.traceback = traceback
        self.extra = extra

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return self.text


class InvalidArgumentError(DiscomfortError, ValueError):
    code = "invalid_argument"


class WorkflowParseError(DiscomfortError, ValueError):
    code = "parse"


class NotFoundError(DiscomfortError, KeyError):
    """A missing context key, port, node or node type."""
    code = "not_found"


class WorkflowFileNotFoundError(DiscomfortError, FileNotFoundError):
    code = "not_found"


class AlreadyExistsError(DiscomfortError, ValueError):
    code = "already_exists"


class TypeMismatchError(DiscomfortError, TypeError):
    code = "type_mismatch"


class CycleError(DiscomfortError, ValueError):
    code = "cycle"


class ValidationError(DiscomfortError, ValueError):
    """ComfyUI (or Discomfort's workflow checks) rejected a workflow; ``problems`` lists them all
    when several were found."""
    code = "validation"

    @property
    def problems(self) -> List["DiscomfortError"]:
        return list((self.extra or {}).get("problems", [])) if isinstance(self.extra, dict) else []


class ExecutionError(DiscomfortError, RuntimeError):
    """A node raised while running; ``node_id``, ``class_type``, ``iteration``, ``traceback``."""
    code = "execution"


class StorageIOError(DiscomfortError, OSError):
    code = "io"

    def __init__(self, message: str = "", **where: Any) -> None:
        DiscomfortError.__init__(self, message, **where)


class NoSpaceError(StorageIOError):
    code = "no_space"


class RunCancelledError(DiscomfortError, RuntimeError):
    """The run was interrupted (cancel token, ComfyUI's interrupt). Cancelling the awaiting asyncio
    task raises ``asyncio.CancelledError`` instead."""
    code = "cancelled"


class RunTimeoutError(DiscomfortError, TimeoutError):
    code = "timeout"

    def __init__(self, message: str = "", **where: Any) -> None:
        DiscomfortError.__init__(self, message, **where)


class PythonError(DiscomfortError, RuntimeError):
    """Python failed outside a node (importing ComfyUI, loading custom nodes)."""
    code = "python"


class InternalError(DiscomfortError, RuntimeError):
    code = "internal"


_BY_CODE = {cls.code: cls for cls in (
    InvalidArgumentError, WorkflowParseError, NotFoundError, AlreadyExistsError, TypeMismatchError,
    CycleError, ValidationError, ExecutionError, StorageIOError, NoSpaceError, RunCancelledError,
    RunTimeoutError, PythonError, InternalError)}

_WHERE = ("workflow", "node_id", "class_type", "input_name", "port", "json_pointer", "stage", "iteration",
          "traceback", "extra", "text")


def from_status(status: Dict[str, Any]) -> DiscomfortError:
    """The exception for an engine error: {code, message, text, workflow, node_id, ...}."""
    cls = _BY_CODE.get(status.get("code", "internal"), InternalError)
    where = {k: status[k] for k in _WHERE if status.get(k) not in (None, "")}
    return cls(status.get("message", ""), **where)


__all__ = ["DiscomfortError", "InvalidArgumentError", "WorkflowParseError", "NotFoundError",
           "WorkflowFileNotFoundError", "AlreadyExistsError", "TypeMismatchError", "CycleError",
           "ValidationError", "ExecutionError", "StorageIOError", "NoSpaceError", "RunCancelledError",
           "RunTimeoutError", "PythonError", "InternalError", "from_status"]
