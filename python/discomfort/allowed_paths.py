"""Which files and folders a workflow may make Discomfort's nodes read.

A workflow is data from whoever wrote it, so a path in one of its widgets may only name something
inside folders this machine's operator chose. For the loop executor and the test runner those are:

* ComfyUI's saved workflows, `<user folder>/default/workflows` (where the UI saves them);
* ComfyUI's input folder;
* this extension's bundled examples, `<checkout>/examples`;
* any folder the operator adds, in ComfyUI's environment as `DISCOMFORT_ALLOW_PATHS` (absolute
  folders separated by `:`, like PATH) and/or in `<user folder>/discomfort/paths.json` as
  `{"allowed_paths": ["/data/workflows", ...]}`. Both are read at every run.

A relative path is looked up in those folders in that order, then from the ComfyUI root (the original
Discomfort's saved workflows say `custom_nodes/discomfort/...`). Whatever is found must lie inside one
of the folders once `..` and symlinks are resolved; an absolute path likewise. Anything else is a
PermissionError naming the node, the widget and the allowed folders.

Standard library only at module level: image_nodes.py loads this file by path, without the package
(and its compiled core).
"""

from __future__ import annotations

import json
import os
from typing import List, NamedTuple, Optional, Sequence

ALLOW_ENV = "DISCOMFORT_ALLOW_PATHS"
SETTINGS_FILE = os.path.join("discomfort", "paths.json")  # under ComfyUI's user folder
SETTINGS_KEY = "allowed_paths"


class Root(NamedTuple):
    """A folder paths may lie in, and how errors name it."""
    label: str
    path: str


def _checkout_examples() -> Optional[str]:
    """`<checkout>/examples` when this file sits in a checkout (python/discomfort/ next to the root
    __init__.py); None for an installed package, whose parent folders belong to others."""
    package = os.path.dirname(os.path.realpath(__file__))
    checkout = os.path.dirname(os.path.dirname(package))
    if os.path.basename(os.path.dirname(package)) == "python" and os.path.isfile(os.path.join(checkout, "__init__.py")):
        return os.path.join(checkout, "examples")
    return None


# The root __init__.py sets this to its own checkout's examples when the package is installed elsewhere.
EXAMPLES: Optional[str] = _checkout_examples()


def inside(path: str, root: str) -> bool:
    """Whether the real path `path` is `root` or below it (both already real paths)."""
    return os.path.commonpath([root, path]) == root


def _describe(roots: Sequence[Root]) -> str:
    if len(roots) == 1:
        return f"{roots[0].label} {roots[0].path}"
    return "the allowed folders: " + ", ".join(f"{r.label} ({r.path})" for r in roots)


def resolve(path: str, roots: Sequence[Root], *, where: str, kind: str = "file", absolute_allowed: bool = False,
            also_relative_to: Sequence[str] = (), hint: str = "") -> str:
    """The real path of the file or folder (`kind`) `path`, which must lie inside one of `roots`.

    A relative path is looked up under each root in order, then under each folder of
    `also_relative_to` (found there, its real path must still lie inside a root). An absolute path must
    lie inside a root unless `absolute_allowed`. `where` names the node and widget in errors; `hint`
    (appended to refusals) says how to allow more."""
    text = (path or "").strip()
    if not text:
        raise ValueError(f"{where}: the path is empty; give a {kind} inside {_describe(roots)}")
    text = os.path.expanduser(text)
    exists = os.path.isdir if kind == "folder" else os.path.isfile
    real_roots = [Root(r.label, os.path.realpath(r.path)) for r in roots]

    def refused(problem: str) -> PermissionError:
        them = "it" if len(real_roots) == 1 else "them"
        return PermissionError(f"{where}: {path.strip()!r} {problem} {_describe(real_roots)}; paths may not escape "
                               f"{them}" + (f". {hint}" if hint else ""))

    if os.path.isabs(text):
        resolved = os.path.realpath(text)
        if not absolute_allowed and not any(inside(resolved, r.path) for r in real_roots):
            raise refused("is outside")
        if not exists(resolved):
            raise FileNotFoundError(f"{where}: {kind} {path.strip()!r} not found (resolved to {resolved})")
        return resolved

    looked: List[str] = []
    bases = [(r.path, True) for r in real_roots] + [(b, False) for b in also_relative_to]
    for base, is_root in bases:
        candidate = os.path.realpath(os.path.join(base, text))
        if any(inside(candidate, r.path) for r in real_roots):
            looked.append(candidate)
            if exists(candidate):
                return candidate
        elif is_root or os.path.lexists(candidate):
            # `..` or a symlink leading out of every allowed folder: refused whether or not it exists
            # (a workflow must not learn what lies outside). From the ComfyUI root, only what exists.
            raise refused(f"resolves to {candidate}, outside")
    raise FileNotFoundError(f"{where}: {kind} {path.strip()!r} not found (looked in: {', '.join(looked)})")


def operator_roots(user_dir: str) -> List[Root]:
    """The folders the operator added: DISCOMFORT_ALLOW_PATHS, then `<user_dir>/discomfort/paths.json`."""
    entries = [(ALLOW_ENV, p) for p in os.environ.get(ALLOW_ENV, "").split(os.pathsep) if p.strip()]
    settings = os.path.join(user_dir, SETTINGS_FILE)
    if os.path.isfile(settings):
        try:
            with open(settings, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{settings}: cannot read the allowed paths: {exc}") from None
        listed = data.get(SETTINGS_KEY, []) if isinstance(data, dict) else None
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            raise ValueError(f'{settings}: expected {{"{SETTINGS_KEY}": ["/absolute/folder", ...]}}')
        entries += [(settings, p) for p in listed]
    roots = []
    for source, entry in entries:
        folder = os.path.expanduser(entry.strip())
        if not os.path.isabs(folder):
            raise ValueError(f"{source}: allowed path {entry!r} is not absolute")
        roots.append(Root(f"allowed by {os.path.basename(source)}", folder))
    return roots


def workflow_roots() -> List[Root]:
    """Where the loop executor and the test runner may read workflow files (see the module text)."""
    import folder_paths
    user_dir = folder_paths.get_user_directory()
    roots = [Root("saved workflows", os.path.join(user_dir, "default", "workflows")),
             Root("input folder", folder_paths.get_input_directory())]
    if EXAMPLES is not None:
        roots.append(Root("Discomfort's examples", EXAMPLES))
    return roots + operator_roots(user_dir)


def how_to_allow() -> str:
    return (f"To read another folder, list it in the environment variable {ALLOW_ENV} (':'-separated) or in "
            f'<ComfyUI user folder>/{SETTINGS_FILE} as {{"{SETTINGS_KEY}": [...]}}')


def resolve_workflow_file(path: str, node: str, widget: str) -> str:
    """A workflow file named in `node`'s `widget`, inside the allowed folders."""
    import folder_paths
    comfyui_root = os.path.dirname(os.path.abspath(folder_paths.__file__))
    return resolve(path, workflow_roots(), where=f"{node}, {widget}", kind="file",
                   also_relative_to=[comfyui_root], hint=how_to_allow())
