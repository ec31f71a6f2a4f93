"""ComfyUI's custom-node entry point for Discomfort (this repository cloned into ComfyUI/custom_nodes/).

Everything is decided in python/discomfort/comfy_extension.py, loaded by path because the package
itself needs its compiled core: which nodes register, where the core is found, and the placeholders
shown while it is not built.
"""

import importlib.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "discomfort_comfy_extension", os.path.join(_HERE, "python", "discomfort", "comfy_extension.py"))
_extension = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_extension)

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, CORE_ERROR = _extension.node_mappings(_HERE)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
