"""Loads the compiled core, or says how to build it."""

from __future__ import annotations

import os

BUILD_HINT = (
    "Discomfort's compiled core (discomfort._core) is not built for this Python. Build it with one of:\n"
    "  * pip install --no-build-isolation /path/to/discomfort     (in the environment that has torch)\n"
    "  * scripts/setup in the Discomfort checkout (builds build/release/python/discomfort), then\n"
    "    PYTHONPATH=/path/to/discomfort/build/release/python\n"
    "The core links the libtorch of the torch package installed here, so it is built per environment.")

try:
    import torch  # noqa: F401  (loads libtorch and its Python bindings before the core needs them)
    from . import _core  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - exercised by the ComfyUI entry point's fallback
    raise ImportError(f"{BUILD_HINT}\n(cause: {exc}; package at {os.path.dirname(__file__)})") from exc

core = _core
