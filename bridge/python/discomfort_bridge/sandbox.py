"""Keeps a live ComfyUI's process-wide state as it was around each of Discomfort's inner executions.

Inside a running ComfyUI server the engine runs workflows on PromptExecutors of its own, in the same
process and while the host's prompt (the one holding the loop node) is still executing. ComfyUI keeps
part of an execution's state in module globals and on the server object; `inner_execution()` saves,
isolates and restores each of them. Exactly these:

| state | where | why |
|---|---|---|
| interrupt flag | `comfy.model_management.interrupt_processing` | every inner execution clears it when it starts, and a node that sees it clears it as it raises: the UI's Cancel would be lost and the host prompt would carry on. Inside, a pending Cancel cannot be cleared by the inner executor; after, the flag is set again if Cancel was pressed (the host stops at its next check), cleared otherwise (the engine's own interrupts, `interrupt_inner()`, never reach the host) |
| preview method | `comfy.cli_args.args.preview_method`, `latent_preview.default_preview_method` | an execution sets it from its own extra_data; the inner one has none and would reset the host prompt's choice (say, TAESD) to the server default. Inner executions use the host's choice; the host keeps it |
| RAM-cache release callback | `comfy.memory_management.set_ram_cache_release_state` (v0.33) | the inner executor sets it to none when it starts and ends: a host running `--cache-ram` would lose its RAM-pressure eviction for the rest of its prompt |
| progress registry | `comfy_execution.progress.global_progress_registry` | an execution replaces it (resetting the previous registry's handlers); the host goes on reporting its nodes into its own. Detached before, so the host's handlers are not reset; restored after |
| progress-bar hook | `comfy.utils.PROGRESS_BAR_HOOK` | the server's hook would send inner progress and previews under the inner prompt's id and node ids (which collide with the host's) and put previews into the inner registry, where no client sees them. Inside, they go to the client that queued the host prompt, as the host node's (`report_host_progress`) |
| client id, last node id, last prompt id | `server.PromptServer.instance` | the inner executor talks to a stub server, but nodes reach for `PromptServer.instance`; restored so no inner node can redirect the host's messages |
| progress text | `PromptServer.instance.send_progress_text` | nodes send it under their own (inner) node id to every client; inside, it goes to the host's client as the host node's (nowhere when the host prompt has no client) |
| external cache providers | `comfy_execution.cache_provider` (v0.33) | they would be told of inner prompts starting and ending inside the host's, and would serve the inner executor, whose caches are its own; hidden inside |
| models the host prompt is using | `dynamic_pins[device]["current_prompt"]` of loaded dynamic models (v0.33) | the inner executor's model tracker clears the flag of every model it used when it ends, the host's too: they would go first in pin eviction while the host still needs them |
| current execution context | `comfy_execution.utils.current_executing_context` | a ContextVar, so per thread: the inner executor runs in its own `asyncio.run` on the engine's thread and never sees the host's. Restored on the calling thread all the same |

Shared on purpose, not saved: loaded models and the model manager (sharing them is the point), the
folders and their file lists (`folder_paths`), the node registry, torch and CUDA state.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterable, Iterator, List, NamedTuple, Optional

_lock = threading.Lock()
_inside = False                  # an inner execution is running (one at a time: the engine's slot)
_host_cancelled = False          # the UI's Cancel arrived before or during it
_original_interrupt: Any = None  # ComfyUI's own setter while ours is installed


class HostPrompt(NamedTuple):
    """Where the host prompt's messages go: its server, prompt, the node running it, the client that
    queued it and its progress registry."""
    server: Any
    prompt_id: Optional[str]
    node_id: Optional[str]
    client_id: Optional[str]
    registry: Any

    @staticmethod
    def capture(node_id: Optional[str] = None) -> "HostPrompt":
        server = _server()
        registry = None
        try:
            from comfy_execution import progress
            registry = progress.global_progress_registry
        except ImportError:  # ComfyUI without the progress registry
            pass
        return HostPrompt(server, getattr(server, "last_prompt_id", None),
                          node_id or getattr(server, "last_node_id", None), getattr(server, "client_id", None),
                          registry)


def _server() -> Any:
    try:
        import server
        return getattr(server.PromptServer, "instance", None)
    except Exception:  # no aiohttp: ComfyUI as a library without a server
        return None


def report_host_progress(host: HostPrompt, value: float, total: float, preview: Any = None) -> None:
    """Progress (and a preview image) shown on the host node, sent only to the client that queued the
    host prompt, the way ComfyUI's own progress hook sends a node's."""
    if host.server is None or host.client_id is None or host.node_id is None or not hasattr(host.server, "sockets"):
        return  # no live server, or a prompt queued without a client: nobody to show it to
    if host.registry is not None:
        # progress_state for the node, and the preview with metadata for clients that support it.
        host.registry.update_progress(host.node_id, value, total, preview)
    host.server.send_sync("progress", {"value": value, "max": total, "prompt_id": host.prompt_id,
                                       "node": host.node_id}, host.client_id)
    if preview is not None and not _supports_preview_metadata(host):
        from protocol import BinaryEventTypes
        host.server.send_sync(BinaryEventTypes.UNENCODED_PREVIEW_IMAGE, preview, host.client_id)


def _supports_preview_metadata(host: HostPrompt) -> bool:
    try:
        from comfy_api import feature_flags
        return bool(feature_flags.supports_feature(host.server.sockets_metadata, host.client_id,
                                                   "supports_preview_metadata"))
    except Exception:  # ComfyUI without feature flags: the legacy preview only
        return False


def interrupt_inner() -> None:
    """The engine's own interrupt (a timeout, a cancelled run): stops the running inner execution and
    never the host prompt. Between inner executions there is nothing to stop (the next one would clear
    the flag anyway), and setting it would cancel the host."""
    with _lock:
        if _inside:
            _original_interrupt(True)


def _latching_setter(original):
    def interrupt_current_processing(value=True):
        global _host_cancelled
        with _lock:
            if not _inside:  # a caller that looked us up before we were removed
                original(value)
            elif value:
                _host_cancelled = True
                original(True)
            elif not _host_cancelled:  # a pending Cancel is not the inner executor's to clear
                original(False)
    return interrupt_current_processing


def _host_models_in_use(values: Iterable[Any]) -> List[dict]:
    """Pin states of the dynamic models (loaded, or handed to the inner execution) marked as in use by
    the host's prompt."""
    import comfy.model_management as mm
    candidates = [loaded.model for loaded in list(getattr(mm, "current_loaded_models", []))]
    for value in values:
        candidates += [value, getattr(value, "patcher", None)]
    states = []
    for model in candidates:
        is_dynamic = getattr(model, "is_dynamic", None)
        if model is None or not callable(is_dynamic) or not is_dynamic():
            continue
        state = getattr(model.model, "dynamic_pins", {}).get(model.load_device)
        if state is not None and state.get("current_prompt") and not any(state is s for s in states):
            states.append(state)
    return states


@contextlib.contextmanager
def inner_execution(inputs: Iterable[Any] = ()) -> Iterator[HostPrompt]:
    """Runs the body (one inner execution, on the engine's thread) with the host's state saved,
    isolated as the module text lists, and restored. `inputs`: the values handed to the inner
    execution (models among them keep the host's in-use mark). Yields the host prompt's addresses."""
    global _inside, _host_cancelled, _original_interrupt
    import comfy.model_management as mm
    import comfy.utils
    import latent_preview
    from comfy.cli_args import args
    from comfy_execution import utils as execution_utils
    try:
        from comfy_execution import progress
    except ImportError:
        progress = None
    try:
        import comfy.memory_management as memory_management
        ram_release = (memory_management.extra_ram_release_callback, memory_management.RAM_CACHE_HEADROOM)
    except (ImportError, AttributeError):  # older ComfyUI: no RAM-pressure cache
        memory_management, ram_release = None, None
    try:
        from comfy_execution import cache_provider
    except ImportError:
        cache_provider = None

    host = HostPrompt.capture()
    server = host.server
    server_ids = {name: getattr(server, name) for name in ("client_id", "last_node_id", "last_prompt_id")
                  if server is not None and hasattr(server, name)}
    preview_method, default_preview_method = args.preview_method, latent_preview.default_preview_method
    hook = comfy.utils.PROGRESS_BAR_HOOK
    context = execution_utils.current_executing_context.get(None)
    models_in_use = _host_models_in_use(inputs)

    def forward_progress(value, total, preview_image, prompt_id=None, node_id=None):
        mm.throw_exception_if_processing_interrupted()  # as ComfyUI's hook does: progress is a cancel point
        report_host_progress(host, value, total, preview_image)

    with _lock:
        _host_cancelled = mm.processing_interrupted()  # set now: the host's Cancel, pressed in between
        _original_interrupt = mm.interrupt_current_processing
        mm.interrupt_current_processing = _latching_setter(_original_interrupt)
        _inside = True
    latent_preview.default_preview_method = preview_method
    comfy.utils.set_progress_bar_global_hook(forward_progress)
    if progress is not None:
        progress.global_progress_registry = None
    text_redirected = server is not None and hasattr(server, "send_progress_text") and \
        "send_progress_text" not in vars(server)
    if text_redirected:
        send_text = server.send_progress_text

        def send_progress_text(text, node_id, sid=None):
            if host.client_id is not None and host.node_id is not None:
                send_text(text, host.node_id, host.client_id)
        server.send_progress_text = send_progress_text
    if cache_provider is not None:
        with cache_provider._providers_lock:
            cache_provider._providers_snapshot = ()
    try:
        yield host
    finally:
        if cache_provider is not None:
            with cache_provider._providers_lock:
                cache_provider._providers_snapshot = tuple(cache_provider._providers)
        if text_redirected:
            del server.send_progress_text
        for name, value in server_ids.items():
            setattr(server, name, value)
        if progress is not None:
            progress.global_progress_registry = host.registry
        comfy.utils.set_progress_bar_global_hook(hook)
        args.preview_method, latent_preview.default_preview_method = preview_method, default_preview_method
        if memory_management is not None:
            memory_management.set_ram_cache_release_state(*ram_release)
        for state in models_in_use:
            state["current_prompt"] = True
        if execution_utils.current_executing_context.get(None) is not context:
            execution_utils.current_executing_context.set(context)
        with _lock:
            mm.interrupt_current_processing = _original_interrupt
            _original_interrupt(_host_cancelled)
            _inside = False
