"""Discomfort.create() without work_dir puts ComfyUI's folders in <tmp>/discomfort-<pid>; at exit the
temporary parts go and saved results stay (a subprocess, since ComfyUI imports once per process)."""

import os
import subprocess
import sys
import tempfile

from conftest import REPO

SCRIPT = r"""
import asyncio, os, sys
from discomfort import Discomfort

async def main():
    d = await Discomfort.create()
    wf = {"1": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "x"}},
          "2": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "y", "input_data": ["1", 0]}}}
    assert await d.run([wf], inputs={"x": 3}) == {"y": 3}
    import folder_paths
    if sys.argv[1] == "save":
        with open(os.path.join(folder_paths.get_output_directory(), "result.txt"), "w") as f:
            f.write("kept")
    with open(os.path.join(folder_paths.get_temp_directory(), "scratch.bin"), "wb") as f:
        f.write(b"x" * 1024)
    await d.shutdown()
    print(os.getpid())

asyncio.run(main())
"""


def _run(mode, tmp):
    env = dict(os.environ, TMPDIR=tmp, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return os.path.join(tmp, "discomfort-" + out.stdout.strip().splitlines()[-1])


def test_default_work_dir_is_removed_at_exit_when_nothing_was_saved():
    with tempfile.TemporaryDirectory(prefix="discomfort-wd-") as tmp:
        work = _run("nothing", tmp)
        assert not os.path.exists(work), os.listdir(work)


def test_default_work_dir_keeps_saved_outputs_and_drops_temp():
    with tempfile.TemporaryDirectory(prefix="discomfort-wd-") as tmp:
        work = _run("save", tmp)
        assert open(os.path.join(work, "output", "result.txt")).read() == "kept"
        assert not os.path.exists(os.path.join(work, "temp"))
