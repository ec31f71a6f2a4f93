"""Discomfort.run against the real ComfyUI: loops with state, pointers, errors, cancellation."""

import asyncio
import json
import os
import time

import pytest
import torch

import discomfort
from conftest import ORIGINAL_TESTDATA, counter_workflow, link, passthrough_workflow, port, sleep_workflow


def test_loop_carries_state_across_iterations(d):
    seen = []
    with d.Context() as ctx:
        result = asyncio.run(d.run([counter_workflow(3)], inputs={"counter": 5}, iterations=4, context=ctx,
                                   on_iteration=lambda r: seen.append(ctx.load("counter"))))
        assert result == {"counter": 17}
        assert ctx.load("counter") == 17
        # A second run continues from the context's state.
        assert asyncio.run(d.run([counter_workflow(3)], iterations=2, context=ctx)) == {"counter": 23}
    assert seen == [8, 11, 14, 17]


def test_workflow_files_and_several_workflows_share_the_context(d, tmp_path):
    first = tmp_path / "add1.json"
    first.write_text(json.dumps(counter_workflow(1)))
    doubled = {"1": port("counter"),
               "2": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("1"), "amount": 100}},
               "3": port("big", link("2"))}
    result = asyncio.run(d.run([str(first), doubled], inputs={"counter": 0}, iterations=3))
    assert result == {"counter": 3, "big": 103}


def test_tensors_pass_by_pointer_in_and_out(d):
    image = torch.rand(1, 16, 16, 3)
    result = asyncio.run(d.run([passthrough_workflow()], inputs={"x": image}))
    assert result["y"].data_ptr() == image.data_ptr()
    assert result["y"] is image or torch.equal(result["y"], image)


def test_live_python_objects_pass_by_reference(d):
    class Model:  # stands for a MODEL/CLIP/VAE: not JSON, never serialized
        pass

    model = Model()
    with d.Context() as ctx:
        ctx.save("x", model)
        result = asyncio.run(d.run([passthrough_workflow()], context=ctx))
        assert result["y"] is model
        assert ctx.load("y") is model
        assert ctx.get_storage_info("y")["kind"] == "object"


def test_real_node_output_tensor(d):
    wf = {"1": {"class_type": "EmptyImage", "inputs": {"width": 6, "height": 4, "batch_size": 1, "color": 0xFF0000}},
          "2": port("image", link("1"))}
    image = asyncio.run(d.run([wf]))["image"]
    assert isinstance(image, torch.Tensor) and tuple(image.shape) == (1, 4, 6, 3)
    assert torch.allclose(image[..., 0], torch.ones(1, 4, 6))


def test_ui_format_workflow_runs_through_the_native_converter(d):
    # The original's empty-latent fragment, saved by the ComfyUI frontend (UI format), at a small size.
    with open(f"{ORIGINAL_TESTDATA}/latent_1024x1024_empty.json") as f:
        ui = json.load(f)
    for node in ui["nodes"]:
        if node["type"] == "EmptyLatentImage":
            node["widgets_values"] = [64, 64, 1]
    latent = asyncio.run(d.run([ui]))["latent"]
    assert tuple(latent["samples"].shape)[-2:] == (8, 8)


def test_until_condition_and_output_dir(d, tmp_path):
    wf = counter_workflow(1)
    wf["5"] = {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0}}
    wf["6"] = port("image", link("5"))
    with d.Context() as ctx:
        ctx.save("counter", 0)
        report = asyncio.run(d.run_detailed([wf], context=ctx, iterations=50, until="counter >= 3",
                                            output_dir=str(tmp_path)))
    assert report["stopped_by_until"] and report["iterations_completed"] == 3
    assert sorted(os.listdir(tmp_path)) == ["image_00000.png", "image_00001.png", "image_00002.png"]


def test_save_every_writes_every_kth_and_the_last_iteration(d, tmp_path):
    wf = counter_workflow(1)
    wf["5"] = {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0}}
    wf["6"] = port("image", link("5"))
    every_3, last_only, until = tmp_path / "every_3", tmp_path / "last_only", tmp_path / "until"
    with d.Context() as ctx:
        ctx.save("counter", 0)
        asyncio.run(d.run([wf], context=ctx, iterations=7, output_dir=str(every_3), save_every=3))
        asyncio.run(d.run([wf], context=ctx, iterations=7, output_dir=str(last_only), save_every=0))
        # `until` stops at iteration 4 (counter 14 -> 19), between two saves: the last one is written too.
        report = asyncio.run(d.run_detailed([wf], context=ctx, iterations=50, until="counter >= 19",
                                            output_dir=str(until), save_every=3))
    assert sorted(os.listdir(every_3)) == ["image_00002.png", "image_00005.png", "image_00006.png"]
    assert sorted(os.listdir(last_only)) == ["image_00006.png"]
    assert report["iterations_completed"] == 5
    assert sorted(os.listdir(until)) == ["image_00002.png", "image_00004.png"]
    assert report["files"]["image"] == [str(until / "image_00004.png")]
    with pytest.raises(ValueError, match="save_every"):
        asyncio.run(d.run([wf], inputs={"counter": 0}, iterations=1, save_every=-1))


def test_event_loop_stays_responsive_and_async_callbacks_run_on_it(d):
    async def main():
        ticks = 0
        stop = False
        events = []

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.01)

        async def on_iteration(report):
            events.append(report["iteration"])

        task = asyncio.create_task(ticker())
        await d.run([sleep_workflow(0.3)], inputs={"x": 1}, iterations=2, on_iteration=on_iteration)
        stop = True
        await task
        await asyncio.sleep(0.05)
        return ticks, events

    ticks, events = asyncio.run(main())
    assert ticks > 20  # ~0.6 s of node time with the loop running alongside
    assert events == [0, 1]


def test_cancelling_the_task_interrupts_the_run(d):
    async def main():
        with d.Context() as ctx:
            ctx.save("x", 1)
            task = asyncio.create_task(d.run([sleep_workflow(30)], iterations=5, context=ctx))
            await asyncio.sleep(1.0)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - started

    assert asyncio.run(main()) < 5
    # The engine is usable right after.
    assert asyncio.run(d.run([counter_workflow(1)], inputs={"counter": 1})) == {"counter": 2}


def test_cancel_token_raises_run_cancelled(d):
    async def main():
        token = discomfort.CancelToken()

        async def later():
            await asyncio.sleep(0.5)
            token.cancel()
            d.interrupt()

        asyncio.create_task(later())
        await d.run([sleep_workflow(30)], inputs={"x": 1}, iterations=3, cancel=token)

    with pytest.raises(discomfort.RunCancelledError) as info:
        asyncio.run(main())
    assert isinstance(info.value, RuntimeError)


# ---------------------------------------------------------------- errors

def test_unknown_node_is_a_validation_error_naming_the_node(d):
    with pytest.raises(discomfort.ValidationError) as info:
        asyncio.run(d.run([{"1": {"class_type": "NoSuchNode", "inputs": {}}, "2": port("y", link("1"))}]))
    assert isinstance(info.value, ValueError)
    assert info.value.node_id == "1" and info.value.class_type == "NoSuchNode"


def test_invalid_widget_value_names_the_input(d):
    wf = {"1": {"class_type": "EmptyImage", "inputs": {"width": 6, "height": 4, "batch_size": 1, "color": -5}},
          "2": port("image", link("1"))}
    with pytest.raises(discomfort.ValidationError) as info:
        asyncio.run(d.run([wf]))
    assert info.value.node_id == "1" and info.value.input_name == "color"


def test_node_failing_mid_loop_keeps_the_last_good_iteration(d):
    with d.Context() as ctx:
        with pytest.raises(discomfort.ExecutionError) as info:
            asyncio.run(d.run([counter_workflow(1, fail_at=4)], inputs={"counter": 0}, iterations=10, context=ctx))
        err = info.value
        assert isinstance(err, RuntimeError)
        assert (err.node_id, err.class_type, err.iteration) == ("3", "DiscomfortTestFailAt", 3)
        assert "test failure: value reached 4" in str(err) and "test failure" in err.traceback
        assert ctx.load("counter") == 3


def test_missing_input_is_a_key_error_naming_the_port(d):
    with pytest.raises(discomfort.NotFoundError) as info:
        asyncio.run(d.run([counter_workflow(1)]))
    assert isinstance(info.value, KeyError) and info.value.port == "counter"
    assert "has no value" in str(info.value)


def test_argument_errors(d, tmp_path):
    with pytest.raises(FileNotFoundError):
        asyncio.run(d.run([str(tmp_path / "missing.json")]))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError):
        asyncio.run(d.run([str(bad)]))
    with pytest.raises(TypeError):
        asyncio.run(d.run([42]))
    with pytest.raises(ValueError):
        asyncio.run(d.run([]))


KINDS = {"invalid_argument": ValueError, "parse": ValueError, "not_found": KeyError, "already_exists": ValueError,
         "type_mismatch": TypeError, "cycle": ValueError, "validation": ValueError, "execution": RuntimeError,
         "io": OSError, "no_space": OSError, "cancelled": RuntimeError, "timeout": TimeoutError,
         "python": RuntimeError, "internal": RuntimeError}


def test_the_error_table_and_the_exception_classes_agree():
    from discomfort import _core, errors
    ids = [code for code, _ in _core.error_codes()]
    assert ids[0] == "ok" and len(set(ids)) == len(ids)
    # One exception class per engine error code, and a documented built-in kind for each.
    assert set(ids[1:]) == set(KINDS) == {cls.code for cls in errors._BY_CODE.values()}


@pytest.mark.parametrize("code,base", sorted(KINDS.items()))
def test_every_engine_error_code_maps_to_a_documented_kind(code, base):
    import discomfort_testing
    with pytest.raises(discomfort.DiscomfortError) as info:
        discomfort_testing.raise_status(code, "boom")
    err = info.value
    assert isinstance(err, base) and err.code == code
    assert (err.node_id, err.class_type, err.iteration, err.traceback) == ("7", "KSampler", 2, "Traceback: test")
    assert "boom" in str(err) and "node 7 (KSampler)" in str(err)


# ---------------------------------------------------------------- per-iteration timeout

def hang_workflow(hang_at, seconds=30.0):
    """counter -> +1 -> (hangs, checking the interrupt, when it equals hang_at) -> counter"""
    return {
        "1": port("counter"),
        "2": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("1"), "amount": 1}},
        "3": {"class_type": "DiscomfortTestHangAt",
              "inputs": {"value": link("2"), "hang_at": hang_at, "seconds": seconds,
                         "check_interrupt": True, "marker": ""}},
        "4": port("counter", link("3")),
    }


def test_iteration_timeout_raises_timeout_error_and_keeps_the_last_good_iteration(d):
    async def main():
        with d.Context() as ctx:
            ctx.save("counter", 0)
            started = time.monotonic()
            with pytest.raises(discomfort.RunTimeoutError) as info:
                # Iterations 0 and 1 take 1 and 2; the third (value 3) hangs past the 2 s limit.
                await d.run([hang_workflow(3)], iterations=5, context=ctx, iteration_timeout=2.0)
            elapsed = time.monotonic() - started
            return info.value, elapsed, ctx.load("counter")

    error, elapsed, counter = asyncio.run(main())
    assert isinstance(error, TimeoutError)
    assert error.node_id == "3", str(error)
    assert "iteration 2" in str(error)
    assert elapsed < 15
    assert counter == 2
    # The engine is usable right after.
    assert asyncio.run(d.run([counter_workflow(1)], inputs={"counter": 1})) == {"counter": 2}


def test_iteration_timeout_is_validated(d):
    with pytest.raises(ValueError):
        asyncio.run(d.run([counter_workflow(1)], inputs={"counter": 1}, iteration_timeout=-1))
