"""WorkflowContext: the original's API over the C++ context store."""

import os

import pytest
import torch

import discomfort


def test_save_load_keys_and_info(d):
    with d.Context() as ctx:
        t = torch.zeros(2, 3)
        ctx.save("t", t)
        ctx.save("n", 42)
        ctx.save("s", "text")
        assert ctx.load("t") is t or ctx.load("t").data_ptr() == t.data_ptr()
        assert ctx.load("n") == 42 and ctx.load("s") == "text"
        assert sorted(ctx.list_keys()) == ["n", "s", "t"]
        info = ctx.get_storage_info("t")
        assert info["storage_type"] == "ram" and info["pass_by"] == "val" and info["size"] == 24
        assert info["shape"] == [2, 3] and info["dtype"] == "float32"
        assert ctx.get_storage_info("missing") is None
        usage = ctx.get_usage()
        assert usage["stored_keys_count"] == 3 and usage["ram_usage_bytes"] >= 24
        assert usage["ram_capacity_bytes"] > 0 and "temp_disk_usage_mb" in usage
        with pytest.raises(KeyError):
            ctx.load("missing")


def test_use_ram_false_puts_tensors_on_disk(d):
    with d.Context() as ctx:
        t = torch.arange(1000, dtype=torch.float32)
        ctx.save("t", t, use_ram=False)
        info = ctx.get_storage_info("t")
        assert info["storage_type"] == "disk" and os.path.exists(info["path"])
        assert ctx.get_usage()["temp_disk_usage_bytes"] >= 4000
        assert torch.equal(ctx.load("t"), t)


def test_ram_budget_spills_least_recently_used(d):
    with d.Context(max_ram_gb=0.000_01) as ctx:  # 10 kB
        for i in range(4):
            ctx.save(f"t{i}", torch.full((1000,), float(i)))  # 4 kB each
        spilled = [k for k in ctx.list_keys() if ctx.get_storage_info(k)["storage_type"] == "disk"]
        assert "t0" in spilled
        assert torch.equal(ctx.load("t0"), torch.zeros(1000))


def test_pass_by_ref_stores_a_workflow(d):
    with d.Context() as ctx:
        recipe = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}}}
        ctx.save("model", recipe, pass_by="ref")
        assert ctx.load("model") == recipe
        assert ctx.get_storage_info("model")["pass_by"] == "ref"
        with pytest.raises(TypeError):
            ctx.export_data("model", "/tmp/never.json")
        with pytest.raises(TypeError):
            ctx.save("model", 42, pass_by="ref")
        with pytest.raises(ValueError):
            ctx.save("x", 1, pass_by="neither")


def test_export_moves_the_value_out(d, tmp_path):
    with d.Context() as ctx:
        ctx.save("t", torch.ones(2, 2))
        ctx.save("j", {"a": [1, 2]})
        ctx.save("o", object.__new__(Box))
        ctx.export_data("t", str(tmp_path / "t.safetensors"))
        ctx.export_data("j", str(tmp_path / "sub" / "j.json"))
        ctx.export_data("o", str(tmp_path / "o.pkl"))
        assert ctx.list_keys() == []
        with pytest.raises(KeyError):
            ctx.export_data("t", str(tmp_path / "again.safetensors"))
        ctx.save("t", torch.ones(1))
        with pytest.raises(FileExistsError):
            ctx.export_data("t", str(tmp_path / "t.safetensors"))
        ctx.export_data("t", str(tmp_path / "t.safetensors"), overwrite=True)
        # The files read back.
        ctx.import_data("t2", str(tmp_path / "t.safetensors"))
        ctx.import_data("j2", str(tmp_path / "sub" / "j.json"))
        ctx.import_data("o2", str(tmp_path / "o.pkl"))
        assert torch.equal(ctx.load("t2"), torch.ones(1))
        assert ctx.load("j2") == {"a": [1, 2]}
        assert isinstance(ctx.load("o2"), Box)


class Box:
    pass


def test_shutdown_is_idempotent_and_final(d):
    ctx = d.Context()
    ctx.save("x", 1)
    ctx.shutdown()
    ctx.shutdown()
    with pytest.raises(ValueError):
        ctx.load("x")


def test_attach_by_run_id(d):
    with d.Context() as ctx:
        ctx.save("x", 5)
        other = discomfort.WorkflowContext(run_id=ctx.run_id, create=False)
        assert other.load("x") == 5
        other.shutdown()  # not the creator: the values stay
        assert ctx.load("x") == 5
    with pytest.raises(KeyError):
        discomfort.WorkflowContext(run_id=ctx.run_id, create=False)


def test_snapshot_round_trip(d, tmp_path):
    with d.Context() as ctx:
        ctx.save("t", torch.arange(4.0))
        ctx.save("n", 7)
        ctx.save("o", Box())
        report = ctx.save_snapshot(str(tmp_path / "snap"))
        assert set(report["keys"]) == {"t", "n"} and report["not_persisted"] == ["o"]
    with d.Context() as fresh:
        fresh.load_snapshot(str(tmp_path / "snap"))
        assert torch.equal(fresh.load("t"), torch.arange(4.0)) and fresh.load("n") == 7
