#!/usr/bin/env python3
"""Builds the seed corpora of the fuzz targets from the test data (no third-party packages).

    make_corpus.py OUT_DIR      # writes OUT_DIR/<target>/<seed files>

Seeds: the UI workflows and API prompts of tests/data (the original Discomfort's saved workflows,
the golden UI/API pairs, the subgraph cases), the example and test prompts, pairs of them for stitching, loop plans and
conditions, and snapshot manifests with safetensors files (valid ones and edge cases). The
committed seeds/ folder adds hand-written edge cases for every target.
"""
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
SEP = b"\n@@@@\n"


def json_files(*dirs):
    """The .json files of each folder; a folder that is missing or holds none is an error, so a
    broken checkout cannot produce a corpus without its real-world seeds."""
    out = []
    for d in dirs:
        found = sorted(n for n in os.listdir(d) if n.endswith(".json")) if os.path.isdir(d) else []
        if not found:
            sys.exit(f"make_corpus.py: no .json test data in {d}")
        out += [os.path.join(d, name) for name in found]
    return out


def write(out_dir, target, data):
    d = os.path.join(out_dir, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    header, payload = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(payload), len(payload) + len(data)]}
        payload += data
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + payload


def main():
    out = sys.argv[1]
    ui_and_api = json_files(os.path.join(DATA, "original_discomfort"), os.path.join(DATA, "ui_to_api"),
                            os.path.join(DATA, "ui"))
    prompts = [p for p in ui_and_api if p.endswith(".prompt.json")]
    prompts += [os.path.join(ROOT, "examples", "feedback_loop", "feedback.json"),
                os.path.join(ROOT, "tests", "cli", "slow_counter.json")]
    docs = {}
    for path in ui_and_api + prompts:
        with open(path, "rb") as f:
            docs[path] = f.read()
    for path, data in docs.items():
        write(out, "workflow_convert_fuzz", data)
    for path in prompts:
        write(out, "api_prompt_fuzz", docs[path])
    # Stitching: the original's chained pairs, and every doc with the example prompt.
    d = os.path.join(DATA, "original_discomfort")
    pairs = [("workflow1.json", "workflow2.json"), ("sdxl_load_model_and_lora.json", "sdxl_run_ksampler.json"),
             ("latent_1024x1024_empty.json", "sdxl_run_ksampler.json"), ("latent_from_input_image.json", "testa.json")]
    for a, b in pairs:
        pa, pb = os.path.join(d, a), os.path.join(d, b)
        for flags in (0, 3, 4):
            write(out, "stitch_fuzz", bytes([flags]) + docs[pa] + SEP + docs[pb])
    fb = docs[prompts[-2]]
    write(out, "stitch_fuzz", b"\x00" + fb + SEP + fb + SEP + fb)
    write(out, "stitch_fuzz", b"\x04" + docs[prompts[-1]] + SEP + fb)
    # Plans and conditions.
    plans = [
        {"max_iterations": 20, "until": "score > 0.9 && iteration >= 3", "inputs": {"prompt": "a fox", "seed": 1},
         "stages": [{"name": "generate", "workflows": ["gen.json", "score.json"], "when": "iteration % 2 == 0",
                     "on_error": "retry", "retries": 2}, {"workflows": ["/abs/x.json"], "on_error": "skip"}]},
        {"max_iterations": 0, "stages": [{"workflows": ["a.json"]}]},
        {"max_iterations": 100000000, "until": "!done ? 1 : max(score, 0.5) ^ 2 != 0.25", "stages": [{"workflows": ["../up.json"]}]},
    ]
    for p in plans:
        write(out, "plan_condition_fuzz", json.dumps(p).encode())
    for c in ["score > 0.9 && iteration >= 3", "iteration % 2 == 0", "abs(score - 0.5) < 1e-9 || done",
              "min(iteration, iterations) ? true : false", "name > 1", "1/0", "(((iteration)))", "unknown_var + 1"]:
        write(out, "plan_condition_fuzz", c.encode())
        write(out, "plan_condition_fuzz", json.dumps(c).encode())
    # Snapshots: manifest @@@@ safetensors bytes.
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    st = safetensors({"img": ("F32", [1, 2, 2], f32)}, {"discomfort.key": "img", "discomfort.device": "cpu"})
    manifest = {"format": "discomfort-snapshot", "format_version": 1, "entries": [
        {"key": "img", "kind": "tensor", "file": "tensors/0.safetensors", "dtype": "float32", "shape": [1, 2, 2],
         "device": "cpu", "requires_grad": False},
        {"key": "score", "kind": "json", "value": 0.5},
        {"key": "model", "kind": "recipe", "value": {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {}}}},
        {"key": "obj", "kind": "object", "file": "objects/0.bin", "type": "X"}],
        "not_persisted": [{"key": "clip", "kind": "object"}]}
    write(out, "snapshot_fuzz", json.dumps(manifest).encode() + SEP + st)
    write(out, "snapshot_fuzz", json.dumps(manifest).encode() + SEP +
          safetensors({"a": ("U8", [3], b"abc"), "b": ("BF16", [2], b"\0\0\0\0"), "c": ("I64", [0], b"")}))
    write(out, "snapshot_fuzz", json.dumps({"format": "discomfort-snapshot", "format_version": 1, "entries": []}).encode())
    # A shape whose element count overflows 64 bits (2^32 * 2^32 = 0 mod 2^64), and a manifest
    # naming a file outside the snapshot folder.
    overflow = safetensors({"t": ("U8", [1 << 32, 1 << 32], b"")})
    escape = {"format": "discomfort-snapshot", "format_version": 1,
              "entries": [{"key": "t", "kind": "tensor", "file": "../../../etc/passwd"}]}
    write(out, "snapshot_fuzz", json.dumps(escape).encode() + SEP + overflow)
    # The committed hand-written seeds.
    seeds = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
    if os.path.isdir(seeds):
        for target in sorted(os.listdir(seeds)):
            for name in sorted(os.listdir(os.path.join(seeds, target))):
                with open(os.path.join(seeds, target, name), "rb") as f:
                    write(out, target, f.read())


if __name__ == "__main__":
    main()
