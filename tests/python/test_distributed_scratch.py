"""The Ray workers' scratch folders (discomfort.distributed_actor): Ray ends a worker by killing its
process, so each folder carries its worker's pid and later workers remove those of dead ones. Needs no
Ray: the function runs in every worker at start-up."""

import os
import subprocess
import sys

from discomfort import distributed_actor


def test_only_the_folders_of_dead_workers_are_removed(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now names no process
    prefix = distributed_actor.SCRATCH_PREFIX
    dead = tmp_path / f"{prefix}{gone.pid}-abc"
    (dead / "inputs").mkdir(parents=True)
    (dead / "inputs" / "frame.png").write_bytes(b"x")
    alive = tmp_path / f"{prefix}{os.getpid()}-def"
    alive.mkdir()
    not_a_worker = tmp_path / f"{prefix}pytest-ghi"  # the tests' own folders share the prefix
    not_a_worker.mkdir()
    other = tmp_path / "something-else-1"
    other.mkdir()

    assert distributed_actor.reclaim_scratch_of_dead_workers(str(tmp_path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, not_a_worker.name, other.name])
