"""Loaded like a custom-node file by the benchmarks' embedded contenders (the Discomfort CLI's --nodes,
the Python package's extra_nodes) when BENCH_GPU_ONLY=1: turns on ComfyUI's own --gpu-only, which
the embedded ComfyUI has no command line for. With it ComfyUI's intermediate device is the GPU, so
an IMAGE stays on the device from node to node (without it, image nodes hand their results back to
the CPU). The nested server gets the real flag (main.py --gpu-only); the plain loop sets the same
attribute before importing ComfyUI (benchmarks/common.py). Registers no nodes."""

from comfy.cli_args import args

# Read at call time by comfy.model_management.intermediate_device(): setting it after the import
# still takes effect for every node that runs afterwards.
args.gpu_only = True

NODE_CLASS_MAPPINGS = {}
