"""What ComfyUI's custom-node entry point (the repository's root __init__.py) hands over to: the node
mappings of the whole extension, with or without the compiled core.

* DiscomfortPort (discomfort_bridge/nodes.py) and the image nodes (image_nodes.py) are pure Python
  and always registered.
* The loop executor and the test runner come from the `discomfort` package, imported as installed
  (pip) or else from this checkout's build folder, `build/release/python` and then
  `build/debug/python`: the release build is the one scripts/setup makes, the debug one is asked for;
  no other folder is ever picked (sanitizer builds there cannot load into a plain Python), and which
  file was touched last decides nothing.
* Without the core, each of those two is a placeholder derived from the real class (same inputs,
  outputs and category, so saved workflows still load) whose run says how to build the core.

Standard library only at module level, and loaded by path: the package itself cannot be imported
without its core.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from types import ModuleType
from typing import Dict, List, Optional, Tuple

LOG = logging.getLogger("discomfort")
BUILD_FOLDERS = ("release", "debug")  # in this order; see the module text
_HERE = os.path.dirname(os.path.abspath(__file__))


def build_package_folders(checkout: str) -> List[str]:
    """The build folders holding a compiled discomfort package, in the order they are tried."""
    found = []
    for build in BUILD_FOLDERS:
        folder = os.path.join(checkout, "build", build, "python")
        package = os.path.join(folder, "discomfort")
        if os.path.isdir(package) and any(n.startswith("_core") and n.endswith(".so") for n in os.listdir(package)):
            found.append(folder)
    return found


def load_by_path(name: str, path: str) -> ModuleType:
    """A module from its file, without importing the package it sits in."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _forget_package() -> None:
    """Drops what a failed `import discomfort` left behind, so the next folder starts clean."""
    for name in [n for n in sys.modules if n == "discomfort" or n.startswith("discomfort.")]:
        del sys.modules[name]


def import_core_nodes(checkout: str) -> ModuleType:
    """discomfort.comfy_nodes from the installed package, else from the first build folder that imports."""
    errors = []
    for folder in [None] + build_package_folders(checkout):
        if folder is not None and folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            from discomfort import comfy_nodes
            return comfy_nodes
        except ImportError as exc:
            errors.append(f"{folder or 'installed package'}: {str(exc).splitlines()[-1]}")
            _forget_package()
            if folder is not None:
                sys.path.remove(folder)
    if len(errors) == 1:
        errors.append(f"no compiled core in {os.path.join(checkout, 'build', '{' + ','.join(BUILD_FOLDERS) + '}')}")
    raise ImportError("; ".join(errors))


def build_hint(checkout: str, error: str) -> str:
    return ("Discomfort: the loop executor and test runner need the compiled core, which is not built for this Python.\n"
            f"Build it: run {os.path.join(checkout, 'scripts', 'setup')}, or in ComfyUI's Python environment:\n"
            f"  pip install --no-build-isolation {checkout}\n"
            f"(import error: {error})")


def placeholder(node: type, hint: str) -> type:
    """`node` as listed without the core: its inputs, outputs and category, and a run that raises `hint`."""
    def not_built(self, **kwargs):
        raise RuntimeError(hint)

    return type(node.__name__, (node,), {
        node.FUNCTION: not_built,
        "DESCRIPTION": "NOT BUILT: " + hint,
        "__doc__": f"{node.__name__} while the compiled core is not built: running it says how to build it.",
        "__module__": __name__,
    })


def node_mappings(checkout: str) -> Tuple[Dict[str, type], Dict[str, str], Optional[str]]:
    """(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, the core's import error or None) for the
    extension whose checkout is `checkout`."""
    bridge_python = os.path.join(checkout, "bridge", "python")
    if bridge_python not in sys.path:
        sys.path.insert(0, bridge_python)
    from discomfort_bridge import nodes as bridge_nodes

    image_nodes = load_by_path("discomfort_image_nodes", os.path.join(_HERE, "image_nodes.py"))
    classes: Dict[str, type] = {"DiscomfortPort": bridge_nodes.DiscomfortPort, **image_nodes.NODE_CLASS_MAPPINGS}
    names: Dict[str, str] = {"DiscomfortPort": bridge_nodes.NODE_DISPLAY_NAME_MAPPINGS["DiscomfortPort"],
                             **image_nodes.NODE_DISPLAY_NAME_MAPPINGS}
    try:
        core_nodes = import_core_nodes(checkout)
    except ImportError as exc:
        hint = build_hint(checkout, str(exc))
        LOG.warning(hint)
        # The real classes, read from their file without the package (its import needs the core).
        definitions = load_by_path("discomfort_comfy_nodes", os.path.join(_HERE, "comfy_nodes.py"))
        for name, node in definitions.NODE_CLASS_MAPPINGS.items():
            classes[name] = placeholder(node, hint)
            names[name] = definitions.NODE_DISPLAY_NAME_MAPPINGS[name] + " (core not built)"
        return classes, names, str(exc)
    from discomfort import allowed_paths
    if allowed_paths.EXAMPLES is None:  # an installed package: the examples are this checkout's
        allowed_paths.EXAMPLES = os.path.join(checkout, "examples")
    classes.update(core_nodes.NODE_CLASS_MAPPINGS)
    names.update(core_nodes.NODE_DISPLAY_NAME_MAPPINGS)
    return classes, names, None
