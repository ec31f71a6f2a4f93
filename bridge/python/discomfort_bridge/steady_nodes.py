"""One node of a steady-state iteration, run the way ComfyUI's `execution.execute` runs it.

The same steps in the same order: progress start, the node's input data, the `executing` message,
its object from the object cache (created once), ComfyUI's `get_output_data` (list mapping,
ExecutionBlockers, interrupt checks, subgraph prefixes, the current-node context, asynchronous nodes),
memory clean-up after the node, UI output and `executed` message, the cache entry, progress finish;
failures formatted as ComfyUI formats them. What is computed once per plan instead of per call:

- the node's input data apart from its links (`get_input_data` with no execution list: constants,
  hidden inputs and V3 data depend only on the prompt, the node class and the plan's DynamicPrompt);
  each call fills in the links from the upstream outputs, with ComfyUI's rules for missing ones;
- for V3 nodes, the locked class clone ComfyUI makes per call (`PREPARE_CLASS_CLONE` +
  `make_locked_method_func`, about 0.1 ms each): made once per node and plan with the same hidden
  inputs. The clone exists so a node cannot modify its class; a locked class reused is as locked.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import traceback
import types
from typing import Any, Dict, List, Optional, Tuple


class Unsupported(Exception):
    """The fast path cannot reproduce ComfyUI's full round for this workflow."""


_modules: Optional[types.SimpleNamespace] = None


def comfy() -> types.SimpleNamespace:
    """The ComfyUI modules and names the fast path calls, looked up once (an import statement per
    node per iteration adds up)."""
    global _modules
    if _modules is None:
        import comfy.model_management as mm
        import execution
        from comfy_api.internal import _ComfyNodeInternal, first_real_override
        from comfy_execution import progress
        from comfy_execution.caching import to_hashable
        from comfy_execution.graph_utils import ExecutionBlocker, GraphBuilder, is_link
        _modules = types.SimpleNamespace(
            mm=mm, execution=execution, progress=progress, to_hashable=to_hashable, is_link=is_link,
            ExecutionBlocker=ExecutionBlocker, GraphBuilder=GraphBuilder, ComfyNodeInternal=_ComfyNodeInternal,
            first_real_override=first_real_override, SUCCESS=execution.ExecutionResult.SUCCESS,
            FAILURE=execution.ExecutionResult.FAILURE, CacheEntry=execution.CacheEntry)
    return _modules


class _V3Callee:
    """A V3 node class as `_async_map_node_over_list` calls an object (its V1 branch: `getattr(obj,
    function)`), holding ComfyUI's per-call class clone made once. Other attributes (RETURN_TYPES,
    OUTPUT_IS_LIST, INPUT_IS_LIST, ...) are the class's."""

    def __init__(self, class_def, v3_data, function=None):
        from comfy_api.internal import make_locked_method_func
        from comfy_api.latest import _io
        self._class_def = class_def
        function = function or class_def.FUNCTION
        class_def.VALIDATE_CLASS()
        method = make_locked_method_func(class_def, function, class_def.PREPARE_CLASS_CLONE(v3_data))
        build = _io.build_nested_inputs

        if inspect.iscoroutinefunction(method):
            async def call(**inputs):
                return await method(**build(inputs, v3_data))
        else:
            def call(**inputs):
                return method(**build(inputs, v3_data))
        if function == class_def.FUNCTION:
            self.FUNCTION = function
        setattr(self, function, call)
        # What the call machinery reads of the class, fixed by its schema: plain attributes here
        # rather than a __getattr__ and a classproperty per read.
        for name in ("INPUT_IS_LIST", "OUTPUT_IS_LIST", "RETURN_TYPES"):
            if hasattr(class_def, name):
                setattr(self, name, getattr(class_def, name))

    def __getattr__(self, name):
        return getattr(self._class_def, name)


def _after_node_memory() -> None:
    """What execute() does after every node where ComfyUI has it (dynamic VRAM: cast buffers,
    prefetch queues, watermarks)."""
    execution = comfy().execution
    memory_management = getattr(execution.comfy, "memory_management", None)
    if memory_management is None or not getattr(memory_management, "aimdo_enabled", False):
        return
    if execution.get_console_log_level(execution.args.verbose) == "DEBUG":
        execution.comfy_aimdo.control.analyze()
    execution.comfy.model_management.reset_cast_buffers()
    execution.comfy.model_prefetch.cleanup_prefetch_queues()
    execution.comfy_aimdo.model_vbar.vbars_reset_watermark_limits()


def send_cached_ui(server, node_id, display_node_id, cached, prompt_id, ui_outputs) -> None:
    send = getattr(comfy().execution, "_send_cached_ui", None)
    if send is not None:
        send(server, node_id, display_node_id, cached, prompt_id, ui_outputs)
        return
    if server.client_id is not None:  # ComfyUI without _send_cached_ui (v0.8)
        cached_ui = cached.ui or {}
        server.send_sync("executed", {"node": node_id, "display_node": display_node_id,
                                      "output": cached_ui.get("output", None), "prompt_id": prompt_id},
                         server.client_id)
        if cached.ui is not None:
            ui_outputs[node_id] = cached.ui


def _fresh(values: Dict[str, Any]) -> Dict[str, Any]:
    """Input data as get_input_data builds it per call: new lists (tuples are its missing marks)."""
    return {name: value if isinstance(value, tuple) else list(value) for name, value in values.items()}


class IsChangedSpec:
    """A node's IS_CHANGED / fingerprint_inputs call as ComfyUI's IsChangedCache makes it
    (constants only, no prompt or execution list), its input data built once."""

    def __init__(self, class_def, node_id: str, inputs: dict):
        c = comfy()
        self.node_id = node_id
        v3 = issubclass(class_def, c.ComfyNodeInternal)
        if v3 and c.first_real_override(class_def, "fingerprint_inputs") is not None:
            self.function = "fingerprint_inputs"
        else:
            self.function = "IS_CHANGED"
        self.input_data, _, self.v3_data = c.execution.get_input_data(inputs, class_def, node_id, None)
        self.callee = _V3Callee(class_def, self.v3_data, self.function) if v3 else class_def
        # Discomfort's own context loader (one per INPUT port): its IS_CHANGED is the context
        # version, a dict lookup; called directly, as the mapping over its one constant would.
        from .nodes import DiscomfortContextLoader
        self.loader_uid = None
        if class_def is DiscomfortContextLoader and list(self.input_data) == ["unique_id"] \
                and len(self.input_data["unique_id"]) == 1:
            self.loader_uid = self.input_data["unique_id"][0]

    async def evaluate(self, prompt_id: str):
        c = comfy()
        try:
            if self.loader_uid is not None:
                return [self.callee.IS_CHANGED(unique_id=self.loader_uid)]
            results = await c.execution._async_map_node_over_list(
                prompt_id, self.node_id, self.callee, _fresh(self.input_data), self.function, v3_data=self.v3_data)
            results = await c.execution.resolve_map_node_over_list_results(results)
            return [None if isinstance(x, c.ExecutionBlocker) else x for x in results]
        except Exception as e:
            logging.warning("WARNING: {}".format(e))
            return float("NaN")


class NodeSpec:
    """What a node's execution needs that stays the same from one iteration to the next."""

    def __init__(self, plan, node_id: str, extra_data: dict):
        c = comfy()
        node = plan.prompt[node_id]
        dynprompt = plan.dynprompt
        self.node_id = node_id
        self.class_type = node["class_type"]
        self.class_def = plan.classes[node_id]
        self.real_node_id = dynprompt.get_real_node_id(node_id)
        self.display_node_id = dynprompt.get_display_node_id(node_id)
        self.parent_node_id = dynprompt.get_parent_node_id(node_id)
        # Without an execution list, get_input_data marks every linked input missing: those are
        # the links; all else (constants, hidden inputs) is final.
        template, links, v3_data = c.execution.get_input_data(node["inputs"], self.class_def, node_id, None,
                                                              dynprompt, extra_data)
        self.entries: List[Tuple[str, Any, Optional[str], int]] = []
        for name, value in template.items():
            if name in links:
                self.entries.append((name, None, node["inputs"][name][0], node["inputs"][name][1]))
            else:
                self.entries.append((name, value, None, 0))
        self.v3_data = v3_data
        self._v3 = _V3Callee(self.class_def, v3_data) if issubclass(self.class_def, c.ComfyNodeInternal) else None

    def input_data(self, store: Dict[str, Any]) -> Dict[str, Any]:
        """get_input_data's result for this call: links resolved from the upstream cache entries."""
        data: Dict[str, Any] = {}
        for name, constant, source, socket in self.entries:
            if source is None:
                data[name] = list(constant)  # a fresh list per call, as ComfyUI builds it
                continue
            cached = store.get(source)
            if cached is None or cached.outputs is None or socket >= len(cached.outputs):
                data[name] = (None,)
            else:
                data[name] = cached.outputs[socket]
        return data

    async def run(self, plan, server, prompt_id: str, executed: set, ui_outputs: dict, links) -> tuple:
        """execution.execute for this node: (ExecutionResult, error details, exception)."""
        c = comfy()
        node_id = self.node_id
        progress = c.progress.get_progress_state()
        cached = plan.store.get(node_id)
        if cached is not None:
            send_cached_ui(server, node_id, self.display_node_id, cached, prompt_id, ui_outputs)
            progress.finish_progress(node_id)
            links.cache_update(node_id, cached)
            return c.SUCCESS, None, None

        input_data_all = None
        try:
            progress.start_progress(node_id)
            input_data_all = self.input_data(plan.store)
            if server.client_id is not None:
                server.last_node_id = self.display_node_id
                server.send_sync("executing", {"node": node_id, "display_node": self.display_node_id,
                                               "prompt_id": prompt_id}, server.client_id)
            obj = plan.objects.get(node_id)
            if obj is None:
                obj = self.class_def()
                plan.objects[node_id] = obj
            if self._v3 is None and getattr(obj, "check_lazy_status", None) is not None:
                raise Unsupported(f"node {node_id} ({self.class_type}) has lazy inputs (check_lazy_status)")
            class_type = self.class_type

            def execution_block_cb(block):
                if block.message is not None:
                    mes = {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": class_type,
                        "executed": list(executed),
                        "exception_message": f"Execution Blocked: {block.message}",
                        "exception_type": "ExecutionBlocked",
                        "traceback": [],
                        "current_inputs": [],
                        "current_outputs": [],
                    }
                    server.send_sync("execution_error", mes, server.client_id)
                    return c.ExecutionBlocker(None)
                return block

            def pre_execute_cb(call_index):
                c.GraphBuilder.set_default_prefix(node_id, call_index, 0)

            try:
                output_data, output_ui, has_subgraph, has_pending = await c.execution.get_output_data(
                    prompt_id, node_id, self._v3 if self._v3 is not None else obj, input_data_all,
                    execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, v3_data=self.v3_data)
            finally:
                _after_node_memory()
            if has_pending:
                # ComfyUI stages other nodes meanwhile and comes back to collect; here the tasks are
                # awaited in place. A failed task fails the node, reported without its inputs.
                input_data_all = None
                await asyncio.gather(*[x for x in output_data if isinstance(x, asyncio.Task)], return_exceptions=True)
                results = [r.result() if isinstance(r, asyncio.Task) else r for r in output_data]
                output_data, output_ui, has_subgraph = c.execution.get_output_from_returns(results, self.class_def)
            if has_subgraph:
                raise Unsupported(f"node {node_id} ({self.class_type}) expanded into a subgraph")
            if len(output_ui) > 0:
                enrich = getattr(c.execution, "enrich_output_with_assets", None)
                if enrich is not None:
                    output_ui = enrich(output_ui)
                ui_outputs[node_id] = {
                    "meta": {"node_id": node_id, "display_node": self.display_node_id,
                             "parent_node": self.parent_node_id, "real_node_id": self.real_node_id},
                    "output": output_ui,
                }
                if server.client_id is not None:
                    server.send_sync("executed", {"node": node_id, "display_node": self.display_node_id,
                                                  "output": output_ui, "prompt_id": prompt_id}, server.client_id)
            entry = c.CacheEntry(ui=ui_outputs.get(node_id), outputs=output_data)
            links.cache_update(node_id, entry)
            plan.store[node_id] = entry
        except Unsupported:
            raise
        except c.mm.InterruptProcessingException as iex:
            logging.info("Processing interrupted")
            return c.FAILURE, {"node_id": self.real_node_id}, iex
        except Exception as ex:
            return c.FAILURE, self._error_details(ex, input_data_all), ex

        progress.finish_progress(node_id)
        executed.add(node_id)
        return c.SUCCESS, None, None

    def _error_details(self, ex: Exception, input_data_all) -> dict:
        """execute()'s failure report, OOM handling included."""
        c = comfy()
        mm = c.mm
        typ, _, tb = sys.exc_info()
        input_data_formatted = {}
        if input_data_all is not None:
            for name, inputs in input_data_all.items():
                input_data_formatted[name] = [c.execution.format_value(x) for x in inputs]
        logging.error(f"!!! Exception during processing !!! {ex}")
        logging.error(traceback.format_exc())
        tips = ""
        is_oom = getattr(mm, "is_oom", None)
        oom = is_oom(ex) if is_oom is not None else isinstance(ex, mm.OOM_EXCEPTION)
        if oom:
            tips = ("This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked before you "
                    "might have accidentally set the batch_size to a large number.")
            logging.info("Memory summary:\n{}".format(mm.debug_memory_summary()))
            logging.error("Got an OOM, unloading all loaded models.")
            mm.unload_all_models()
        elif is_oom is not None and isinstance(ex, RuntimeError) and "mat1 and mat2 shapes" in str(ex) \
                and "Sampler" in self.class_type:
            tips = ("\n\nTIPS: If you have any \"Load CLIP\" or \"*CLIP Loader\" nodes in your workflow connected to "
                    "this sampler node make sure the correct file(s) and type is selected.")
        return {
            "node_id": self.real_node_id,
            "exception_message": "{}\n{}".format(ex, tips),
            "exception_type": c.execution.full_type_name(typ),
            "traceback": traceback.format_tb(tb),
            "current_inputs": input_data_formatted,
        }
