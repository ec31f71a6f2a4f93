"""Discomfort: the original Discomfort's API, running ComfyUI in this process through the C++ engine."""

from __future__ import annotations

import asyncio
import atexit
import inspect
import json
import os
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from . import _engine, _workflows, errors
from ._native import core
from .builder import WorkflowBuilder
from .context import WorkflowContext
from .results import EventRecorder, RunResult, SweepResults
from .tools import WorkflowTools
from .worker import Worker

_INSTANCES: "weakref.WeakSet[Discomfort]" = weakref.WeakSet()


class Discomfort:
    """Create with ``d = await Discomfort.create()``; then ``d.run(...)``, ``d.Context(...)``,
    ``d.Tools``, ``d.Worker``; finally ``await d.shutdown()``."""

    Context = WorkflowContext

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.Tools = WorkflowTools(engine.definitions)
        self.Worker = Worker(engine, self._run_once)
        self._closed = False
        _INSTANCES.add(self)

    @classmethod
    async def create(cls, config_path: Optional[str] = None, *, comfyui_path: Optional[str] = None,
                     work_dir: Optional[str] = None, cpu: Optional[bool] = None, verbose: bool = False,
                     extra_nodes: Sequence[str] = ()) -> "Discomfort":
        """Imports ComfyUI into this process (once per process; later instances share it).

        comfyui_path: the checkout (default: $COMFYUI_PATH, the ComfyUI holding this package,
        ~/ComfyUI). work_dir: where ComfyUI's output/temp/input folders go (default: a temporary
        folder per process). cpu: force CPU. extra_nodes: custom-node files or packages to load.
        config_path: accepted for compatibility with the original; a JSON file whose COMFYUI_PATH
        is used when comfyui_path is not given."""
        if comfyui_path is None and config_path and os.path.exists(config_path):
            import json
            with open(config_path) as f:
                comfyui_path = json.load(f).get("COMFYUI_PATH") or None
        engine = await _engine.call_async(_engine.get_engine, comfyui_path=comfyui_path, work_dir=work_dir, cpu=cpu,
                                          verbose=verbose, extra_nodes=tuple(extra_nodes))
        return cls(engine)

    @property
    def info(self) -> Dict[str, Any]:
        """{comfyui_path, comfyui_version, device, cpu, import_failed, embedded_in_live_comfyui, ...}"""
        return dict(self._engine.info)

    # ---------------------------------------------------------------- running
    async def run(self, workflows: Sequence[_workflows.WorkflowLike], inputs: Optional[Dict[str, Any]] = None,
                  iterations: int = 1, use_ram: bool = True, context: Optional[WorkflowContext] = None, *,
                  until: Optional[str] = None, output_dir: Optional[str] = None,
                  on_iteration: Optional[Callable[[Dict[str, Any]], Any]] = None,
                  on_event: Optional[Callable[[Dict[str, Any]], Any]] = None,
                  cancel: Optional["core.CancelToken"] = None, iteration_timeout: Optional[float] = None,
                  interrupt_grace: Optional[float] = None, save_every: int = 1,
                  trace: Optional[str] = None, exact_executor: bool = False) -> Dict[str, Any]:
        """Runs ``workflows`` (paths or dicts, UI or API format) in order, ``iterations`` times, and
        returns {unique_id: value} for every OUTPUT port: tensors and live objects by reference.

        ``inputs`` are saved into the context first. An OUTPUT and an INPUT port with the same
        unique_id carry state from one iteration to the next. Without ``context`` a temporary one
        lives for this call. A failed iteration commits nothing: the context keeps the last good one.

        Beyond the original: ``until`` (a condition over context scalars such as
        ``"score > 0.9 && iteration >= 3"``, checked after each iteration), ``output_dir`` (IMAGE
        outputs as PNG per iteration; with ``save_every=K`` only every K-th iteration's and the
        last one's, 0: the last only), ``on_iteration`` / ``on_event`` callbacks (plain functions run
        on the engine thread; coroutine functions are scheduled on this event loop), ``cancel`` (a
        CancelToken). Cancelling the awaiting task interrupts ComfyUI at the next node and raises
        asyncio.CancelledError. ``iteration_timeout`` (seconds) interrupts an iteration that runs
        longer and raises RunTimeoutError (a TimeoutError) naming the iteration, workflow and node,
        the context left at the last finished iteration; ``interrupt_grace`` (default 10 s) is how
        long a node may ignore that interrupt before the call returns anyway (the node is then
        abandoned and the next execution waits for it). ``trace`` (a path) writes a Chrome trace of the
        run (Perfetto or chrome://tracing open it): iterations, stages, workflows, every node, context
        spills and reloads, PNG encodes. ``exact_executor=True`` runs ComfyUI's full prompt round every
        iteration instead of only the nodes whose inputs changed (the same results; for comparison)."""
        self._check_open()
        if iterations < 0:
            raise errors.InvalidArgumentError("iterations must be >= 0")
        loaded = _workflows.load_all(workflows)
        own_context = context is None
        ctx = WorkflowContext() if own_context else context
        try:
            for uid, value in (inputs or {}).items():
                ctx.save(uid, value, use_ram=use_ram)
            loop = asyncio.get_running_loop()
            # run() returns outputs only: no per-iteration reports kept for a long loop.
            result = await self._run_core(ctx, loaded, iterations, until, output_dir,
                                          _threadsafe(on_iteration, loop), _threadsafe(on_event, loop), cancel,
                                          iteration_timeout, interrupt_grace, keep_reports=False,
                                          save_every=save_every, trace=trace, exact_executor=exact_executor)
            outputs = result["outputs"]
            if not use_ram and not own_context:
                for uid, value in outputs.items():
                    ctx.save(uid, value, use_ram=False)
            return outputs
        finally:
            if own_context:
                ctx.shutdown()

    async def run_detailed(self, workflows: Sequence[_workflows.WorkflowLike], *, context: WorkflowContext,
                           iterations: int = 1, until: Optional[str] = None, output_dir: Optional[str] = None,
                           on_iteration: Optional[Callable] = None, on_event: Optional[Callable] = None,
                           cancel: Optional["core.CancelToken"] = None, iteration_timeout: Optional[float] = None,
                           interrupt_grace: Optional[float] = None, save_every: int = 1,
                           trace: Optional[str] = None, exact_executor: bool = False,
                           report: bool = False) -> RunResult:
        """Like run, returning {outputs, files, iterations_completed, stopped_by_until, reports}.
        With ``report=True`` the run's events are kept and ``result.report()`` writes an HTML report."""
        self._check_open()
        loop = asyncio.get_running_loop()
        recorder = EventRecorder(_threadsafe(on_event, loop)) if report else None
        result = await self._run_core(context, _workflows.load_all(workflows), iterations, until, output_dir,
                                      _threadsafe(on_iteration, loop), recorder or _threadsafe(on_event, loop),
                                      cancel, iteration_timeout, interrupt_grace, save_every=save_every, trace=trace,
                                      exact_executor=exact_executor)
        return RunResult(result, _dir(output_dir), recorder, until)

    async def run_plan(self, plan: Union[str, os.PathLike, Dict[str, Any]], *, context: Optional[WorkflowContext] = None,
                       iterations: Optional[int] = None, until: Union[None, str, Callable[[WorkflowContext], bool]] = None,
                       output_dir: Optional[str] = None, on_iteration: Optional[Callable] = None,
                       on_event: Optional[Callable] = None, cancel: Optional["core.CancelToken"] = None,
                       iteration_timeout: Optional[float] = None,
                       interrupt_grace: Optional[float] = None, save_every: int = 1,
                       trace: Optional[str] = None, exact_executor: bool = False,
                       report: bool = False) -> RunResult:
        """Runs a loop plan (a PLAN.json path or the same structure as a dict: stages with ``when``
        conditions and error policies, ``until``, ``max_iterations``, ``inputs``; see the README).
        Returns {outputs, files, iterations_completed, stopped_by_until, reports}. ``until`` may
        override the plan's condition, as an expression or a callable taking the context;
        ``iteration_timeout`` / ``interrupt_grace`` override the plan's fields of those names;
        ``save_every``, ``trace``, ``exact_executor`` and ``report`` as in run / run_detailed."""
        self._check_open()
        if isinstance(plan, (str, os.PathLike)):
            plan = os.fspath(plan)  # read by the engine, exactly as the CLI's --plan
        own_context = context is None
        ctx = WorkflowContext() if own_context else context
        loop = asyncio.get_running_loop()
        recorder = EventRecorder(_threadsafe(on_event, loop)) if report else None
        try:
            result = await self._submit(self._engine.run_plan, ctx, plan, iterations=iterations,
                                        until=self._core_until(until, ctx),
                                        output_dir=os.fspath(output_dir) if output_dir else None,
                                        on_iteration=_threadsafe(on_iteration, loop),
                                        on_event=recorder or _threadsafe(on_event, loop), cancel=cancel,
                                        iteration_timeout=iteration_timeout, interrupt_grace=interrupt_grace,
                                        save_every=save_every, trace=os.fspath(trace) if trace else None,
                                        exact_executor=exact_executor)
            return RunResult(result, _dir(output_dir), recorder, until)
        finally:
            if own_context:
                ctx.shutdown()

    async def sweep(self, workflows: Sequence[_workflows.WorkflowLike], grid: GridLike = None, *,
                    images: Union[None, str, os.PathLike, Sequence[Union[str, os.PathLike]]] = None,
                    image_port: str = "image", inputs: Optional[Dict[str, Any]] = None,
                    context: Optional[WorkflowContext] = None, iterations: int = 1,
                    output_dir: Optional[str] = None, pipeline: bool = True, max_in_flight: int = 4,
                    on_point: Optional[Callable[[Dict[str, Any]], Any]] = None,
                    cancel: Optional["core.CancelToken"] = None, iteration_timeout: Optional[float] = None,
                    interrupt_grace: Optional[float] = None, shard: Optional[str] = None,
                    trace: Optional[str] = None, exact_executor: bool = False, report: bool = False,
                    ray: Optional[str] = None, workers_per_node: int = 1,
                    setup: Optional[_workflows.WorkflowLike] = None, collect: bool = False,
                    max_retries: int = 3) -> List[Dict[str, Any]]:
        """Independent runs of ``workflows``, one per point of a parameter ``grid`` or per PNG of
        ``images`` (the CLI's ``discomfort sweep``). Each point runs ``iterations`` times in its own
        child context seeded from ``context`` (or from ``inputs``), plus the point's grid values (saved
        under their keys) or its image (saved as ``image_port``); points never see each other's state.

        ``grid``: ``{"seed": [1, 2, 3], "cfg": "5,7.5"}`` (lists, ranges, or the CLI's value syntax
        ``"1..8"``, ``"1..9..2"``, ``"a,b"``), or CLI strings ``["seed=1..8", "cfg=5,7.5"]``; the product
        of the axes, first axis slowest. ``images``: a folder (its .png files by name) or a list of paths.
        ``output_dir``: IMAGE outputs written as point_<index>/<unique_id>*.png. ``pipeline``: decode
        the next points' images and encode finished outputs while ComfyUI runs, at most
        ``max_in_flight`` points alive at once.

        Returns one dict per point, in point order: {index, params, image, ok, outputs, files, seconds,
        error}. A failing point does not stop the sweep: its ``error`` is the exception ``run`` would
        have raised (ExecutionError, ...), ``ok`` is False. ``on_point`` is called with each such dict as
        points finish (a coroutine function runs on this loop). Cancelling the awaiting task (or
        ``cancel``) stops the sweep and raises asyncio.CancelledError (RunCancelledError for a token).
        ``iteration_timeout`` (seconds): a point whose iteration runs longer fails with a
        RunTimeoutError in its ``error`` and the sweep goes on. ``shard="K/N"`` runs only part K of N
        (1 <= K <= N) of the points, round robin by index: the N parts are disjoint and together the
        whole sweep, with the same output names (for one farm task per shard). ``trace`` (a path) writes
        a Chrome trace of each point's decode / execute / encode and its nodes.

        ``ray="HOST:PORT" | "auto" | "local:N"`` runs the points on a Ray cluster instead (``pip install
        'discomfort[ray]'``): ``workers_per_node`` actors per machine, each holding one engine for the
        whole sweep; ``setup`` (a workflow) runs once per actor and its OUTPUT ports (MODEL, CLIP,
        VAE...) seed every point; ``collect`` sends the PNGs (and the point images) over Ray instead of
        a shared ``output_dir``; a point whose worker was lost runs again, at most ``max_retries``
        times. Context values and ``inputs`` must be JSON values or tensors. The results are the same
        dicts, plus ``node``, ``node_id``, ``actor``, ``pid`` and ``attempt``; ``on_point`` runs as
        points finish (in any order)."""
        self._check_open()
        axes = _grid_axes(grid)
        if images is not None:
            if isinstance(images, (str, os.PathLike)):
                image_list = await _engine.call_async(core.list_images, os.fspath(images))
            else:
                image_list = [os.fspath(p) for p in images]
                if not image_list:
                    raise errors.InvalidArgumentError("images is an empty list")
        else:
            image_list = []
        if bool(axes) == bool(image_list):
            raise errors.InvalidArgumentError("sweep needs a grid or images (one of them, not both)")
        loaded = _workflows.load_all(workflows)
        if ray is not None:
            from . import distributed_api
            return await distributed_api.sweep_on_ray(
                address=ray, workflows=loaded, points=distributed_api.make_points(axes, image_list, shard),
                values={**({k: context.load(k) for k in context.list_keys()} if context else {}), **(inputs or {})},
                iterations=iterations, image_port=image_port, output_dir=os.fspath(output_dir) if output_dir else None,
                on_point=_threadsafe(on_point, asyncio.get_running_loop()), cancel=cancel,
                iteration_timeout=iteration_timeout, interrupt_grace=interrupt_grace, workers_per_node=workers_per_node,
                setup=_workflows.load(setup) if setup is not None else None, collect=collect, max_retries=max_retries,
                versions=distributed_api.versions(self.info), cpu=bool(self.info.get("cpu")),
                extra_nodes=distributed_api.loaded_node_paths())
        own_context = context is None
        ctx = WorkflowContext() if own_context else context
        loop = asyncio.get_running_loop()
        try:
            for uid, value in (inputs or {}).items():
                ctx.save(uid, value)
            result = await self._submit(self._engine.sweep, ctx, loaded, grid=axes, images=image_list,
                                        iterations=iterations, image_port=image_port,
                                        output_dir=os.fspath(output_dir) if output_dir else None,
                                        pipeline=pipeline, max_in_flight=max_in_flight,
                                        on_point=_threadsafe(on_point, loop), cancel=cancel,
                                        iteration_timeout=iteration_timeout, interrupt_grace=interrupt_grace,
                                        shard=shard, trace=os.fspath(trace) if trace else None,
                                        exact_executor=exact_executor)
            return SweepResults(result["points"], _dir(output_dir), EventRecorder() if report else None)
        finally:
            if own_context:
                ctx.shutdown()

    @staticmethod
    def _core_until(until, ctx: WorkflowContext):
        # A Python condition sees the WorkflowContext its caller knows, not the core store.
        if callable(until) and not isinstance(until, str):
            return lambda _core_context: bool(until(ctx))
        return until

    async def _run_core(self, ctx: WorkflowContext, loaded, iterations, until, output_dir, on_iteration, on_event,
                        cancel, iteration_timeout=None, interrupt_grace=None, keep_reports=True,
                        save_every=1, trace=None, exact_executor=False) -> Dict[str, Any]:
        return await self._submit(self._engine.run, ctx, loaded, iterations=iterations,
                                  until=self._core_until(until, ctx),
                                  output_dir=os.fspath(output_dir) if output_dir else None,
                                  on_iteration=on_iteration, on_event=on_event, cancel=cancel,
                                  iteration_timeout=iteration_timeout, interrupt_grace=interrupt_grace,
                                  keep_reports=keep_reports, save_every=save_every,
                                  trace=os.fspath(trace) if trace else None, exact_executor=exact_executor)

    async def _submit(self, method, ctx: WorkflowContext, *args, cancel=None, **kwargs) -> Dict[str, Any]:
        token = cancel or core.CancelToken()
        future = _engine.on_engine_thread(method, ctx._store(), *args, cancel=token, **kwargs)
        wrapped = asyncio.wrap_future(future)
        try:
            return await asyncio.shield(wrapped)
        except asyncio.CancelledError:
            # Stop the engine, then wait for it: the next call must not overlap this one.
            token.cancel()
            while not wrapped.done():
                self._engine.interrupt()  # repeated: an interrupt between two executions is reset by the next
                try:
                    await asyncio.wait({wrapped}, timeout=0.2)
                except asyncio.CancelledError:
                    pass
            if not wrapped.cancelled() and wrapped.exception() is None:
                pass  # finished anyway; the caller asked to cancel, so the result is dropped
            raise

    async def _run_once(self, loaded) -> Dict[str, Any]:
        with WorkflowContext() as ctx:
            return (await self._run_core(ctx, loaded, 1, None, None, None, None, None))["outputs"]

    def new_workflow(self) -> "WorkflowBuilder":
        """A workflow built in code, every call checked against this ComfyUI's node definitions
        (discomfort.builder.WorkflowBuilder)."""
        self._check_open()
        return WorkflowBuilder(_engine.call_blocking(self._engine.definitions))

    def interrupt(self) -> None:
        """Stops the running execution at its next node (from any thread)."""
        self._engine.interrupt()

    async def validate(self, workflow: _workflows.WorkflowLike) -> bool:
        """ComfyUI's validate_prompt on a workflow (ports rewritten as the engine would run it)."""
        name, doc = _workflows.load(workflow)
        prompt = await _engine.call_async(self._engine.to_api, doc, name)
        await _engine.call_async(self._engine.validate, prompt)
        return True

    # ---------------------------------------------------------------- shutting down
    async def shutdown(self) -> None:
        """Removes ephemeral uploads. ComfyUI stays imported (it cannot be unloaded); a later
        create() reuses it with its loaded models."""
        self._shutdown_sync()

    def _shutdown_sync(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.Worker.remove_ephemeral()

    def _check_open(self) -> None:
        if self._closed:
            raise errors.InvalidArgumentError("this Discomfort instance was shut down; create a new one")

    async def __aenter__(self) -> "Discomfort":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.shutdown()


GridLike = Union[None, str, Sequence[str], Dict[str, Any]]


def _grid_axes(grid: GridLike) -> List[tuple]:
    """[(key, [values...])] from the forms Discomfort.sweep accepts."""
    if grid is None:
        return []
    if isinstance(grid, str):
        grid = [grid]
    if isinstance(grid, dict):
        axes = []
        for key, values in grid.items():
            if isinstance(values, str):
                axes.append(tuple(core.parse_grid_axis(f"{key}={values}")))
            elif isinstance(values, (list, tuple, range)):
                if len(values) == 0:
                    raise errors.InvalidArgumentError(f"grid axis {key!r} has no values")
                axes.append((str(key), list(values)))
            else:
                raise errors.InvalidArgumentError(f"grid axis {key!r}: expected a list, range or 'a,b' / '1..8' "
                                                  f"string, got {type(values).__name__}")
        return axes
    return [tuple(core.parse_grid_axis(text)) for text in grid]


def _dir(path: Optional[str]) -> Optional[str]:
    return os.fspath(path) if path else None


def _threadsafe(callback: Optional[Callable], loop: asyncio.AbstractEventLoop) -> Optional[Callable]:
    """Coroutine callbacks run on the caller's loop; plain ones on the engine thread."""
    if callback is None:
        return None
    if inspect.iscoroutinefunction(callback):
        return lambda arg: asyncio.run_coroutine_threadsafe(callback(arg), loop)
    return callback


@atexit.register
def _remove_ephemeral_at_exit() -> None:
    for d in list(_INSTANCES):
        try:
            d._shutdown_sync()
        except Exception:
            pass
