"""Tensor handoff: what carrying a big tensor from one iteration to the next costs.

For each size: (a) carried in RAM through a real Discomfort loop (INPUT port → pass-through node →
OUTPUT port, the engine's per-iteration time and the process RSS), and through the context store alone
(save + load); (b) spilled to a safetensors file by the context store and reloaded from a cold page
cache, in both reload modes (memory-mapped, the default, then one byte of every page touched; read in
full), each spill next to a direct-I/O write of the same size (`dd oflag=direct`: the disk's sustained
write speed, which a page-cache burst of a buffered write would overstate) and each reload next to a
cold sequential read() of the same file; (c) torch.save + base64 encode and decode, the nested
server's way. Next to them, measured in the same process: memcpy (tensor copy) and the disk's
sequential write (direct; buffered, and with fsync) and cold/warm read bandwidth of a 1 GiB file.

    PYTHONPATH=build/release/python python handoff.py --work DIR [--sizes-gib 1,4,8] [--result out.json]

--device cuda runs it with the tensors on the GPU (ComfyUI there too): spills go device -> pinned
staging -> disk and reloads come back to the device; host<->device copy bandwidths are measured beside
them, and torch.save + base64 is left to the CPU run. Sizes below 1 GiB (0.25) are for dry runs.
"""

import argparse
import asyncio
import base64
import io
import json
import os
import shutil
import statistics
import subprocess
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


DD_BLOCK = 16 << 20  # the direct-write probe's request size, the spill writer's own


def direct_write(path, nbytes):
    """`dd oflag=direct` of nbytes (whole 16 MiB blocks) into `path`, removed after: the disk's sustained
    sequential write speed, no page cache involved; GB/s. Not fsynced, as spill files are not: with
    O_DIRECT each write returns once the device has the data."""
    count = max(1, nbytes // DD_BLOCK)
    t0 = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", f"bs={DD_BLOCK}", f"count={count}", "oflag=direct",
                    "status=none"], check=True)
    seconds = time.perf_counter() - t0
    os.remove(path)
    return count * DD_BLOCK / seconds / 1e9


def disk_bandwidth(directory, nbytes, repeats=3, chunk=64 << 20):
    """Sequential write (direct; buffered; buffered + fsync) and read (cold; warm) of an nbytes file,
    GB/s, each the median of `repeats` tries (the disk is shared with other work)."""
    import numpy as np
    path = os.path.join(directory, "disk_probe.bin")
    buf = np.random.default_rng(0).integers(0, 255, size=chunk, dtype=np.uint8).tobytes()
    dest = bytearray(chunk)
    tries = {"write_direct_GBps": [], "write_buffered_GBps": [], "write_fsync_GBps": [], "read_cold_GBps": [],
             "read_warm_GBps": []}

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
        tries["write_direct_GBps"].append(direct_write(path, nbytes))
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


def device_copy_bandwidth(nbytes, device, repeats=3):
    """Host->device and device->host copies from/to pinned memory, and device->device, GB/s (medians)."""
    import torch
    host = torch.ones(nbytes // 4, dtype=torch.float32).pin_memory()
    dev = torch.empty_like(host, device=device)
    dev2 = torch.empty_like(dev)
    out = {}
    for name, dst, src in (("host_to_device_GBps", dev, host), ("device_to_host_GBps", host, dev),
                           ("device_to_device_GBps", dev2, dev)):
        dst.copy_(src)
        torch.cuda.synchronize(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            dst.copy_(src)
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        out[name] = nbytes / statistics.median(times) / 1e9
    return out


def big_tensor(gib, device="cpu"):
    import torch
    # IMAGE-shaped [B, H, W, C] float32, exactly gib GiB (whole GiB, or fewer rows below one); filled so
    # every page is really allocated.
    batch, rows = (int(gib), 8192) if gib >= 1 else (1, int(gib * 8192))
    t = torch.empty((batch, rows, 8192, 4), dtype=torch.float32, device=device)
    t.fill_(0.5)
    t[0, 0, 0, 0] = 0.25
    return t


async def engine_carry(d, ctx, tensor, iterations):
    """Per-iteration time of a real loop carrying `tensor` through a pass-through node, and RSS growth
    (and the device's allocated memory growth for a device tensor)."""
    import identity_node
    import torch
    ctx.save("x", tensor)
    identity_node.SEEN_PTRS.clear()
    await d.run_detailed([os.path.join(HERE, "carry.json")], context=ctx, iterations=2)  # warm-up
    on_device = tensor.is_cuda
    if on_device:
        torch.cuda.synchronize(tensor.device)
        device0 = torch.cuda.memory_allocated(tensor.device)
    rss0 = rss()
    res = await d.run_detailed([os.path.join(HERE, "carry.json")], context=ctx, iterations=iterations)
    rss1 = rss()
    out = ctx.load("x")
    same = out.data_ptr() == tensor.data_ptr() and all(p == tensor.data_ptr() for p in identity_node.SEEN_PTRS)
    times = [r["seconds"] for r in res["reports"]]
    result = {"iteration_median_s": statistics.median(times), "iteration_max_s": max(times), "iterations": iterations,
              "rss_growth_bytes": rss1 - rss0, "same_storage_every_iteration": same}
    if on_device:
        torch.cuda.synchronize(tensor.device)
        result["device"] = str(out.device)
        result["device_memory_growth_bytes"] = torch.cuda.memory_allocated(tensor.device) - device0
    return result


async def flush_executor_cache(d):
    """Runs the carry workflow once on a tiny tensor, so ComfyUI's output cache lets go of the big one
    (it keeps the last outputs of every node) before the spill/reload rounds need the room."""
    import torch
    with d.Context(max_ram_gb=1000) as ctx:
        ctx.save("x", torch.zeros((1, 1, 1, 4)))
        await d.run_detailed([os.path.join(HERE, "carry.json")], context=ctx, iterations=1)


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


def cold_read(path, chunk=64 << 20):
    """Cold sequential read() of a file, exactly as disk_bandwidth reads its probe; GB/s."""
    drop_cache(path)
    dest = bytearray(chunk)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(dest):
            pass
    return os.path.getsize(path) / (time.perf_counter() - t0) / 1e9


def checksum(t):
    """float64 sum, a 64 MiB slice at a time: sum(dtype=float64) of the whole tensor would first make a
    float64 copy of it (16 GiB for the 8 GiB tensor)."""
    import torch
    return sum(float(piece.sum(dtype=torch.float64)) for piece in t.reshape(-1).split(1 << 24))


def touch_pages(t):
    """Reads one byte of every 4 KiB page: a mapped tensor's pages fault in from the disk here."""
    import torch
    flat = t.reshape(-1).view(torch.uint8)
    return int(flat[::4096].sum(dtype=torch.int64))


def page_cache_share(path):
    """The fraction of the file's pages in the page cache (mincore through a mapping), or None."""
    import ctypes
    import mmap
    size = os.path.getsize(path)
    if size == 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    finally:
        os.close(fd)
    if addr in (None, ctypes.c_void_p(-1).value):
        return None
    try:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = ctypes.create_string_buffer(pages)
        if libc.mincore(addr, size, vec) != 0:
            return None
        return sum(b & 1 for b in vec.raw) / pages
    finally:
        libc.munmap(addr, size)


def spill_reload(d, holder, directory, mode, repeats):
    """Spill through the context store and reload from a cold page cache, `repeats` times, with the
    store's reload `mode` ("read": the file read in full; "map": mapped, pages fault in on touch).

    Each round, beside the spill, a direct-I/O write of the same size (before or after it in turn), and
    beside the reload a cold sequential read() of the same spill file (the disk probe's way) give the
    bandwidths to compare with, so a busy shared disk affects both alike. The tensor
    cycles: holder[0] is saved, the holder lets go of it (the 8 GiB case has no room for two), and
    the reloaded copy is spilled again next round and handed back at the end."""
    import torch
    tensor = holder.pop()
    nbytes = tensor.numel() * tensor.element_size()
    expected_sum = checksum(tensor)
    stride = 4097  # a 1-in-4097 sample of the elements, kept to check every round trip
    sample = tensor.reshape(-1)[::stride].clone()
    rounds = []
    os.environ["DISCOMFORT_RELOAD"] = mode  # read by the context when it opens
    try:
        with d.Context(max_ram_gb=1000, temp_root=directory) as ctx:
            ctx.save("s", tensor)
            del tensor
            for i in range(repeats):
                probe_first = i % 2 == 1
                dd_probe = os.path.join(directory, "direct_write_probe.bin")
                direct_GBps = direct_write(dd_probe, nbytes) if probe_first else None
                t0 = time.perf_counter()
                ctx._store().spill("s")
                spill_s = time.perf_counter() - t0
                if not probe_first:
                    direct_GBps = direct_write(dd_probe, nbytes)
                info = ctx.get_storage_info("s")
                assert info["storage_type"] == "disk", info
                cached = page_cache_share(info["path"])
                # A VM's host may cache what the guest read, making a second read of the same blocks
                # faster: the cold read() goes before the reload or after it in turn, on a hard link
                # that outlives the reload's removal of the spill file.
                probe = os.path.join(directory, "reload_probe.bin")
                if os.path.exists(probe):
                    os.remove(probe)
                os.link(info["path"], probe)
                reload_first = i % 2 == 0
                read_GBps = None if reload_first else cold_read(probe)
                drop_cache(info["path"])
                if mem_available() < nbytes * 1.1 + GIB:  # the machine is shared: never push it into the OOM killer
                    os.remove(probe)
                    raise MemoryError(f"reload of {nbytes / GIB:.0f} GiB needs ~{(nbytes * 1.1 + GIB) / GIB:.0f} GiB "
                                      f"available, had {mem_available() / GIB:.1f}")
                t0 = time.perf_counter()
                back = ctx.load("s")
                call_s = time.perf_counter() - t0
                touch_pages(back)  # touches every page: the real read from disk when mapped
                reload_s = time.perf_counter() - t0
                if reload_first:
                    read_GBps = cold_read(probe)
                os.remove(probe)
                equal = (bool(torch.equal(back.reshape(-1)[::stride], sample))
                         and checksum(back) == expected_sum)
                rounds.append({"spill_s": spill_s, "spill_GBps": nbytes / spill_s / 1e9,
                               "direct_write_same_size_GBps": direct_GBps,
                               "spill_vs_direct_write": nbytes / spill_s / 1e9 / direct_GBps,
                               "cached_after_spill": cached, "probe_first": probe_first,
                               "reload_call_s": call_s,
                               "reload_and_read_s": reload_s, "reload_GBps": nbytes / reload_s / 1e9,
                               "cold_read_same_file_GBps": read_GBps,
                               "reload_vs_cold_read": nbytes / reload_s / 1e9 / read_GBps,
                               "reload_first": reload_first, "equal": equal})
                print(f"handoff: {nbytes / GIB:.0f} GiB reload={mode}: {json.dumps(rounds[-1])}", file=sys.stderr,
                      flush=True)
                del back
            holder.append(ctx.load("s"))
            ctx.delete("s")
    finally:
        os.environ.pop("DISCOMFORT_RELOAD", None)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]
           if k not in ("equal", "reload_first", "probe_first", "cached_after_spill")}
    cached = [r["cached_after_spill"] for r in rounds if r["cached_after_spill"] is not None]
    return {"mode": mode, "spill_s": med["spill_s"], "spill_GBps": med["spill_GBps"],
            "direct_write_same_size_GBps": med["direct_write_same_size_GBps"],
            "spill_vs_direct_write": med["spill_vs_direct_write"],
            "cached_after_spill_max": max(cached) if cached else None,
            "reload_call_s": med["reload_call_s"], "reload_map_s": med["reload_call_s"],  # old name, kept for report.py
            "reload_and_read_s": med["reload_and_read_s"], "reload_GBps": med["reload_GBps"],
            "cold_read_same_file_GBps": med["cold_read_same_file_GBps"],
            "reload_vs_cold_read": med["reload_vs_cold_read"],
            "round_trip_equal": all(r["equal"] for r in rounds), "spill_fsynced": False, "rounds": rounds}


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
    ap.add_argument("--reload-repeats", type=int, default=3)
    ap.add_argument("--result", required=True)
    ap.add_argument("--device", default="cpu", help="where the big tensors live: cpu (default) or cuda")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)

    import torch
    from discomfort import Discomfort
    d = await Discomfort.create(work_dir=os.path.join(a.work, "comfy"), cpu=a.device == "cpu",
                                extra_nodes=[os.path.join(HERE, "identity_node.py")])
    sys.path.insert(0, HERE)
    res = {"memcpy": memcpy_bandwidth(GIB), "disk": disk_bandwidth(a.work, GIB), "sizes": {}}
    print(f"handoff: memcpy {res['memcpy']['GBps']:.1f} GB/s, disk {res['disk']}", file=sys.stderr)
    if a.device != "cpu":
        res["device"] = {"name": torch.cuda.get_device_name(a.device), "copy": device_copy_bandwidth(GIB, a.device)}
        print(f"handoff: {res['device']}", file=sys.stderr, flush=True)
    with d.Context(max_ram_gb=1000) as ctx:  # small = 4 KiB, the reference for "independent of size"
        res["sizes"]["4KiB"] = {"bytes": 4096, "engine_carry": await engine_carry(
            d, ctx, torch.full((1, 16, 16, 4), 0.5), a.iterations), "context": context_pointer(ctx, torch.zeros(1024))}
    for gib in [int(float(s)) if float(s) >= 1 else float(s) for s in a.sizes_gib.split(",") if s]:
        # The tensor, and room to spare; the reload takes its place (the spill_reload cycle) and page
        # cache is reclaimable, so nothing else needs a second copy.
        need = gib * GIB * 1.15 + 2 * GIB
        if mem_available() < need:
            res["sizes"][f"{gib}GiB"] = {"skipped": f"needs ~{need / GIB:.0f} GiB available, had {mem_available() / GIB:.1f}"}
            continue
        free_disk = shutil.disk_usage(a.work).free
        if free_disk < gib * GIB * 2.5:  # the spill file and the direct-write probe beside it
            res["sizes"][f"{gib}GiB"] = {"skipped": f"needs ~{gib * 2.5:.0f} GiB of free disk, had {free_disk / GIB:.1f}"}
            continue
        holder = [big_tensor(gib, a.device)]
        entry = {"bytes": int(gib * GIB)}
        with d.Context(max_ram_gb=1000) as ctx:
            entry["engine_carry"] = await engine_carry(d, ctx, holder[0], a.iterations)
            entry["context"] = context_pointer(ctx, holder[0])
        await flush_executor_cache(d)
        # "map" is the store's default (lazy, copy-free); "read" the full parallel read, side by side.
        for key, mode in (("spill_reload", "map"), ("spill_reload_read", "read")):
            try:
                entry[key] = spill_reload(d, holder, a.work, mode, a.reload_repeats)
            except MemoryError as e:
                entry[key] = {"skipped": str(e)}
        if "skipped" in entry["spill_reload"] or not holder:  # the tensor went with the skipped round's context
            res["sizes"][f"{gib}GiB"] = {"skipped": entry["spill_reload"].get("skipped", "reload skipped"),
                                         "partial": entry}
            continue
        t = holder.pop()
        b64_need = gib * GIB * 3.5
        if a.device != "cpu":
            entry["base64"] = {"skipped": "not on the device: the nested server's envelope is a CPU torch.save "
                                          "(the CPU run measures it)"}
        elif gib <= a.base64_max_gib and mem_available() > b64_need:
            entry["base64"] = base64_round_trip(t)
        else:
            entry["base64"] = {"skipped": f"memory: torch.save + base64 needs ~3.5x the tensor ({b64_need / GIB:.0f} GiB), "
                                          f"had {mem_available() / GIB:.1f} GiB available (limit --base64-max-gib "
                                          f"{a.base64_max_gib}); it scales linearly: the 1 GiB rate applies"}
        res["sizes"][f"{gib}GiB"] = entry
        print(f"handoff: {gib} GiB: {json.dumps({k: v for k, v in entry.items() if not k.startswith('spill_reload')})}",
              file=sys.stderr, flush=True)
        del t
    await d.shutdown()
    with open(a.result, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    asyncio.run(main())
