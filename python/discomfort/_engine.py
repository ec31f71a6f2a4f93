"""The process-wide engine: ComfyUI is imported once per process, so every Discomfort instance
shares one Engine and one engine thread.

Blocking engine calls run on that thread, never on an asyncio event loop's thread: ComfyUI's
executor calls asyncio.run() itself, and the caller's loop must stay responsive. The C++ side
releases the GIL while it works.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import shutil
import tempfile
import threading
from typing import Any, Callable, Optional, TypeVar

from ._native import core

T = TypeVar("T")

_lock = threading.Lock()
_engine: Optional["core.Engine"] = None
_options: dict = {}
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="discomfort-engine")


def on_engine_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> "concurrent.futures.Future[T]":
    return _pool.submit(fn, *args, **kwargs)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def call_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs fn now: directly, or on the engine thread when this thread runs an event loop (ComfyUI's
    asyncio.run() would fail here) or is itself inside a ComfyUI node."""
    if threading.current_thread().name.startswith("discomfort-engine"):
        return fn(*args, **kwargs)
    if _in_event_loop():
        return on_engine_thread(fn, *args, **kwargs).result()
    return fn(*args, **kwargs)


async def call_async(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.wrap_future(on_engine_thread(fn, *args, **kwargs))


def get_engine(comfyui_path: Optional[str] = None, work_dir: Optional[str] = None, cpu: Optional[bool] = None,
               verbose: bool = False, extra_nodes: tuple = ()) -> "core.Engine":
    """Starts ComfyUI on first use (blocking; call off the event loop). Later calls return the same
    engine, loading any extra node paths not loaded yet."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = core.Engine.start(comfyui_path=comfyui_path, work_dir=work_dir, cpu=cpu, verbose=verbose,
                                        extra_nodes=[str(p) for p in extra_nodes])
            if work_dir is None:
                atexit.register(_tidy_default_work_dir)
            _options.update(comfyui_path=comfyui_path, loaded=set(map(str, extra_nodes)))
            return _engine
        for path in (str(p) for p in extra_nodes):
            if path not in _options["loaded"]:
                _engine.load_nodes(path)
                _options["loaded"].add(path)
        return _engine


def _tidy_default_work_dir() -> None:
    """The default work folder (<tmp>/discomfort-<pid>, made by the bridge) goes at exit: its temp/
    and user/ folders always, then every empty folder, so images a workflow saved stay."""
    root = os.path.join(tempfile.gettempdir(), f"discomfort-{os.getpid()}")
    if not os.path.isdir(root):
        return
    for name in ("temp", "user"):
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    # Empty folders (ComfyUI makes some, such as input/3d) go bottom-up; files stay.
    for folder, _, _ in os.walk(root, topdown=False):
        try:
            os.rmdir(folder)
        except OSError:
            pass  # not empty: the user's results stay


def current_engine() -> Optional["core.Engine"]:
    return _engine
