"""ComfyUI custom-node entry point of Discomfort (this repository cloned into ComfyUI/custom_nodes/).

Registers DiscomfortPort, DiscomfortFolderImageLoader and DiscomfortImageDescriber (pure Python) and,
when the compiled core is built, the loop executor and the test runner. The core is looked up as an
installed `discomfort` package, then in this checkout's build folders (build/*/python). Without it the
core's nodes are still listed and say how to build the core.
"""

import glob
import importlib.util
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


def _load_image_nodes():
    """python/discomfort/image_nodes.py by path: it needs no core, so importing the `discomfort` package
    (which loads the core) is avoided."""
    path = os.path.join(_HERE, "python", "discomfort", "image_nodes.py")
    if not os.path.isfile(path):  # installed with pip: the package has it
        from discomfort import image_nodes
        return image_nodes
    spec = importlib.util.spec_from_file_location("discomfort_image_nodes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_image_nodes = _load_image_nodes()
NODE_CLASS_MAPPINGS.update(_image_nodes.NODE_CLASS_MAPPINGS)
NODE_DISPLAY_NAME_MAPPINGS.update(_image_nodes.NODE_DISPLAY_NAME_MAPPINGS)


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
    _HINT = ("Discomfort: the loop executor and test runner need the compiled core, which is not built for this Python.\n"
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

    class DiscomfortTestRunner:
        """Placeholder shown while the core is not built (the original's slots, so saved workflows load)."""

        @classmethod
        def INPUT_TYPES(cls):
            required = {"workflow_json": ("STRING", {"default": ""}),
                        "max_iterations": ("INT", {"default": 1, "min": 1, "max": 1000})}
            required.update({f"unique_id_input{i}": ("STRING", {"default": ""}) for i in range(1, 6)})
            required.update({f"unique_id_output{i}": ("STRING", {"default": ""}) for i in range(1, 6)})
            return {"required": required, "optional": {f"input{i}": ("*", {}) for i in range(1, 6)}}

        RETURN_TYPES = ("*",) * 5
        RETURN_NAMES = tuple(f"output{i}" for i in range(1, 6))
        FUNCTION = "run"
        CATEGORY = "discomfort"
        DESCRIPTION = "NOT BUILT: " + _HINT

        def run(self, **kwargs):
            raise RuntimeError(_HINT)

    NODE_CLASS_MAPPINGS["DiscomfortLoopExecutor"] = DiscomfortLoopExecutor
    NODE_DISPLAY_NAME_MAPPINGS["DiscomfortLoopExecutor"] = "Discomfort Loop Executor (core not built)"
    NODE_CLASS_MAPPINGS["DiscomfortTestRunner"] = DiscomfortTestRunner
    NODE_DISPLAY_NAME_MAPPINGS["DiscomfortTestRunner"] = "Discomfort Test Runner (core not built)"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
