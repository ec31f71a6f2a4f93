"""Random-weight SD1.5-architecture checkpoint and a matching LoRA, for tests and benchmarks (no downloads).

The checkpoint is built from ComfyUI's own model classes (openaimodel.UNetModel with ComfyUI's SD15 unet
config, clip_model.CLIPTextModel with sd1_clip_config.json, autoencoder.AutoencoderKL with the SD1.x
ddconfig), created with comfy.ops.disable_weight_init (no init cost) and then filled from a seeded generator.
Its keys are the original single-file layout (model.diffusion_model.*, cond_stage_model.transformer.*,
first_stage_model.*), so CheckpointLoaderSimple's detection picks SD15. fp16, about 2 GB.

The LoRA uses kohya names (lora_unet_<diffusers name>, lora_te_text_model_encoder_layers_<n>_<proj>, with
lora_down / lora_up / alpha) over every UNet attention projection and every text-encoder attention and MLP
layer, rank 4.

Files go to <root>/<GENERATOR_VERSION>/checkpoints/<name> and .../loras/<name>, root defaulting to
~/.cache/discomfort/models (DISCOMFORT_MODELS_CACHE overrides). Existing files are kept (idempotent);
new ones are written under a temporary name and renamed, so a crash never leaves a half file.

    .venv/bin/python benchmarks/models/make_random_models.py [--root DIR] [--checkpoint NAME]... [--lora NAME]...
    .venv/bin/python benchmarks/models/make_random_models.py --verify   # load it and sample a tiny latent

From Python: `ensure_models(checkpoint_names=[...], lora_names=[...])` returns the folder paths; it runs this
file in a subprocess when something is missing, so the caller's process never holds the generation memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

# Bumped whenever the produced bytes change: it names the cache folder, so old files are never reused.
GENERATOR_VERSION = "v1"
SEED = 20261127
LORA_RANK = 4
DEFAULT_CHECKPOINT = "random_sd15.safetensors"
DEFAULT_LORA = "random_sd15_lora.safetensors"

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def cache_root(root: str | None = None) -> str:
    root = root or os.environ.get("DISCOMFORT_MODELS_CACHE") or os.path.expanduser("~/.cache/discomfort/models")
    return os.path.join(root, GENERATOR_VERSION)


def folders(root: str | None = None) -> dict:
    base = cache_root(root)
    return {"root": base, "checkpoints": os.path.join(base, "checkpoints"), "loras": os.path.join(base, "loras")}


def comfyui_path() -> str:
    return os.environ.get("COMFYUI_PATH") or os.path.expanduser("~/ComfyUI")


def ensure_models(checkpoint_names=(DEFAULT_CHECKPOINT,), lora_names=(DEFAULT_LORA,), root=None,
                  python=None, timeout=900) -> dict:
    """Generates whatever is missing (in a subprocess) and returns folders(root)."""
    f = folders(root)
    missing = [n for n in checkpoint_names if not os.path.exists(os.path.join(f["checkpoints"], n))]
    missing += [n for n in lora_names if not os.path.exists(os.path.join(f["loras"], n))]
    if missing:
        cmd = [python or sys.executable, os.path.abspath(__file__)]
        if root:
            cmd += ["--root", root]
        for n in checkpoint_names:
            cmd += ["--checkpoint", n]
        for n in lora_names:
            cmd += ["--lora", n]
        subprocess.run(cmd, check=True, timeout=timeout)
    return f


# ----------------------------------------------------------------------------------------------------
# Generation (imports torch and ComfyUI)


def _import_comfy():
    path = comfyui_path()
    if not os.path.isfile(os.path.join(path, "comfy", "sd.py")):
        raise SystemExit(f"no ComfyUI checkout at {path} (set COMFYUI_PATH)")
    if path not in sys.path:
        sys.path.insert(0, path)
    # ComfyUI's cli_args parses sys.argv at import; keep ours away from it.
    saved, sys.argv = sys.argv, sys.argv[:1] + ["--cpu"]
    try:
        import comfy.options
        comfy.options.enable_args_parsing()
        import comfy.model_management  # noqa: F401
        import comfy.ops
        import comfy.utils
    finally:
        sys.argv = saved
    return path


def _sd15_unet_config(dtype):
    return {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
            "legacy": False, "adm_in_channels": None, "dtype": dtype, "in_channels": 4, "model_channels": 320,
            "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
            "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1, "use_linear_in_transformer": False,
            "context_dim": 768, "num_heads": 8, "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
            "use_temporal_attention": False, "use_temporal_resblock": False}


def _fill(sd: dict, seed: int) -> dict:
    """Cheap, deterministic, numerically tame fill: weights U(-1/sqrt(fan_in), +1/sqrt(fan_in)), norm scales 1,
    biases 0 — keeps activations bounded through the random network so images stay finite."""
    import torch
    out = {}
    g = torch.Generator().manual_seed(seed)
    for k in sorted(sd):
        t = sd[k]
        if not torch.is_floating_point(t):
            out[k] = t.contiguous()
            continue
        if k.endswith("bias"):
            v = torch.zeros(t.shape, dtype=torch.float16)
        elif t.dim() == 1:
            v = torch.ones(t.shape, dtype=torch.float16)
        else:
            fan_in = max(1, t.numel() // t.shape[0])
            bound = 1.0 / (fan_in ** 0.5)
            v = (torch.rand(t.shape, generator=g, dtype=torch.float32) * (2 * bound) - bound).to(torch.float16)
        out[k] = v
    return out


def build_checkpoint_state_dict(seed: int = SEED) -> dict:
    import torch
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.ldm.models.autoencoder import AutoencoderKL
    import comfy.clip_model

    ops = comfy.ops.disable_weight_init  # parameters come uninitialised (torch.empty); _fill sets them
    dt = torch.float16
    sd = {}
    with torch.no_grad():
        unet = UNetModel(**_sd15_unet_config(dt), device="cpu", operations=ops)
        for k, v in _fill(unet.state_dict(), seed).items():
            sd["model.diffusion_model." + k] = v
        del unet
        with open(os.path.join(comfyui_path(), "comfy", "sd1_clip_config.json")) as f:
            clip_config = json.load(f)
        clip = comfy.clip_model.CLIPTextModel(clip_config, dt, "cpu", ops)
        for k, v in _fill(clip.state_dict(), seed + 1).items():
            if k.startswith("text_model."):  # the original SD1.5 file has no text_projection / logit_scale
                sd["cond_stage_model.transformer." + k] = v
        del clip
        sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77).expand((1, -1)).contiguous()
        ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
        vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=4).to(dt)
        for k, v in _fill(vae.state_dict(), seed + 2).items():
            sd["first_stage_model." + k] = v
        del vae
    return sd


def build_lora_state_dict(checkpoint_sd: dict, seed: int = SEED + 10, rank: int = LORA_RANK) -> dict:
    """kohya-format LoRA over the checkpoint's UNet attention projections and text-encoder layers."""
    import torch
    import comfy.utils
    import comfy.lora

    g = torch.Generator().manual_seed(seed)
    targets = {}  # kohya name -> weight shape
    # UNet: kohya names are the diffusers module names with '.' -> '_' (comfy.lora.model_lora_keys_unet).
    for diffusers_key, unet_key in comfy.utils.unet_to_diffusers(_sd15_unet_config(None)).items():
        if not diffusers_key.endswith(".weight") or ".attn" not in diffusers_key:
            continue
        if not any(p in diffusers_key for p in (".to_q.", ".to_k.", ".to_v.", ".to_out.0.")):
            continue
        w = checkpoint_sd.get("model.diffusion_model." + unet_key)
        if w is not None and w.dim() == 2:
            targets["lora_unet_" + diffusers_key[:-len(".weight")].replace(".", "_")] = tuple(w.shape)
    for layer in range(12):
        for module, kohya in comfy.lora.LORA_CLIP_MAP.items():
            w = checkpoint_sd[f"cond_stage_model.transformer.text_model.encoder.layers.{layer}.{module}.weight"]
            targets[f"lora_te_text_model_encoder_layers_{layer}_{kohya}"] = tuple(w.shape)
    out = {}
    for name in sorted(targets):
        out_f, in_f = targets[name]
        # Small but non-zero up weights (trained LoRAs are not zero), so applying it really changes outputs.
        out[name + ".lora_down.weight"] = (torch.randn((rank, in_f), generator=g) / in_f ** 0.5).to(torch.float16)
        out[name + ".lora_up.weight"] = (torch.randn((out_f, rank), generator=g) * 0.05 / rank ** 0.5).to(torch.float16)
        out[name + ".alpha"] = torch.tensor(float(rank), dtype=torch.float16)
    return out


def _write_atomic(sd: dict, path: str, metadata: dict):
    from safetensors.torch import save_file
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        save_file(sd, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _link_from_sibling(path: str) -> bool:
    if os.path.exists(path):
        return True
    folder = os.path.dirname(path)
    siblings = [n for n in sorted(os.listdir(folder)) if n.endswith(".safetensors")] if os.path.isdir(folder) else []
    for n in siblings:
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            os.link(os.path.join(folder, n), tmp)
            os.replace(tmp, path)
            print(f"[models] linked {path} -> {n}", file=sys.stderr, flush=True)
            return True
        except OSError:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return False


def generate(checkpoint_names, lora_names, root=None) -> dict:
    f = folders(root)
    ckpts = [os.path.join(f["checkpoints"], n) for n in checkpoint_names]
    loras = [os.path.join(f["loras"], n) for n in lora_names]
    if all(os.path.exists(p) for p in ckpts + loras):
        return f
    # Every file in this versioned folder holds the same bytes: another name is a hard link, not a rerun.
    ckpts = [p for p in ckpts if not _link_from_sibling(p)]
    loras = [p for p in loras if not _link_from_sibling(p)]
    if not ckpts and not loras:
        return f
    _import_comfy()
    import torch
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    meta = {"generator": f"discomfort make_random_models.py {GENERATOR_VERSION}", "seed": str(SEED),
            "note": "random weights; SD1.5 architecture"}
    t0 = time.time()
    ckpt_sd = build_checkpoint_state_dict()
    nbytes = sum(t.numel() * t.element_size() for t in ckpt_sd.values())
    print(f"[models] checkpoint state dict: {len(ckpt_sd)} tensors, {nbytes / 1e9:.2f} GB ({time.time() - t0:.1f} s)",
          file=sys.stderr, flush=True)
    first = None
    for p in ckpts:
        if os.path.exists(p):
            continue
        if first is None:
            _write_atomic(ckpt_sd, p, meta)
            first = p
        else:  # same bytes under another name: a hard link where possible
            tmp = f"{p}.tmp-{os.getpid()}"
            try:
                os.link(first, tmp)
                os.replace(tmp, p)
            except OSError:
                _write_atomic(ckpt_sd, p, meta)
        print(f"[models] wrote {p}", file=sys.stderr, flush=True)
    lora_sd = build_lora_state_dict(ckpt_sd)
    for p in loras:
        if not os.path.exists(p):
            _write_atomic(lora_sd, p, dict(meta, rank=str(LORA_RANK)))
            print(f"[models] wrote {p} ({len(lora_sd)} tensors)", file=sys.stderr, flush=True)
    print(f"[models] done in {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
    return f


# ----------------------------------------------------------------------------------------------------
# Verification through ComfyUI's own nodes


def verify(checkpoint: str, lora: str) -> dict:
    """CheckpointLoaderSimple's loader detects SD15; LoRA patches keys; a tiny latent samples to finite values."""
    _import_comfy()
    import torch
    import comfy.sd
    import comfy.sample
    import comfy.supported_models
    import comfy.utils
    import comfy.lora

    t0 = time.time()
    model, clip, vae = comfy.sd.load_checkpoint_guess_config(checkpoint, output_vae=True, output_clip=True)[:3]
    load_s = time.time() - t0
    if type(model.model.model_config) is not comfy.supported_models.SD15:
        raise SystemExit(f"detected {type(model.model.model_config).__name__}, expected SD15")
    lora_sd = comfy.utils.load_torch_file(lora, safe_load=True)
    m2, c2 = comfy.sd.load_lora_for_models(model, clip, lora_sd, 1.0, 1.0)
    unet_patched, clip_patched = len(m2.patches), len(c2.patcher.patches)
    if unet_patched == 0 or clip_patched == 0:
        raise SystemExit(f"LoRA patched {unet_patched} UNet and {clip_patched} CLIP keys; expected both > 0")
    tokens = c2.tokenize("a random test")
    cond, pooled = c2.encode_from_tokens(tokens, return_pooled=True)
    latent = torch.zeros((1, 4, 8, 8))
    noise = comfy.sample.prepare_noise(latent, 1)
    positive = [[cond, {"pooled_output": pooled}]]
    samples = comfy.sample.sample(m2, noise, 2, 6.0, "euler", "normal", positive, positive, latent, denoise=1.0, seed=1)
    image = vae.decode(samples)
    if not torch.isfinite(samples).all() or not torch.isfinite(image).all():
        raise SystemExit("non-finite sample or image")
    return {"detected": "SD15", "load_s": load_s, "unet_keys_patched": unet_patched, "clip_keys_patched": clip_patched,
            "latent_shape": list(samples.shape), "image_shape": list(image.shape),
            "image_std": float(image.detach().float().std())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", help="cache root (default ~/.cache/discomfort/models or DISCOMFORT_MODELS_CACHE)")
    ap.add_argument("--checkpoint", action="append", help=f"checkpoint file name(s) (default {DEFAULT_CHECKPOINT})")
    ap.add_argument("--lora", action="append", help=f"LoRA file name(s) (default {DEFAULT_LORA})")
    ap.add_argument("--verify", action="store_true", help="then load with ComfyUI, apply the LoRA, sample 8x8")
    ap.add_argument("--print-paths", action="store_true", help="print the folders as JSON")
    a = ap.parse_args()
    ckpts = a.checkpoint or [DEFAULT_CHECKPOINT]
    loras = a.lora or [DEFAULT_LORA]
    f = generate(ckpts, loras, a.root)
    if a.print_paths:
        print(json.dumps(f))
    if a.verify:
        print(json.dumps(verify(os.path.join(f["checkpoints"], ckpts[0]), os.path.join(f["loras"], loras[0]))))


if __name__ == "__main__":
    main()
