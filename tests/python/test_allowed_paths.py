"""The loop executor and the test runner read workflow files only inside the allowed folders: ComfyUI's
saved workflows, its input folder, Discomfort's examples, and what the operator adds
(DISCOMFORT_ALLOW_PATHS or <user folder>/discomfort/paths.json). Run against the real ComfyUI."""

import json
import os
import uuid

import pytest

from conftest import REPO, counter_workflow
from discomfort import allowed_paths
from discomfort.comfy_nodes import DiscomfortLoopExecutor, DiscomfortTestRunner

LOOP = "DiscomfortLoopExecutor, workflow_paths"
RUNNER = "DiscomfortTestRunner, workflow_json"


@pytest.fixture
def folders(d, monkeypatch):
    """(saved workflows, input folder, user folder) of the test's ComfyUI; no operator additions."""
    import folder_paths
    monkeypatch.delenv(allowed_paths.ALLOW_ENV, raising=False)
    user = folder_paths.get_user_directory()
    workflows = os.path.join(user, "default", "workflows")
    os.makedirs(workflows, exist_ok=True)
    return workflows, folder_paths.get_input_directory(), user


def _write(folder, workflow=None, name=None):
    path = os.path.join(folder, name or f"counter-{uuid.uuid4().hex[:8]}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(workflow or counter_workflow(2), f)
    return path


def _loop(path, node=DiscomfortLoopExecutor):
    if node is DiscomfortTestRunner:
        return node().run(workflow_json=path, max_iterations=2, unique_id_input1="counter", input1=1,
                          unique_id_output1="counter")[0]
    return node().run(workflow_paths=path, iterations=2, initial_inputs="counter: 1", return_port="counter")["result"][0]


@pytest.mark.parametrize("node, where", [(DiscomfortLoopExecutor, LOOP), (DiscomfortTestRunner, RUNNER)])
def test_files_outside_the_allowed_folders_are_refused(folders, tmp_path, node, where):
    workflows, input_dir, _ = folders
    outside = _write(str(tmp_path))  # a real, readable workflow: only the policy stops it
    with pytest.raises(PermissionError) as info:
        _loop(outside, node)
    message = str(info.value)
    assert message.startswith(f"{where}: {outside!r} is outside the allowed folders")
    for folder in (workflows, input_dir, os.path.join(REPO, "examples")):
        assert os.path.realpath(folder) in message
    assert allowed_paths.ALLOW_ENV in message and "paths.json" in message
    # `..` leading out of every allowed folder, whether or not the target exists.
    for climb in ("../../../../../../../../" + outside.lstrip("/"), "../not-there.json"):
        with pytest.raises(PermissionError, match=f"^{where}: .* resolves to .*, outside the allowed folders"):
            _loop(climb, node)
    # A symlink in an allowed folder pointing outside.
    link = os.path.join(workflows, f"link-{uuid.uuid4().hex[:8]}.json")
    os.symlink(outside, link)
    try:
        with pytest.raises(PermissionError, match="outside the allowed folders"):
            _loop(os.path.basename(link), node)
        with pytest.raises(PermissionError, match="outside the allowed folders"):
            _loop(link, node)
    finally:
        os.remove(link)


def test_files_inside_the_allowed_folders_run(folders):
    workflows, input_dir, _ = folders
    saved = _write(workflows)
    uploaded = _write(os.path.join(input_dir, "sub"))
    assert _loop(os.path.basename(saved)) == 5  # by name: looked up in the saved workflows
    assert _loop(saved) == 5  # absolute, inside
    assert _loop("sub/" + os.path.basename(uploaded)) == 5  # found in the input folder
    assert _loop(f"sub/../sub/{os.path.basename(uploaded)}", DiscomfortTestRunner) == 5  # `..` that stays inside
    # A symlink from one allowed folder into another stays inside them.
    link = os.path.join(workflows, f"link-{uuid.uuid4().hex[:8]}.json")
    os.symlink(uploaded, link)
    try:
        assert _loop(os.path.basename(link)) == 5
    finally:
        for path in (saved, uploaded, link):
            os.remove(path)
    # The bundled examples: the feedback loop's workflow resolves into this checkout.
    assert allowed_paths.resolve_workflow_file("feedback_loop/feedback.json", "N", "w") == \
        os.path.join(os.path.realpath(REPO), "examples", "feedback_loop", "feedback.json")


def test_a_missing_file_is_not_found_and_says_where_it_looked(folders):
    workflows, input_dir, _ = folders
    with pytest.raises(FileNotFoundError) as info:
        _loop("nowhere.json", DiscomfortTestRunner)
    assert str(info.value).startswith(f"{RUNNER}: file 'nowhere.json' not found")
    assert os.path.join(os.path.realpath(workflows), "nowhere.json") in str(info.value)
    with pytest.raises(ValueError, match=f"^{LOOP}: no workflow file given"):
        _loop("  \n ")


def test_the_operator_can_allow_more_folders(folders, tmp_path, monkeypatch):
    _, _, user = folders
    outside = _write(str(tmp_path / "env"))
    monkeypatch.setenv(allowed_paths.ALLOW_ENV, os.pathsep.join(["/nonexistent", str(tmp_path / "env")]))
    assert _loop(outside) == 5
    assert _loop(os.path.basename(outside), DiscomfortTestRunner) == 5  # relative names are looked up there too
    monkeypatch.delenv(allowed_paths.ALLOW_ENV)
    with pytest.raises(PermissionError):
        _loop(outside)

    settings = os.path.join(user, allowed_paths.SETTINGS_FILE)
    os.makedirs(os.path.dirname(settings), exist_ok=True)
    try:
        other = _write(str(tmp_path / "settings"))
        with open(settings, "w") as f:
            json.dump({"allowed_paths": [str(tmp_path / "settings")]}, f)
        assert _loop(other) == 5
        with pytest.raises(PermissionError):
            _loop(outside)
        with open(settings, "w") as f:
            f.write("{not json")
        with pytest.raises(ValueError, match="paths.json: cannot read the allowed paths"):
            _loop(other)
        with open(settings, "w") as f:
            json.dump({"allowed_paths": ["relative/folder"]}, f)
        with pytest.raises(ValueError, match="allowed path 'relative/folder' is not absolute"):
            _loop(other)
    finally:
        os.remove(settings)


def test_the_originals_paths_from_the_comfyui_root(tmp_path):
    # The original Discomfort's saved workflows name files from the ComfyUI root
    # (custom_nodes/discomfort/...): accepted where that lands inside an allowed folder.
    checkout = tmp_path / "checkout"
    _write(str(checkout / "examples"), name=str(checkout / "examples" / "loop.json"))
    _write(str(checkout / "support"), name=str(checkout / "support" / "test_model.json"))
    comfy = tmp_path / "ComfyUI"
    (comfy / "custom_nodes").mkdir(parents=True)
    os.symlink(checkout, comfy / "custom_nodes" / "discomfort")
    roots = [allowed_paths.Root("Discomfort's examples", str(checkout / "examples"))]

    def resolve(path):
        return allowed_paths.resolve(path, roots, where="N, w", also_relative_to=[str(comfy)])

    assert resolve("custom_nodes/discomfort/examples/loop.json") == str(checkout / "examples" / "loop.json")
    assert resolve("loop.json") == str(checkout / "examples" / "loop.json")
    with pytest.raises(PermissionError, match="resolves to .*support/test_model.json, outside"):
        resolve("custom_nodes/discomfort/support/test_model.json")
    with pytest.raises(FileNotFoundError):
        resolve("custom_nodes/discomfort/support/missing.json")
