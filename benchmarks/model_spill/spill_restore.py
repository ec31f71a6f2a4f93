"""A model's spill and restore, in one process, next to the disk and to ComfyUI's own way.

A random-weight SD1.5 checkpoint is loaded by ComfyUI's own loader (comfy.sd.load_checkpoint_guess_config,
what CheckpointLoaderSimple calls) and its MODEL, CLIP and VAE are saved in a Discomfort context. Per round:

1. ComfyUI's way: the checkpoint read again from a cold page cache (fsync + POSIX_FADV_DONTNEED on the
   file), then once more with the file in the page cache: what unloading a model and loading the checkpoint
   again costs, without and with the kernel's help;
2. one sampling iteration with the models in RAM (CLIP encode, KSampler 1 step on an 8x8 latent, VAE decode:
   the two-model loop's sample workflow), timed after a warm-up one;
3. spill ("write"): the context writes each model's weights to safetensors and swaps them in place for
   file-backed tensors (`Context.spill`, the budget's own path), next to `dd oflag=direct` of the same
   number of bytes (before or after it, in turn);
4. restore by page-in: the spill files dropped from the page cache, one byte of every page of every weight
   read (the kernel faults the file back in), next to a cold sequential read() of the same files;
5. spill again ("page_out": the weights are file-backed already, nothing is written, the pages are given
   back), the cache dropped, and the iteration again: the first use after a spill pages the weights in
   through ComfyUI's own model management; its extra time over the iteration right after it (every page
   back) is that page-in inside a real use.

The image after the spill must equal step 2's. Helpers (direct write, cold read, cache drop) are the
handoff benchmark's. Prints progress to stderr; writes --result.

    PYTHONPATH=build/release/python .venv/bin/python benchmarks/model_spill/spill_restore.py \\
        --work DIR --checkpoints DIR --result out.json [--repeats 2]
"""

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

from handoff.handoff import cold_read, direct_write, drop_cache, touch_pages  # noqa: E402

COUNT_LOADS = os.path.join(REPO, "tests", "python", "models_budget", "count_loads.py")
KEYS = ("model", "clip", "vae")
GIB = 1 << 30


def log(msg):
    print(f"[bench] model_spill: {msg}", file=sys.stderr, flush=True)


def load_checkpoint(path):
    """MODEL, CLIP, VAE as CheckpointLoaderSimple makes them."""
    import comfy.sd
    import folder_paths
    out = comfy.sd.load_checkpoint_guess_config(path, output_vae=True, output_clip=True,
                                                embedding_directory=folder_paths.get_folder_paths("embeddings"))
    return out[0], out[1], out[2]


def node(name):
    import nodes
    cls = nodes.NODE_CLASS_MAPPINGS[name]
    return getattr(cls(), cls.FUNCTION)


def iteration(model, clip, vae, seed=0):
    """The two-model loop's sample workflow, called node by node: (image, seconds)."""
    import nodes
    import torch
    t0 = time.perf_counter()
    with torch.inference_mode():
        positive = node("CLIPTextEncode")(text="a fox in the snow", clip=clip)[0]
        negative = node("CLIPTextEncode")(text="low quality", clip=clip)[0]
        latent = node("EmptyLatentImage")(width=64, height=64, batch_size=1)[0]
        samples = nodes.common_ksampler(model, seed, 1, 6.0, "euler", "normal", positive, negative, latent,
                                        denoise=1.0)[0]
        image = vae.decode(samples["samples"])
    return image.clone(), time.perf_counter() - t0


def touch_weights(model, clip, vae):
    """Reads one byte of every page of every weight: a file-backed weight's pages fault in here."""
    for module in (model.model, clip.cond_stage_model, vae.first_stage_model):
        for t in list(module.parameters()) + list(module.buffers()):
            if t is not None and t.device.type == "cpu" and t.numel() > 0:
                touch_pages(t.data)


def spill_files(ctx):
    files = []
    for key in KEYS:
        info = ctx.get_storage_info(key) or {}
        files += info.get("spill_files", [])
    return files


def one_round(d, ckpt, work, i):
    import torch
    r = {}
    drop_cache(ckpt)
    t0 = time.perf_counter()
    model, clip, vae = load_checkpoint(ckpt)
    r["reload_checkpoint_cold_s"] = time.perf_counter() - t0
    del model, clip, vae
    gc.collect()
    t0 = time.perf_counter()
    model, clip, vae = load_checkpoint(ckpt)  # the file is in the page cache now
    r["reload_checkpoint_warm_s"] = time.perf_counter() - t0
    drop_cache(ckpt)
    iteration(model, clip, vae)  # warm-up: first-use costs (kernels, model management) out of the timing
    reference, r["iteration_in_ram_s"] = iteration(model, clip, vae)
    with d.Context(max_ram_gb=1000, temp_root=work) as ctx:
        for key, value in zip(KEYS, (model, clip, vae)):
            ctx.save(key, value)
        nbytes = sum(ctx.get_storage_info(k)["bytes_by_device"].get("cpu", 0) for k in KEYS)
        r["model_bytes"] = nbytes
        probe = os.path.join(work, "direct_write_probe.bin")
        probe_first = i % 2 == 1
        if probe_first:
            r["direct_write_same_bytes_GBps"] = direct_write(probe, nbytes)
        t0 = time.perf_counter()
        for key in KEYS:
            ctx._store().spill(key)
        r["spill_write_s"] = time.perf_counter() - t0
        if not probe_first:
            r["direct_write_same_bytes_GBps"] = direct_write(probe, nbytes)
        usage = ctx.get_usage()
        r["host_spilled_bytes"] = usage.get("host_spilled_bytes")
        files = spill_files(ctx)
        r["spill_file_bytes"] = sum(os.path.getsize(f) for f in files)
        r["spill_write_GBps"] = r["spill_file_bytes"] / r["spill_write_s"] / 1e9
        r["spill_vs_direct_write"] = r["spill_write_GBps"] / r["direct_write_same_bytes_GBps"]
        # A cold read() of the same files: the disk's read speed for these bytes, before the page-in or
        # after it in turn (a VM's host may cache what the guest read). Pages a mapping holds cannot be
        # dropped from the cache, so the later read waits until the second spill has paged them out.
        read_first = i % 2 == 1

        def read_files():
            seconds = sum(os.path.getsize(f) / cold_read(f) / 1e9 for f in files)
            for f in files:
                drop_cache(f)
            return r["spill_file_bytes"] / seconds / 1e9

        for f in files:
            drop_cache(f)
        if read_first:
            r["cold_read_same_files_GBps"] = read_files()
        for key in KEYS:
            ctx.load(key)  # the context counts them back in RAM (model_restore); the pages come on use
        t0 = time.perf_counter()
        touch_weights(model, clip, vae)
        r["restore_page_in_s"] = time.perf_counter() - t0
        r["restore_page_in_GBps"] = r["spill_file_bytes"] / r["restore_page_in_s"] / 1e9
        # Out again: already file-backed, so nothing is written and the pages are only given back.
        t0 = time.perf_counter()
        for key in KEYS:
            ctx._store().spill(key)
        r["spill_page_out_s"] = time.perf_counter() - t0
        r["files_after_page_out"] = len(spill_files(ctx))
        r["written_once"] = r["files_after_page_out"] == len(files)
        for f in files:
            drop_cache(f)
        if not read_first:
            r["cold_read_same_files_GBps"] = read_files()
        r["page_in_vs_cold_read"] = r["restore_page_in_GBps"] / r["cold_read_same_files_GBps"]
        for key in KEYS:
            ctx.load(key)
        # The next use pages the weights in through ComfyUI's own model management; the use after it,
        # with every page back, is the paired reference (the shared machine's load drifts over minutes).
        image, r["iteration_after_spill_s"] = iteration(model, clip, vae)
        r["equal_after_spill"] = bool(torch.equal(image, reference))
        _, r["iteration_paged_in_s"] = iteration(model, clip, vae)
        r["iteration_page_in_extra_s"] = r["iteration_after_spill_s"] - r["iteration_paged_in_s"]
        r["usage"] = {k: v for k, v in ctx.get_usage().items() if k.startswith("model_") or k.startswith("host_")}
        r["reload_vs_restore"] = r["reload_checkpoint_cold_s"] / r["restore_page_in_s"]
        for key in KEYS:
            ctx.delete(key)
    del model, clip, vae, reference, image
    gc.collect()
    log(f"round {i}: {json.dumps({k: v for k, v in r.items() if k != 'usage'})}")
    return r


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--checkpoints", required=True, help="folder holding the checkpoint")
    ap.add_argument("--checkpoint", default="random_sd15.safetensors")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--result", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    from discomfort import Discomfort
    d = await Discomfort.create(work_dir=os.path.join(a.work, "comfy"), cpu=True, extra_nodes=[COUNT_LOADS])
    import torch
    ckpt = os.path.join(a.checkpoints, a.checkpoint)
    rounds = [one_round(d, ckpt, a.work, i) for i in range(a.repeats)]
    numeric = [k for k, v in rounds[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    res = {"checkpoint": {"file": ckpt, "bytes": os.path.getsize(ckpt)}, "torch_threads": torch.get_num_threads(),
           "repeats": a.repeats, "median": {k: statistics.median(r[k] for r in rounds) for k in numeric},
           "equal": all(r["equal_after_spill"] for r in rounds),
           "written_once": all(r["written_once"] for r in rounds), "rounds": rounds}
    await d.shutdown()
    with open(a.result, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    asyncio.run(main())
