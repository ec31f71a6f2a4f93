"""A slot's validated prompt, its nodes' outputs, and one steady-state iteration of it (steady_state.py
says what the path does and why)."""

from __future__ import annotations

from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from .steady_nodes import IsChangedSpec, NodeSpec, Unsupported, comfy, send_cached_ui

_MISSING = object()
_ORDER_MEMO_LIMIT = 64


def _cache_get_local(cache, node_id):
    """A cache entry without side effects (providers, LRU marks): `get_local` where ComfyUI has it,
    the synchronous `get` of older versions."""
    get_local = getattr(cache, "get_local", None)
    return get_local(node_id) if get_local is not None else cache.get(node_id)


def _cache_set_local(cache, node_id, value):
    set_local = getattr(cache, "set_local", None)
    if set_local is not None:
        set_local(node_id, value)
    else:
        cache.set(node_id, value)


def empty_caches(caches) -> None:
    """Empties an executor's ComfyUI caches (a CacheSet: outputs and node objects, with their
    subcaches). Dropping them is not enough: each cache's key set holds an IsChangedCache that holds
    the cache, a reference cycle, so a cache let go of keeps every output it holds (a model of
    gigabytes) until Python's cycle collector happens to run."""
    pending = list(getattr(caches, "all", None) or [])
    while pending:
        cache = pending.pop()
        subcaches = getattr(cache, "subcaches", None)
        if isinstance(subcaches, dict):
            pending.extend(subcaches.values())
            subcaches.clear()
        entries = getattr(cache, "cache", None)
        if isinstance(entries, dict):
            entries.clear()


_providers_check: Optional[Callable[[], bool]] = None


def has_cache_providers() -> bool:
    global _providers_check
    if _providers_check is None:
        try:
            from comfy_execution.cache_provider import _has_cache_providers as check
        except ImportError:  # ComfyUI without external cache providers
            def check():
                return False
        _providers_check = check
    return bool(_providers_check())


def _defines_is_changed(class_def) -> bool:
    """The same test as ComfyUI's IsChangedCache."""
    c = comfy()
    if issubclass(class_def, c.ComfyNodeInternal) and c.first_real_override(class_def, "fingerprint_inputs") is not None:
        return True
    return hasattr(class_def, "IS_CHANGED")


def _has_lazy_status(class_def) -> bool:
    c = comfy()
    if issubclass(class_def, c.ComfyNodeInternal):
        return c.first_real_override(class_def, "check_lazy_status") is not None
    return getattr(class_def, "check_lazy_status", None) is not None


_SCALARS = (int, float, str, bool, type(None))


def _same_is_changed(new, old) -> bool:
    """Whether ComfyUI's cache key would still match: it holds `to_hashable(is_changed)`. For lists of
    plain scalars (the usual result: one value per call) list equality is the same comparison
    (element by element, identity first, so NaN never matches a new NaN), without the frozensets."""
    if old is _MISSING:
        return False
    if type(new) is list and type(old) is list and all(type(x) in _SCALARS for x in new) \
            and all(type(x) in _SCALARS for x in old):
        return new == old
    to_hashable = comfy().to_hashable
    return to_hashable(new) == to_hashable(old)


class _ModelLinks:
    """ExecutionList's model tracking (ComfyUI v0.33): the tracker sees every value that flows
    through a link into a node of the execution list."""

    def __init__(self, plan: "Plan", tracker_add: Optional[Callable[[Any], None]], in_order: FrozenSet[str]):
        self.plan = plan
        self.tracker_add = tracker_add
        self.in_order = in_order

    def cache_update(self, node_id, value):
        if self.tracker_add is None:
            return
        for to_node_id, socket in self.plan.consumers.get(node_id, ()):
            if to_node_id in self.in_order and socket < len(value.outputs):
                self.tracker_add(value.outputs[socket])


class _Presence:
    """An output cache for ExecutionList that only knows which nodes hold a value."""

    def __init__(self, cached: FrozenSet[str]):
        self.cached = cached

    def get_local(self, node_id):
        return True if node_id in self.cached else None

    get = get_local

    def set_local(self, node_id, value):
        pass

    set = set_local


_handler_class = None


def _progress_handler(server):
    """ComfyUI's WebUIProgressHandler for the executor's server stub, minus the messages nobody
    reads: the engine forwards the nodes a progress_state shows running with more than one step, and
    a node's start or finish shows none unless such a node is running (then it is sent as ComfyUI
    sends it). Every progress update within a node is sent, as ComfyUI sends it."""
    global _handler_class
    if _handler_class is None:
        from comfy_execution.progress import NodeState, WebUIProgressHandler

        class EngineProgressHandler(WebUIProgressHandler):
            stepped = False  # a node reported steps in this execution (the handler is per execution)

            def update_handler(self, node_id, value, max_value, state, prompt_id, image=None):
                self.stepped = True
                super().update_handler(node_id, value, max_value, state, prompt_id, image)

            def _stepping(self):
                return self.stepped and any(s["state"] == NodeState.Running and s["max"] > 1
                                            for s in self.registry.nodes.values())

            def start_handler(self, node_id, state, prompt_id):
                if self.registry and self._stepping():
                    self._send_progress_state(prompt_id, self.registry.nodes)

            def finish_handler(self, node_id, state, prompt_id):
                if self.registry and self._stepping():
                    self._send_progress_state(prompt_id, self.registry.nodes)
        _handler_class = EngineProgressHandler
    return _handler_class(server)


class Plan:
    """One validated prompt of one slot, its nodes' outputs and what it takes to run it again."""

    def __init__(self, prompt: dict, outputs: List[str]):
        import nodes
        c = comfy()
        self.prompt = prompt
        self.outputs = list(outputs)
        self.dynprompt = c.execution.DynamicPrompt(prompt)
        self.classes = {node_id: nodes.NODE_CLASS_MAPPINGS[node["class_type"]] for node_id, node in prompt.items()}
        self._class_pairs = [(node["class_type"], self.classes[node_id]) for node_id, node in prompt.items()]
        self.store: Dict[str, Any] = {}     # node id -> CacheEntry, as ComfyUI's output cache holds it
        self.objects: Dict[str, Any] = {}   # node id -> node instance, as ComfyUI's object cache
        self.links: Dict[str, List[Tuple[str, int]]] = {}      # node -> its inputs' (source, socket)
        self.consumers: Dict[str, List[Tuple[str, int]]] = {}  # node -> (consumer, socket)
        for node_id, node in prompt.items():
            links = [(value[0], value[1]) for value in node["inputs"].values() if c.is_link(value)]
            self.links[node_id] = links
            for source, socket in links:
                self.consumers.setdefault(source, []).append((node_id, socket))
        self.needed = self._ancestry(self.outputs)
        # A node's cache key holds its own and every ancestor's IS_CHANGED: a new value there
        # invalidates the node and everything downstream of it.
        self.is_changed = [IsChangedSpec(self.classes[node_id], node_id, prompt[node_id]["inputs"])
                           for node_id in self._is_changed_order()]
        self.downstream = {spec.node_id: self._descendants(spec.node_id) for spec in self.is_changed}
        self.intermediate_outputs = self._intermediate_outputs()
        self._orders: Dict[FrozenSet[str], List[str]] = {}
        self._specs: Optional[Dict[str, NodeSpec]] = None
        self._specs_extra: Optional[dict] = None

    def _ancestry(self, roots: Iterable[str]) -> Set[str]:
        seen: Set[str] = set()
        stack = list(roots)
        while stack:
            node_id = stack.pop()
            if node_id in seen or node_id not in self.prompt:
                continue
            seen.add(node_id)
            stack.extend(source for source, _ in self.links[node_id])
        return seen

    def _descendants(self, node_id: str) -> FrozenSet[str]:
        seen = {node_id}
        stack = [node_id]
        while stack:
            for consumer, _ in self.consumers.get(stack.pop(), ()):
                if consumer not in seen:
                    seen.add(consumer)
                    stack.append(consumer)
        return frozenset(seen)

    def _is_changed_order(self) -> List[str]:
        """The nodes that define IS_CHANGED / fingerprint_inputs, in the order ComfyUI's cache keys
        first ask them: each prompt node, then its ancestry by sorted input name."""
        order: List[str] = []
        seen: Set[str] = set()

        def visit(node_id):
            if node_id not in seen and node_id in self.prompt:
                seen.add(node_id)
                if _defines_is_changed(self.classes[node_id]):
                    order.append(node_id)

        for node_id in self.prompt:
            visit(node_id)
            ancestors: List[str] = []
            self._ordered_ancestry(node_id, ancestors, set())
            for ancestor in ancestors:
                visit(ancestor)
        return order

    def _ordered_ancestry(self, node_id, ancestors: List[str], mapped: Set[str]):
        if node_id not in self.prompt:
            return
        inputs = self.prompt[node_id]["inputs"]
        for key in sorted(inputs):
            if comfy().is_link(inputs[key]) and inputs[key][0] not in mapped:
                ancestors.append(inputs[key][0])
                mapped.add(inputs[key][0])
                self._ordered_ancestry(inputs[key][0], ancestors, mapped)

    def _intermediate_outputs(self) -> List[str]:
        execution = comfy().execution
        if not hasattr(execution, "_is_intermediate_output"):
            return []
        return [node_id for node_id in self.dynprompt.all_node_ids()
                if execution._is_intermediate_output(self.dynprompt, node_id)]

    def unsupported_reason(self) -> Optional[str]:
        """Why this workflow must stay on the full round, or None."""
        from comfy_execution.graph import get_input_info
        for node_id in sorted(self.needed):
            class_def = self.classes[node_id]
            class_type = self.prompt[node_id]["class_type"]
            if _has_lazy_status(class_def):
                return f"node {node_id} ({class_type}) has lazy inputs (check_lazy_status)"
            for name, value in self.prompt[node_id]["inputs"].items():
                if comfy().is_link(value):
                    _, _, info = get_input_info(class_def, name)
                    if info is not None and info.get("lazy"):
                        return f"node {node_id} ({class_type}) has a lazy input '{name}'"
        return None

    def classes_current(self) -> bool:
        """Whether the registry still maps every class type to the class the plan was made with (it
        can change without load_nodes: anything may assign to NODE_CLASS_MAPPINGS)."""
        import nodes
        get = nodes.NODE_CLASS_MAPPINGS.get
        for class_type, cls in self._class_pairs:
            if get(class_type) is not cls:
                return False
        return True

    # ------------------------------------------------------------------ taking over and handing back
    def adopt(self, executor) -> None:
        """Takes the outputs and node objects of the executor's last full round of this prompt, and
        empties the executor's caches (kept, their old entries would hold a stale copy of every
        output that changes)."""
        caches = executor.caches
        for node_id in self.prompt:
            entry = _cache_get_local(caches.outputs, node_id)
            if entry is not None:
                self.store[node_id] = entry
            obj = _cache_get_local(caches.objects, node_id)
            if obj is not None:
                self.objects[node_id] = obj
        executor.caches = comfy().execution.CacheSet(cache_type=executor.cache_type, cache_args=executor.cache_args)
        empty_caches(caches)  # the store holds the entries it took

    async def write_back(self, executor) -> None:
        """Puts the plan's outputs into the executor's caches under the keys of the last iteration's
        IS_CHANGED values (kept in the prompt, as ComfyUI keeps them there), as a full round would
        have left them."""
        execution = comfy().execution
        dynprompt = execution.DynamicPrompt(self.prompt)
        is_changed = execution.IsChangedCache("discomfort-write-back", dynprompt, executor.caches.outputs)
        for cache in executor.caches.all:
            await cache.set_prompt(dynprompt, self.prompt.keys(), is_changed)
            cache.clean_unused()
        for node_id, entry in self.store.items():
            _cache_set_local(executor.caches.outputs, node_id, entry)
        for node_id, obj in self.objects.items():
            _cache_set_local(executor.caches.objects, node_id, obj)
        self.store, self.objects = {}, {}

    # ------------------------------------------------------------------ one iteration
    def _invalidate(self, fresh: List[Tuple[str, Any]]) -> None:
        """Drops the outputs whose cache key the new IS_CHANGED values change. The prompt keeps
        the values the outputs were computed with until then, so an exception in between leaves
        outputs and values consistent."""
        dirty: Set[str] = set()
        prompt = self.prompt
        for node_id, value in fresh:
            if not _same_is_changed(value, prompt[node_id].get("is_changed", _MISSING)):
                dirty |= self.downstream[node_id]
        for node_id, value in fresh:
            prompt[node_id]["is_changed"] = value  # where ComfyUI leaves it (nodes see it in PROMPT)
        for node_id in dirty:
            self.store.pop(node_id, None)

    def order(self) -> List[str]:
        """The nodes ComfyUI's ExecutionList would stage, in its order, given which hold a value."""
        cached = frozenset(node_id for node_id in self.needed if node_id in self.store)
        order = self._orders.get(cached)
        if order is None:
            execution_list = comfy().execution.ExecutionList(self.dynprompt, _Presence(cached))
            for node_id in self.outputs:
                execution_list.add_node(node_id)
            order = []
            while not execution_list.is_empty():
                ready = execution_list.get_ready_nodes()
                if not ready:
                    raise Unsupported("the execution list has a dependency cycle")
                execution_list.staged_node_id = execution_list.ux_friendly_pick_node(ready)
                order.append(execution_list.staged_node_id)
                execution_list.complete_node_execution()
            if len(self._orders) >= _ORDER_MEMO_LIMIT:
                self._orders.clear()
            self._orders[cached] = order
        return order

    async def iterate(self, executor, prompt_id: str, extra_data: dict) -> None:
        """One iteration, shaped as PromptExecutor.execute_async (the same calls at the same points)
        with the cache keys and the execution list replaced by the plan."""
        import torch
        c = comfy()
        execution, mm = c.execution, c.mm
        execution.set_preview_method(extra_data.get("preview_method"))
        execution.nodes.interrupt_processing(False)
        tracker = getattr(executor, "prompt_model_tracker", None)
        if tracker is not None:
            tracker.start()
        server = executor.server
        server.client_id = extra_data["client_id"] if "client_id" in extra_data else None
        executor.status_messages = []
        executor.add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)
        notify = getattr(executor, "_notify_prompt_lifecycle", None)
        if notify is not None:
            notify("start", prompt_id)
        ram_state = getattr(getattr(execution.comfy, "memory_management", None), "set_ram_cache_release_state", None)
        if ram_state is not None:
            ram_state(None, int(executor.cache_args["ram"] * (1024 ** 3)))  # the classic cache: no callback
        try:
            with torch.inference_mode():
                execution.reset_progress_state(prompt_id, self.dynprompt)
                execution.add_progress_handler(_progress_handler(server))
                self._invalidate([(spec.node_id, await spec.evaluate(prompt_id)) for spec in self.is_changed])
                cached_nodes = [node_id for node_id in self.prompt if node_id in self.store]
                mm.cleanup_models_gc()
                executor.add_message("execution_cached", {"nodes": cached_nodes, "prompt_id": prompt_id}, broadcast=False)
                await self._run_nodes(executor, prompt_id, extra_data, tracker)
                server.last_node_id = None
                if mm.DISABLE_SMART_MEMORY:
                    mm.unload_all_models()
        finally:
            if ram_state is not None:
                ram_state(None, 0)
            if tracker is not None:
                tracker.end()
            if notify is not None:
                notify("end", prompt_id)

    def _specs_for(self, extra_data: dict) -> Dict[str, NodeSpec]:
        if self._specs is None or extra_data != self._specs_extra:
            self._specs = {node_id: NodeSpec(self, node_id, extra_data) for node_id in self.needed}
            self._specs_extra = dict(extra_data)
        return self._specs

    async def _run_nodes(self, executor, prompt_id, extra_data, tracker) -> None:
        c = comfy()
        specs = self._specs_for(extra_data)
        order = self.order()
        tracker_add = tracker.add if tracker is not None else None
        links = _ModelLinks(self, tracker_add, frozenset(order))
        if tracker_add is not None:
            # ExecutionList.cache_link: a link from a node that already holds a value is tracked
            # when its consumer joins the list, before anything runs.
            for node_id in order:
                for source, socket in self.links[node_id]:
                    entry = self.store.get(source)
                    if entry is not None and socket < len(entry.outputs):
                        tracker_add(entry.outputs[socket])
        server = executor.server
        ui_node_outputs: Dict[str, Any] = {}
        executed: Set[str] = set()
        failure = None
        for node_id in order:
            result, error, ex = await specs[node_id].run(self, server, prompt_id, executed, ui_node_outputs, links)
            executor.success = result != c.FAILURE
            if result == c.FAILURE:
                failure = (error, ex)
                break
        if failure is not None:
            executor.handle_execution_error(prompt_id, self.dynprompt.original_prompt, set(self.prompt), executed, *failure)
        else:
            for node_id in self.intermediate_outputs:
                cached = self.store.get(node_id)
                if node_id not in executed and cached is not None:
                    send_cached_ui(server, node_id, self.dynprompt.get_display_node_id(node_id), cached, prompt_id,
                                   ui_node_outputs)
            executor.add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)
        executor.history_result = {
            "outputs": {node_id: info["output"] for node_id, info in ui_node_outputs.items()},
            "meta": {node_id: info["meta"] for node_id, info in ui_node_outputs.items()},
        }
