"""Loaded into the CLI's ComfyUI with --nodes by check_models_budget.py (no nodes of its own):

* shows ComfyUI the generated model folders ($DISCOMFORT_TEST_CHECKPOINTS, $DISCOMFORT_TEST_LORAS), as
  extra_model_paths.yaml would, so nothing is written into the ComfyUI checkout;
* counts checkpoint reads: every comfy.utils.load_torch_file call on a file of a `checkpoints` folder
  appends the file's name to $DISCOMFORT_TEST_LOAD_LOG (what benchmarks/large_model counts too)."""

import os

import comfy.utils
import folder_paths


def _install_counter():
    if getattr(comfy.utils.load_torch_file, "_discomfort_test_counter", False):
        return
    original = comfy.utils.load_torch_file

    def load_torch_file(ckpt, *args, **kwargs):
        log = os.environ.get("DISCOMFORT_TEST_LOAD_LOG")
        if log and f"{os.sep}checkpoints{os.sep}" in os.path.realpath(str(ckpt)):
            with open(log, "a") as f:
                f.write(os.path.basename(str(ckpt)) + "\n")
        return original(ckpt, *args, **kwargs)

    load_torch_file._discomfort_test_counter = True
    comfy.utils.load_torch_file = load_torch_file


_install_counter()
for kind, env in (("checkpoints", "DISCOMFORT_TEST_CHECKPOINTS"), ("loras", "DISCOMFORT_TEST_LORAS")):
    if os.environ.get(env):
        folder_paths.add_model_folder_path(kind, os.environ[env])

NODE_CLASS_MAPPINGS = {}
