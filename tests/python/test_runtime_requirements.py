"""requirements/runtime.txt against the target ComfyUI's own requirements.txt (COMFYUI_PATH, else
~/ComfyUI): a package ComfyUI lists but the venv lacks makes the built-in nodes that import it vanish
from the registry without an error, so every ComfyUI requirement must be pinned here, at a version
that satisfies ComfyUI's specifier, and installed in the running venv at that pin."""

import importlib.metadata
import os
import re

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNTIME = os.path.join(REPO, "requirements", "runtime.txt")
# Only ComfyUI's HTTP server uses its web frontend; the embedded ComfyUI never imports these.
FRONTEND_ONLY = {"comfyui-frontend-package", "comfyui-workflow-templates", "comfyui-embedded-docs"}
# Needed to build the Python module, not by ComfyUI.
BUILD_ONLY = {"pybind11"}


def comfyui_path():
    return os.environ.get("COMFYUI_PATH") or os.path.expanduser("~/ComfyUI")


def read_requirements(path):
    """{canonical name: Requirement} of a requirements file (comments and blank lines skipped)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                req = Requirement(line)
                out[canonicalize_name(req.name)] = req
    return out


def comfyui_requirements():
    path = os.path.join(comfyui_path(), "requirements.txt")
    assert os.path.isfile(path), f"no requirements.txt in the ComfyUI checkout {comfyui_path()}"
    return read_requirements(path)


def pinned(req):
    """The version of an exact pin (pkg==X), None for anything looser."""
    specs = list(req.specifier)
    return specs[0].version if len(specs) == 1 and specs[0].operator == "==" else None


def test_every_runtime_entry_is_an_exact_pin():
    loose = [str(r) for r in read_requirements(RUNTIME).values() if pinned(r) is None]
    assert not loose, f"requirements/runtime.txt entries without an exact pin: {loose}"


def test_every_comfyui_requirement_is_pinned_and_satisfied():
    ours = read_requirements(RUNTIME)
    theirs = comfyui_requirements()
    missing = sorted(name for name in theirs if name not in ours and name not in FRONTEND_ONLY)
    assert not missing, (f"ComfyUI ({comfyui_path()}) requires {missing}, absent from requirements/runtime.txt: "
                         "the built-in nodes importing them would be missing")
    unsatisfied = [f"{name}: ours {ours[name].specifier}, ComfyUI wants {req.specifier}"
                   for name, req in theirs.items()
                   if name in ours and req.specifier and not req.specifier.contains(pinned(ours[name]), prereleases=True)]
    assert not unsatisfied, f"pins outside ComfyUI's specifiers: {unsatisfied}"


def test_runtime_lists_nothing_the_target_comfyui_does_not():
    with open(RUNTIME) as f:
        target = re.search(r"ComfyUI v(\d+\.\d+\.\d+)", f.read())
    assert target, "requirements/runtime.txt no longer names its target ComfyUI version"
    with open(os.path.join(comfyui_path(), "comfyui_version.py")) as f:
        version = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)
    if version != target.group(1):
        pytest.skip(f"ComfyUI {version} is not the target v{target.group(1)}: older versions list fewer packages")
    extra = sorted(set(read_requirements(RUNTIME)) - set(comfyui_requirements()) - BUILD_ONLY)
    assert not extra, f"requirements/runtime.txt pins packages ComfyUI v{version} does not list: {extra}"


def test_the_running_venv_has_every_pin_installed():
    wrong = []
    for name, req in read_requirements(RUNTIME).items():
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != pinned(req):
            wrong.append(f"{req.name}: pinned {pinned(req)}, installed {installed}")
    assert not wrong, f"the venv does not match requirements/runtime.txt (rerun scripts/setup): {wrong}"
