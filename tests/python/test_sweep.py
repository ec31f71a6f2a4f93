"""Discomfort.sweep against the real ComfyUI: grid and image-folder sweeps, per-point isolation and
errors, outputs written per point, callbacks, cancellation."""

import asyncio
import os
import time

import pytest
import torch
from PIL import Image

import discomfort
from conftest import counter_workflow, link, port, sleep_workflow


def counter_and_label():
    """counter -> +2 -> counter, and label -> label_out (two INPUT ports for a two-axis grid)."""
    wf = counter_workflow(2)
    wf["5"] = port("label")
    wf["6"] = port("label_out", link("5"))
    return wf


def test_grid_sweep_runs_every_point_in_its_own_context(d):
    async def main():
        with d.Context() as ctx:
            ctx.save("counter", 1000)   # seeds every point; the grid overrides it
            ctx.save("label", "parent")
            seen = []
            points = await d.sweep([counter_and_label()], grid={"counter": [0, 100], "label": "a,b,c"}, context=ctx,
                                   iterations=3, on_point=lambda p: seen.append(p["index"]))
            return points, seen, ctx.load("counter")

    points, seen, parent_counter = asyncio.run(main())
    assert [p["params"] for p in points] == [{"counter": c, "label": l} for c in (0, 100) for l in "abc"]
    assert all(p["ok"] and p["error"] is None and p["seconds"] > 0 for p in points)
    assert [p["outputs"] for p in points] == [{"counter": c + 6, "label_out": l} for c in (0, 100) for l in "abc"]
    assert seen == list(range(6)) and [p["index"] for p in points] == seen
    assert parent_counter == 1000  # points never write back into the parent


def test_grid_forms_and_shared_inputs(d):
    async def main():
        cli_style = await d.sweep([counter_workflow(1)], grid=["counter=1..7..3"], pipeline=False)
        ranged = await d.sweep([counter_and_label()], grid={"counter": range(2)}, inputs={"label": "shared"})
        return cli_style, ranged

    cli_style, ranged = asyncio.run(main())
    assert [(p["params"]["counter"], p["outputs"]["counter"]) for p in cli_style] == [(1, 2), (4, 5), (7, 8)]
    assert [p["outputs"] for p in ranged] == [{"counter": 2, "label_out": "shared"}, {"counter": 3, "label_out": "shared"}]
    with pytest.raises(discomfort.InvalidArgumentError):
        asyncio.run(d.sweep([counter_workflow(1)], grid=["counter"]))
    with pytest.raises(discomfort.InvalidArgumentError, match="one of them"):
        asyncio.run(d.sweep([counter_workflow(1)]))
    with pytest.raises(discomfort.InvalidArgumentError, match="no values"):
        asyncio.run(d.sweep([counter_workflow(1)], grid={"counter": []}))


def test_a_failing_point_does_not_stop_the_sweep(d):
    # counter_workflow fails when counter + 1 == 6: only the point starting at 5 fails.
    points = asyncio.run(d.sweep([counter_workflow(1, fail_at=6)], grid={"counter": [1, 5, 9]}))
    assert [p["ok"] for p in points] == [True, False, True]
    assert [p["outputs"] for p in points] == [{"counter": 2}, {}, {"counter": 10}]
    error = points[1]["error"]
    assert isinstance(error, discomfort.ExecutionError) and error.node_id == "3"
    assert error.class_type == "DiscomfortTestFailAt"


def test_image_folder_sweep_writes_outputs_per_point(d, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    sizes = {"b.png": (12, 8), "a.png": (16, 10), "c.png": (8, 8)}
    for name, size in sizes.items():
        Image.new("RGB", size, (200, 10, 10)).save(folder / name)
    (folder / "skip.txt").write_text("x")
    workflow = {"1": port("picture"), "2": port("result", link("1"))}
    out = tmp_path / "out"
    points = asyncio.run(d.sweep([workflow], images=str(folder), image_port="picture", output_dir=str(out),
                                 max_in_flight=2))
    assert [os.path.basename(p["image"]) for p in points] == ["a.png", "b.png", "c.png"]
    for p in points:
        w, h = sizes[os.path.basename(p["image"])]
        result = p["outputs"]["result"]
        assert isinstance(result, torch.Tensor) and tuple(result.shape) == (1, h, w, 3)
        assert p["files"] and all(f.startswith(str(out / f"point_{p['index']:05d}")) for f in p["files"])
        with Image.open(p["files"][0]) as written:
            assert written.size == (w, h) and written.convert("RGB").getpixel((0, 0)) == (200, 10, 10)
    # A list of paths works too (here in the caller's order).
    listed = asyncio.run(d.sweep([workflow], images=[str(folder / "c.png"), str(folder / "a.png")],
                                 image_port="picture"))
    assert [tuple(p["outputs"]["result"].shape) for p in listed] == [(1, 8, 8, 3), (1, 10, 16, 3)]
    with pytest.raises(discomfort.NotFoundError):
        asyncio.run(d.sweep([workflow], images=str(tmp_path / "no-such-folder")))


def test_cancelling_a_sweep(d):
    async def main():
        done = []
        task = asyncio.create_task(d.sweep([sleep_workflow(0.4)], grid={"x": list(range(50))},
                                           on_point=lambda p: done.append(p["index"])))
        while not done:
            await asyncio.sleep(0.05)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started, len(done)

    seconds, finished = asyncio.run(main())
    assert seconds < 5 and finished < 50
    # The engine is usable right after.
    assert asyncio.run(d.run([counter_workflow(1)], inputs={"counter": 1})) == {"counter": 2}


def test_a_raising_callback_stops_the_sweep(d):
    def boom(point):
        raise ValueError("stop at point %d" % point["index"])

    with pytest.raises(ValueError, match="stop at point 0"):
        asyncio.run(d.sweep([counter_workflow(1)], grid={"counter": [1, 2, 3]}, on_point=boom))


def test_a_point_past_its_iteration_timeout_fails_and_the_sweep_goes_on(d):
    from test_run import hang_workflow  # counter -> +1 -> hangs when it reaches hang_at -> counter

    points = asyncio.run(d.sweep([hang_workflow(3)], {"counter": [0, 2, 4]}, iteration_timeout=1.0))
    assert [p["ok"] for p in points] == [True, False, True]
    assert isinstance(points[1]["error"], discomfort.RunTimeoutError), points[1]["error"]
    assert [p["outputs"]["counter"] for p in (points[0], points[2])] == [1, 5]
