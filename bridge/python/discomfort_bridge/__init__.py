"""Python side of Discomfort's in-process ComfyUI bridge.

The C++ bridge (bridge/*.cc) imports this package inside the embedded interpreter (or inside an
already-running Python, e.g. a live ComfyUI). It imports ComfyUI from its checkout as a library,
registers Discomfort's nodes and drives ComfyUI's own validate_prompt / PromptExecutor.
Module names here must never collide with ComfyUI's top-level modules (server, nodes, utils, ...).
"""

from .host import ComfyHost, HOST  # noqa: F401
