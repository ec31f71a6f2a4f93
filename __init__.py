"""ComfyUI custom-node entry point of Discomfort (this repository cloned into ComfyUI/custom_nodes/).

Registers DiscomfortPort (pure Python) and, when the compiled core is built, the loop executor. The
core is looked up as an installed `discomfort` package, then in this checkout's build folders
(build/*/python). Without it the loop-executor node is still listed and says how to build the core.
"""

import glob
import logging
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_LOG = logging.getLogger("discomfort")

_bridge_python = os.path.join(_HERE, "bridge", "python")
if _bridge_python not in sys.path:
    sys.path.insert(0, _bridge_python)
from discomfort_bridge import nodes as _bridge_nodes  # noqa: E402

NODE_CLASS_MAPPINGS = {"DiscomfortPort": _bridge_nodes.DiscomfortPort}
NODE_DISPLAY_NAME_MAPPINGS = {"DiscomfortPort": _bridge_nodes.NODE_DISPLAY_NAME_MAPPINGS["DiscomfortPort"]}


def _find_built_package():
    """The newest build/*/python folder holding a compiled discomfort package, or None."""
    built = glob.glob(os.path.join(_HERE, "build", "*", "python", "discomfort", "_core*.so"))
    if not built:
        return None
    built.sort(key=os.path.getmtime, reverse=True)
    return os.path.dirname(os.path.dirname(built[0]))


def _import_discomfort():
    try:
        import discomfort  # installed with pip
        return discomfort
    except ImportError:
        pass
    folder = _find_built_package()
    if folder is None:
        raise ImportError("no compiled discomfort core in " + os.path.join(_HERE, "build"))
    sys.path.insert(0, folder)
    import discomfort
    return discomfort


try:
    _import_discomfort()
    from discomfort import comfy_nodes as _loop_nodes

    NODE_CLASS_MAPPINGS.update(_loop_nodes.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_loop_nodes.NODE_DISPLAY_NAME_MAPPINGS)
    CORE_ERROR = None
except ImportError as _exc:
    CORE_ERROR = str(_exc)
    _HINT = ("Discomfort: the loop executor needs the compiled core, which is not built for this Python.\n"
             f"Build it: run {os.path.join(_HERE, 'scripts', 'setup')}, or in ComfyUI's Python environment:\n"
             f"  pip install --no-build-isolation {_HERE}\n"
             f"(import error: {_exc})")
    _LOG.warning(_HINT)

    class DiscomfortLoopExecutor:
        """Placeholder shown while the core is not built: running it explains how to build it."""

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"workflow_paths": ("STRING", {"multiline": True, "default": ""}),
                                 "iterations": ("INT", {"default": 1, "min": 1, "max": 100000})}}

        RETURN_TYPES = ("*", "STRING")
        RETURN_NAMES = ("result", "outputs")
        FUNCTION = "run"
        OUTPUT_NODE = True
        CATEGORY = "discomfort"
        DESCRIPTION = "NOT BUILT: " + _HINT

        def run(self, **kwargs):
            raise RuntimeError(_HINT)

    NODE_CLASS_MAPPINGS["DiscomfortLoopExecutor"] = DiscomfortLoopExecutor
    NODE_DISPLAY_NAME_MAPPINGS["DiscomfortLoopExecutor"] = "Discomfort Loop Executor (core not built)"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
