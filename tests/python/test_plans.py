"""Loop plans and callable conditions through the Python API, against the real ComfyUI."""

import asyncio
import json

import pytest

from conftest import counter_workflow
from discomfort import errors


def test_run_plan_with_stages_when_and_until(d, tmp_path):
    (tmp_path / "count.json").write_text(json.dumps(counter_workflow(1)))
    (tmp_path / "bonus.json").write_text(json.dumps(counter_workflow(10)))
    plan = {
        "max_iterations": 50,
        "until": "counter >= 30",
        "inputs": {"counter": 0},
        "stages": [
            {"name": "count", "workflows": ["count.json"]},
            {"name": "bonus", "workflows": ["bonus.json"], "when": "iteration % 2 == 1"},
        ],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    result = asyncio.run(d.run_plan(str(tmp_path / "plan.json")))
    # +1 every iteration, +10 more on odd ones: 1, 12, 13, 24, 25, 36 -> stops after iteration 5.
    assert result["outputs"]["counter"] == 36
    assert result["iterations_completed"] == 6
    assert result["stopped_by_until"]


def test_until_may_be_a_python_callable(d):
    seen = []

    def enough(ctx):
        seen.append(ctx.load("counter"))
        return ctx.load("counter") >= 4

    with d.Context() as ctx:
        ctx.save("counter", 0)
        out = asyncio.run(d.run([counter_workflow(2)], iterations=100, context=ctx, until=enough))
    assert out["counter"] == 4
    assert seen == [2, 4]


def test_plan_errors_point_into_the_plan(d):
    bad = {"max_iterations": 1, "stages": [{"workflows": ["x.json"], "on_error": "sometimes"}]}
    with pytest.raises(errors.InvalidArgumentError) as info:
        asyncio.run(d.run_plan(bad))
    assert "on_error" in str(info.value)
