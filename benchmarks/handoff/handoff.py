"""Tensor handoff: what carrying a big tensor from one iteration to the next costs.

For each size: (a) carried in RAM through a real Discomfort loop (INPUT port → pass-through node →
OUTPUT port, the engine's per-iteration time and the process RSS), and through the context store alone
(save + load); (b) spilled to a safetensors file by the context store and reloaded (memory-mapped, then
read once in full, from a cold page cache); (c) torch.save + base64 encode and decode, the nested
server's way. Next to them, measured in the same process: memcpy (tensor copy) and the disk's
sequential write (buffered, and with fsync) and cold/warm read bandwidth of a file of the same size.

    PYTHONPATH=build/release/python python handoff.py --work DIR [--sizes-gib 1,4] [--result out.json]
"""

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import mem_available  # noqa: E402

GIB = 1 << 30


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def disk_bandwidth(directory, nbytes, repeats=3, chunk=64 << 20):
    """Sequential write (buffered; buffered + fsync) and read (cold; warm) of an nbytes file, GB/s,
    each the median of `repeats` tries (the disk is shared with other work)."""
    import numpy as np
    path = os.path.join(directory, "disk_probe.bin")
    buf = np.random.default_rng(0).integers(0, 255, size=chunk, dtype=np.uint8).tobytes()
    dest = bytearray(chunk)
    tries = {"write_buffered_GBps": [], "write_fsync_GBps": [], "read_cold_GBps": [], "read_warm_GBps": []}

    def write(sync):
        if os.path.exists(path):
            os.remove(path)
        t0 = time.perf_counter()
        with open(path, "wb", buffering=0) as f:
            for _ in range(nbytes // chunk):
                f.write(buf)
            if sync:
                os.fsync(f.fileno())
        return nbytes / (time.perf_counter() - t0) / 1e9

    def read():
        t0 = time.perf_counter()
        with open(path, "rb", buffering=0) as f:
            while f.readinto(dest):
                pass
        return nbytes / (time.perf_counter() - t0) / 1e9

    for _ in range(repeats):
        tries["write_buffered_GBps"].append(write(False))
        drop_cache(path)  # flushes the dirty pages (outside the timing) before the next test
        tries["write_fsync_GBps"].append(write(True))
        drop_cache(path)
        tries["read_cold_GBps"].append(read())
        tries["read_warm_GBps"].append(read())
    os.remove(path)
    out = {k: statistics.median(v) for k, v in tries.items()}
    out["tries"] = tries
    return out


def memcpy_bandwidth(nbytes, repeats=3):
    import torch
    src = torch.ones(nbytes // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # fault the pages in first
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        best.append(time.perf_counter() - t0)
    return {"GBps": nbytes / statistics.median(best) / 1e9, "threads": torch.get_num_threads()}


def big_tensor(gib):
    import torch
    # IMAGE-shaped [B, H, W, C] float32, exactly gib GiB; filled so every page is really allocated.
    t = torch.empty((gib, 8192, 8192, 4), dtype=torch.float32)
    t.fill_(0.5)
    t[0, 0, 0, 0] = 0.25
    return t


async def engine_carry(d, ctx, tensor, iterations):
    """Per-iteration time of a real loop carrying `tensor` through a pass-through node, and RSS growth."""
    import identity_node
    ctx.save("x", tensor)
    identity_node.SEEN_PTRS.clear()
    await d.run_detailed([os.path.join(HERE, "carry.json")], context=ctx, iterations=2)  # warm-up
    rss0 = rss()
    res = await d.run_detailed([os.path.join(HERE, "carry.json")], context=ctx, iterations=iterations)
    rss1 = rss()
    out = ctx.load("x")
    same = out.data_ptr() == tensor.data_ptr() and all(p == tensor.data_ptr() for p in identity_node.SEEN_PTRS)
    times = [r["seconds"] for r in res["reports"]]
    return {"iteration_median_s": statistics.median(times), "iteration_max_s": max(times), "iterations": iterations,
            "rss_growth_bytes": rss1 - rss0, "same_storage_every_iteration": same}


def context_pointer(ctx, tensor, repeats=1000):
    ctx.save("p", tensor)
    t0 = time.perf_counter()
    for _ in range(repeats):
        ctx.save("p", tensor)
        back = ctx.load("p")
    per = (time.perf_counter() - t0) / repeats
    same = back.data_ptr() == tensor.data_ptr()
    ctx.delete("p")
    return {"save_plus_load_s": per, "same_storage": same}


def spill_reload(d, tensor, directory):
    """Spill through the context store and reload from a cold page cache (map, then read it all once)."""
    import torch
    nbytes = tensor.numel() * tensor.element_size()
    with d.Context(max_ram_gb=1000, temp_root=directory) as ctx:
        ctx.save("s", tensor)
        t0 = time.perf_counter()
        ctx._store().spill("s")
        spill_s = time.perf_counter() - t0
        info = ctx.get_storage_info("s")
        assert info["storage_type"] == "disk", info
        drop_cache(info["path"])
        t0 = time.perf_counter()
        back = ctx.load("s")
        map_s = time.perf_counter() - t0
        total = float(back.sum(dtype=torch.float64))  # touches every page: the real read from disk
        reload_s = time.perf_counter() - t0
        equal = bool(torch.equal(back, tensor))
        del back
    expected = float(tensor.sum(dtype=torch.float64))
    return {"spill_s": spill_s, "spill_GBps": nbytes / spill_s / 1e9, "reload_map_s": map_s,
            "reload_and_read_s": reload_s, "reload_GBps": nbytes / reload_s / 1e9,
            "round_trip_equal": equal and total == expected, "spill_fsynced": False}


def base64_round_trip(tensor):
    """torch.save + base64 encode, then base64 decode + torch.load (no HTTP, no JSON: a lower bound)."""
    import torch
    nbytes = tensor.numel() * tensor.element_size()
    t0 = time.perf_counter()
    buf = io.BytesIO()
    torch.save(tensor, buf)
    payload = base64.b64encode(buf.getbuffer())
    del buf
    enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw = base64.b64decode(payload)
    del payload
    back = torch.load(io.BytesIO(raw), weights_only=True)
    del raw
    dec = time.perf_counter() - t0
    equal = bool(torch.equal(back, tensor))
    return {"encode_s": enc, "decode_s": dec, "round_trip_s": enc + dec, "round_trip_GBps": nbytes / (enc + dec) / 1e9,
            "round_trip_equal": equal}


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--sizes-gib", default="1,4")
    ap.add_argument("--base64-max-gib", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--result", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)

    import torch
    from discomfort import Discomfort
    d = await Discomfort.create(work_dir=os.path.join(a.work, "comfy"), cpu=True,
                                extra_nodes=[os.path.join(HERE, "identity_node.py")])
    sys.path.insert(0, HERE)
    res = {"memcpy": memcpy_bandwidth(GIB), "disk": disk_bandwidth(a.work, GIB), "sizes": {}}
    print(f"handoff: memcpy {res['memcpy']['GBps']:.1f} GB/s, disk {res['disk']}", file=sys.stderr)
    with d.Context(max_ram_gb=1000) as ctx:  # small = 4 KiB, the reference for "independent of size"
        res["sizes"]["4KiB"] = {"bytes": 4096, "engine_carry": await engine_carry(
            d, ctx, torch.full((1, 16, 16, 4), 0.5), a.iterations), "context": context_pointer(ctx, torch.zeros(1024))}
    for gib in [int(s) for s in a.sizes_gib.split(",") if s]:
        need = gib * GIB * 2.2  # the tensor + a page-cache copy of its spill file, with room to spare
        if mem_available() < need:
            res["sizes"][f"{gib}GiB"] = {"skipped": f"needs ~{need / GIB:.0f} GiB available, had {mem_available() / GIB:.1f}"}
            continue
        t = big_tensor(gib)
        entry = {"bytes": gib * GIB}
        with d.Context(max_ram_gb=1000) as ctx:
            entry["engine_carry"] = await engine_carry(d, ctx, t, a.iterations)
            entry["context"] = context_pointer(ctx, t)
        entry["spill_reload"] = spill_reload(d, t, a.work)
        if gib <= a.base64_max_gib and mem_available() > gib * GIB * 3.5:
            entry["base64"] = base64_round_trip(t)
        else:
            entry["base64"] = {"skipped": "memory: payload copies need ~3.5x the tensor; rate from the 1 GiB run applies"}
        res["sizes"][f"{gib}GiB"] = entry
        print(f"handoff: {gib} GiB: {json.dumps(entry)}", file=sys.stderr)
        del t
    await d.shutdown()
    with open(a.result, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    asyncio.run(main())
