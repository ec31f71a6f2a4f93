"""What ComfyUI's models hold, and how they leave RAM and come back under the context's RAM budget.

Called from C++ (bridge/value_convert.cc, the context's host-object handle) with the GIL held; the
budget's decisions are made in storage/context_models.cc. A "model" is a ModelPatcher, a CLIP or a
VAE: each wraps one torch module (the weights), which clones share.

- measure(): the bytes of the weights (parameters, buffers, and the originals a loaded LoRA set
  aside) by device, counted once per storage; and of the pending patches (LoRA weights) apart,
  since they stay where they are.
- tensors_to_spill() / replace_tensors(): the weights leave RAM by being written once and swapped
  in place, `tensor.data = file_backed`, for tensors of the same shape and dtype mapping the file.
  First the model is unloaded from ComfyUI's model management (its patches come off the weights,
  as ComfyUI itself does before moving a model), so what is written is the base weights, and the
  next sampler loads it again the ordinary way.
- release_for_drop(): before the context drops a model in favour of its recipe, the references a
  rebuild replaces anyway are let go (the caches of the executor slots whose outputs hold it: the
  workflow that made it, those that read it, the recipe slot), then whatever else still holds the
  object is reported.
"""

from __future__ import annotations

import gc
import sys
import types
from typing import Any, Dict, List, Optional, Tuple

# engine/recipes.h kRecipeSlot: the executor slot recipes run in.
RECIPE_SLOT = "discomfort:recipes"
# How long a spill waits for a running execution to finish before the model stays in RAM.
EXECUTION_WAIT_SECONDS = 60.0


def _weights(obj: Any) -> List[Tuple[Any, Any]]:
    """(module, patcher) of each block of weights `obj` holds; [] when it is not a model."""
    mp = sys.modules.get("comfy.model_patcher")
    sd = sys.modules.get("comfy.sd")
    if mp is None:
        return []
    if isinstance(obj, mp.ModelPatcher):
        return [(obj.model, obj)]
    if sd is not None and isinstance(obj, (sd.CLIP, sd.VAE)):
        module = getattr(obj, "cond_stage_model", None) if isinstance(obj, sd.CLIP) else getattr(obj, "first_stage_model", None)
        patcher = getattr(obj, "patcher", None)
        if module is not None:
            return [(module, patcher)]
    return []


def is_model(obj: Any) -> bool:
    try:
        return bool(_weights(obj))
    except Exception:  # an object whose attributes misbehave is simply not a model
        return False


def _storage_key(t) -> Tuple[str, int]:
    try:
        return str(t.device), t.untyped_storage().data_ptr()
    except Exception:  # tensor subclasses without a plain storage
        return str(t.device), id(t)


def _storage_bytes(t) -> int:
    try:
        return t.untyped_storage().nbytes()
    except Exception:
        return t.numel() * t.element_size()


def _tensors_in(value, out: list, depth: int = 0) -> None:
    """Tensors inside a patch entry (tuples, lists, dicts, adapters' `weights`)."""
    import torch
    if depth > 6:
        return
    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _tensors_in(item, out, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _tensors_in(item, out, depth + 1)
    elif hasattr(value, "weights"):
        _tensors_in(getattr(value, "weights"), out, depth + 1)


def _by_device(tensors, seen: set) -> Dict[str, int]:
    sizes: Dict[str, int] = {}
    for t in tensors:
        if t is None or t.device.type == "meta":
            continue
        key = _storage_key(t)
        if key in seen:
            continue
        seen.add(key)
        sizes[key[0]] = sizes.get(key[0], 0) + _storage_bytes(t)
    return sizes


def measure(obj: Any) -> List[Tuple[int, str, int, bool]]:
    """[(block id, device, bytes, spillable)]: the weights (one block per module, shared with
    clones) and the pending patches (one block per patcher)."""
    parts = []
    seen: set = set()
    for module, patcher in _weights(obj):
        weights = [t for _, t in module.named_parameters(remove_duplicate=False)]
        weights += [t for _, t in module.named_buffers(remove_duplicate=False)]
        backup = getattr(patcher, "backup", None) or {}
        weights += [getattr(entry, "weight", None) for entry in backup.values()]
        for device, size in _by_device(weights, seen).items():
            parts.append((id(module), device, size, True))
        patch_tensors: list = []
        _tensors_in(getattr(patcher, "patches", None) or {}, patch_tensors)
        for device, size in _by_device(patch_tensors, seen).items():
            parts.append((id(getattr(patcher, "patches", patcher)), device, size, False))
    return parts


def _host():
    from .host import HOST
    return HOST


def unload(obj: Any) -> None:
    """Takes the model (and any clone sharing its weights) out of ComfyUI's loaded models, as its
    own memory management does: patches off, weights back to the offload device."""
    mm = sys.modules.get("comfy.model_management")
    if mm is None:
        return
    modules = {id(module) for module, _ in _weights(obj)}
    loaded = mm.current_loaded_models
    for i in range(len(loaded) - 1, -1, -1):
        patcher = loaded[i].model
        if patcher is None or id(getattr(patcher, "model", None)) not in modules:
            continue
        loaded[i].model_unload()
        loaded.pop(i)


def tensors_to_spill(obj: Any) -> List[Tuple[str, Any]]:
    """The model's CPU weights by names unique within it, after unloading it."""
    lock = _host().execution_lock
    if not lock.acquire(timeout=EXECUTION_WAIT_SECONDS):
        raise TimeoutError(f"an execution held ComfyUI for {EXECUTION_WAIT_SECONDS:.0f} s")
    try:
        unload(obj)
        out = []
        for k, (module, _) in enumerate(_weights(obj)):
            for name, t in module.named_parameters(remove_duplicate=False):
                if t.device.type == "cpu":
                    out.append((f"{k}/p/{name}", t.data))
            for name, t in module.named_buffers(remove_duplicate=False):
                if t is not None and t.device.type == "cpu":
                    out.append((f"{k}/b/{name}", t))
        return out
    finally:
        lock.release()


def _same_kind_as(old, new):
    """`new` as a tensor of `old`'s kind. Weights made while ComfyUI executed are inference tensors,
    which keep no version counter; swapping a normal tensor's data into one leaves a tensor that
    looks normal but has none, and the next in-place use fails ("Inference tensors do not track
    version counter"). An inference tensor viewing the same (file-backed) storage keeps both kinds
    apart without a copy."""
    import torch
    if not old.is_inference() or new.is_inference():
        return new
    with torch.inference_mode():
        twin = torch.empty(0, dtype=new.dtype, device=new.device)
        twin.set_(new.untyped_storage(), new.storage_offset(), new.size(), new.stride())
    return twin


def replace_tensors(obj: Any, replacements: Dict[str, Any]) -> None:
    """Swaps each named weight for its file-backed twin in place: the parameter (or buffer) object
    stays the same, only its data changes, so every holder of the model sees the swap."""
    import torch
    lock = _host().execution_lock
    if not lock.acquire(timeout=EXECUTION_WAIT_SECONDS):
        raise TimeoutError(f"an execution held ComfyUI for {EXECUTION_WAIT_SECONDS:.0f} s")
    try:
        # Weights made while ComfyUI executed are inference tensors (see _same_kind_as); their data
        # is swapped in the same mode.
        with torch.inference_mode():
            for k, (module, _) in enumerate(_weights(obj)):
                for name, t in module.named_parameters(remove_duplicate=False):
                    new = replacements.get(f"{k}/p/{name}")
                    if new is not None:
                        t.data = _same_kind_as(t, new)
                for name, t in module.named_buffers(remove_duplicate=False):
                    new = replacements.get(f"{k}/b/{name}")
                    if new is not None:
                        t.data = _same_kind_as(t, new)
    finally:
        lock.release()


def _own_graph(obj: Any) -> List[Any]:
    """The object and what it is made of: references among these do not keep it alive. A clone's
    `parent` patchers (a LoRA'd model keeps the one it was cloned from) are part of it."""
    own = [obj, getattr(obj, "__dict__", None)]
    for module, patcher in _weights(obj):
        own += [module, getattr(module, "__dict__", None)]
        seen = set()
        while patcher is not None and id(patcher) not in seen:
            seen.add(id(patcher))
            own += [patcher, getattr(patcher, "__dict__", None)]
            patcher = getattr(patcher, "parent", None)
    return [o for o in own if o is not None]


def other_holders(obj: Any, call_args: Optional[tuple] = None) -> Optional[str]:
    """Who else holds the object or its weights (Python containers and other handles), or None.
    `call_args`: the arguments the caller was called with from C++, whose tuple holds the object
    only for the call."""
    own = _own_graph(obj)
    own_ids = {id(o) for o in own}
    this_frame = sys._getframe()
    # The object, its weights, and the patchers it is made of: each may be held from outside.
    # A plain loop: a comprehension naming `obj` would hold it in a closure cell of this frame.
    targets = [obj]
    for o in own:
        if o is not obj and not isinstance(o, dict):
            targets.append(o)
    for target in targets:
        referrers = gc.get_referrers(target)
        try:
            for r in referrers:
                if id(r) in own_ids or r is own or r is targets or r is referrers or r is this_frame:
                    continue
                if isinstance(r, types.FrameType):  # a caller's local variable
                    continue
                if (call_args is not None and isinstance(r, tuple) and len(r) == len(call_args)
                        and all(a is b for a, b in zip(r, call_args))):
                    continue  # the C++ call's own argument tuple (pybind11 passes a tuple)
                return f"held by a {type(r).__name__} besides the context"
        finally:
            del referrers
    return None


# How deep into a cached output (lists, tuples, dicts, ComfyUI's cache entries) the search for a
# model goes: a node's outputs are a list of output slots, each a list (batches) of values.
_CACHE_SEARCH_DEPTH = 5


def _holds(value: Any, obj: Any, depth: int = 0) -> bool:
    """Whether `obj` is `value` or inside it (a node's cached outputs)."""
    if value is obj:
        return True
    if depth >= _CACHE_SEARCH_DEPTH:
        return False
    if isinstance(value, (list, tuple)):
        return any(_holds(v, obj, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_holds(v, obj, depth + 1) for v in value.values())
    outputs = getattr(value, "outputs", None)  # comfy_execution.caching's CacheEntry
    return outputs is not None and _holds(outputs, obj, depth + 1)


def _cache_holds(cache: Any, obj: Any) -> bool:
    """Whether one of ComfyUI's output caches (and its subcaches: expanded nodes) holds `obj`."""
    if cache is None:
        return False
    if any(_holds(v, obj) for v in list(getattr(cache, "cache", {}).values())):
        return True
    return any(_cache_holds(sub, obj) for sub in list(getattr(cache, "subcaches", {}).values()))


def slots_holding(host: Any, obj: Any) -> List[str]:
    """The executor slots whose cached outputs hold `obj`: the workflow that loaded a model keeps
    the loader's (model, clip, vae) in its cache, and its OUTPUT port's pass-through too."""
    found = []
    for slot, executor in list(host._executors.items()):
        state = host._steady.get(slot)
        plan = state.plan if state is not None else None
        if plan is not None and any(_holds(v, obj) for v in list(plan.store.values())):
            found.append(slot)
        elif _cache_holds(getattr(getattr(executor, "caches", None), "outputs", None), obj):
            found.append(slot)
    return found


def release_for_drop(obj: Any, key: str) -> str:
    """Lets go of the references a rebuild replaces, then "" when the context's reference is the
    last, else who else holds the object. The caches of the slots whose outputs hold the model are
    let go of, the recipe slot's included (those workflows run their nodes again when next
    executed: what a rebuild costs anyway); other slots' caches are left alone."""
    lock = _host().execution_lock
    if not lock.acquire(timeout=EXECUTION_WAIT_SECONDS):
        return f"an execution held ComfyUI for {EXECUTION_WAIT_SECONDS:.0f} s"
    try:
        unload(obj)
        host = _host()
        host.forget_context_value(key)
        for slot in slots_holding(host, obj):
            host.reset_executor(slot)
        held = other_holders(obj, call_args=(obj, key))
        return held or ""
    finally:
        lock.release()
