"""The CLI and the Python package turn a loop plan into a run through the same engine code
(engine/run_request.h): the same plan gives the same results and the same errors through both."""

import asyncio
import json
import os
import subprocess

import pytest

import discomfort
from conftest import TEST_NODES, counter_workflow

CLI = os.environ.get("DISCOMFORT_CLI")


def cli_run(plan_path, work_dir):
    if not CLI or not os.path.exists(CLI):
        pytest.fail(f"DISCOMFORT_CLI does not name the built CLI ({CLI!r}); ctest sets it")
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([CLI, "run", "--plan", str(plan_path), "--json", "--cpu", "--nodes", TEST_NODES,
                           "--work-dir", str(work_dir)], capture_output=True, text=True, env=env, timeout=300)
    return proc


def write_plan(tmp_path, plan, workflows):
    for name, doc in workflows.items():
        (tmp_path / name).write_text(json.dumps(doc))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def test_a_plan_gives_the_same_results_through_the_cli_and_the_package(d, tmp_path):
    # The start value comes from an @file.json input (which the package once did not accept), a
    # stage runs on odd iterations only, `until` stops the loop.
    (tmp_path / "start.json").write_text("5")
    plan = {"max_iterations": 20, "until": "counter >= 30",
            "inputs": {"counter": "@start.json"},
            "stages": [{"name": "always", "workflows": ["add1.json"]},
                       {"name": "odd", "workflows": ["add10.json"], "when": "iteration % 2 == 1"}]}
    path = write_plan(tmp_path, plan, {"add1.json": counter_workflow(1), "add10.json": counter_workflow(10)})
    proc = cli_run(path, tmp_path / "cli-work")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cli_outputs = json.loads(proc.stdout.strip().splitlines()[-1])
    result = asyncio.run(d.run_plan(str(path)))
    # 5, then +1 every iteration and +10 on odd ones: 6, 17, 18, 29, 30 -> stops after iteration 4.
    assert result["outputs"] == cli_outputs == {"counter": 30}
    assert result["stopped_by_until"] and result["iterations_completed"] == 5


@pytest.mark.parametrize("case", ["bad_when", "unknown_key", "failing_node", "missing_input_file"])
def test_a_plan_fails_with_the_same_error_through_the_cli_and_the_package(d, tmp_path, case):
    workflows = {"add1.json": counter_workflow(1), "fails.json": counter_workflow(1, fail_at=3)}
    plans = {
        "bad_when": {"max_iterations": 2, "inputs": {"counter": 0},
                     "stages": [{"workflows": ["add1.json"], "when": "iteration %"}]},
        "unknown_key": {"max_iterations": 2, "stages": [{"workflows": ["add1.json"]}], "retries": 2},
        "failing_node": {"max_iterations": 5, "inputs": {"counter": 0}, "stages": [{"name": "s", "workflows": ["fails.json"]}]},
        "missing_input_file": {"max_iterations": 1, "inputs": {"counter": "@nowhere.json"},
                               "stages": [{"workflows": ["add1.json"]}]},
    }
    path = write_plan(tmp_path, plans[case], workflows)
    proc = cli_run(path, tmp_path / "cli-work")
    assert proc.returncode == 1, proc.stderr[-3000:]
    cli_error = [line for line in proc.stderr.splitlines() if line.startswith("[discomfort] ")][-1]
    with pytest.raises(discomfort.DiscomfortError) as info:
        asyncio.run(d.run_plan(str(path)))
    # The CLI prints "[discomfort] " + the error's text; the exception carries the same text.
    assert cli_error == "[discomfort] " + info.value.text
