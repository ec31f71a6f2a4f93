"""Running the steady-state path's coroutines without `asyncio.run`'s cost per call.

ComfyUI's execution functions are coroutines (`execution.execute`, `get_output_data`, ...), so each
iteration needs an event loop; `asyncio.run` makes and closes one per call, about half a millisecond,
more than the rest of a small workflow's steady-state iteration.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Optional

_loop: Optional[asyncio.AbstractEventLoop] = None
_loop_lock = threading.Lock()


class _Resume:
    """Hands a coroutine that suspended while stepped by hand over to a Task: yields what it
    yielded (the future it waits on) and goes on sending into it."""

    def __init__(self, coro, pending):
        self.coro, self.pending = coro, pending

    def __await__(self):
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the Task (a cancellation)
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _resumed(coro, pending):
    return await _Resume(coro, pending)


def run_coroutine(coro):
    """Runs `coro` to completion as `asyncio.run` would (in a copy of the current context, with an
    event loop running, leftover tasks cancelled at the end), for a fraction of its cost: one loop is
    kept (`asyncio.run` makes and closes one per call, about half a millisecond), and the coroutine is
    stepped by hand with that loop set as the running one; only if it suspends (an asynchronous
    node awaiting something) does the loop take over. A second thread arriving meanwhile gets
    `asyncio.run`."""
    global _loop
    if not _loop_lock.acquire(blocking=False):
        return asyncio.run(coro)
    try:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
        loop = _loop
        context = contextvars.copy_context()
        try:
            asyncio.events._set_running_loop(loop)
            try:
                pending = context.run(coro.send, None)
            except StopIteration as stop:
                return stop.value
            finally:
                asyncio.events._set_running_loop(None)
            return loop.run_until_complete(loop.create_task(_resumed(coro, pending), context=context))
        finally:
            leftover = asyncio.all_tasks(loop)
            if leftover:
                for task in leftover:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
    finally:
        _loop_lock.release()
