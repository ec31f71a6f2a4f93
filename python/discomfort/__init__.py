"""Discomfort: run ComfyUI workflows in loops, in-process.

    import asyncio
    from discomfort import Discomfort

    async def main():
        d = await Discomfort.create()
        with d.Context() as ctx:
            out = await d.run(["wf.json"], inputs={"seed": 1}, iterations=10, context=ctx)
        await d.shutdown()

    asyncio.run(main())

The API is the original Discomfort's (Discomfort.create / run / Context / Tools / Worker /
shutdown), but ComfyUI runs inside this process through a C++ engine: no server, no browser,
tensors and models handed over by reference.
"""

from . import errors
from ._api import Discomfort
from .builder import WorkflowBuilder
from ._native import BUILD_HINT, core as _core_module
from .context import WorkflowContext
from .errors import (AlreadyExistsError, CycleError, DiscomfortError, ExecutionError, InternalError,
                     InvalidArgumentError, NoSpaceError, NotFoundError, PythonError, RunCancelledError,
                     RunTimeoutError, StorageIOError, TypeMismatchError, ValidationError, WorkflowFileNotFoundError,
                     WorkflowParseError)
from .tools import WorkflowTools
from .worker import Worker

CancelToken = _core_module.CancelToken

__version__ = "0.2.0"

__all__ = [
    "Discomfort", "WorkflowBuilder", "WorkflowContext", "WorkflowTools", "Worker", "CancelToken", "errors", "BUILD_HINT",
    "DiscomfortError", "InvalidArgumentError", "WorkflowParseError", "NotFoundError", "WorkflowFileNotFoundError",
    "AlreadyExistsError", "TypeMismatchError", "CycleError", "ValidationError", "ExecutionError", "StorageIOError",
    "NoSpaceError", "RunCancelledError", "RunTimeoutError", "PythonError", "InternalError",
]
