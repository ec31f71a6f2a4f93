"""How faults.py counts and reports its cases: a case that could not run is skipped (with its
reason), never survived; a failed case makes the exit status 1; a run where nothing ran exits 77,
never 0. No discomfort binary is started: the disk-full case's guards (root, mount) are the only
paths exercised end to end, and they stop before running anything.

Run: .venv/bin/python -m pytest tests/reliability/test_faults_counting.py (ctest: reliability.faults_counting).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults  # noqa: E402


def test_a_failed_case_fails_the_run_and_skips_are_counted_apart():
    results = [("raise", faults.SURVIVED, "exit 1"), ("hang", faults.FAILED, "no timeout"),
               ("diskfull[spill]", faults.SKIPPED, "needs root")]
    lines, status = faults.summarize(results, injected=2)
    assert status == 1
    assert "2 injected in 3 cases: 1 survived, 1 failed, 1 skipped" in lines[0]
    assert "  FAILED: hang" in lines
    assert "  skipped: diskfull[spill] (needs root)" in lines


def test_skipped_cases_do_not_count_as_survived():
    results = [("raise", faults.SURVIVED, "exit 1"), ("diskfull[spill]", faults.SKIPPED, "mount refused")]
    lines, status = faults.summarize(results, injected=1)
    assert status == 0
    assert "1 survived, 0 failed, 1 skipped" in lines[0]
    assert "  skipped: diskfull[spill] (mount refused)" in lines


@pytest.mark.parametrize("results", [[], [("diskfull[spill]", faults.SKIPPED, "needs root")]])
def test_a_run_where_nothing_ran_is_not_a_pass(results):
    lines, status = faults.summarize(results, injected=0)
    assert status == faults.EXIT_NOTHING_RAN != 0
    assert "no case ran" in lines[-1]


def run_main(tmp_path, capsys, argv):
    status = faults.main(["--bin", str(tmp_path / "no-such-binary"), "--work", str(tmp_path / "work")] + argv)
    return status, capsys.readouterr().out


def test_disk_full_without_root_is_reported_as_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(faults.os, "geteuid", lambda: 1000)
    status, out = run_main(tmp_path, capsys, ["--only", "diskfull"])
    assert "fault diskfull[spill]: SKIPPED (needs root to mount a small tmpfs)" in out
    assert "fault diskfull[checkpoint]: SKIPPED (needs root to mount a small tmpfs)" in out
    assert "0 injected in 2 cases: 0 survived, 0 failed, 2 skipped" in out
    assert status == faults.EXIT_NOTHING_RAN


def test_disk_full_with_the_mount_refused_is_reported_as_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(faults.os, "geteuid", lambda: 0)
    monkeypatch.setattr(faults, "mount_tmpfs", lambda path, size: False)
    status, out = run_main(tmp_path, capsys, ["--only", "diskfull"])
    assert "fault diskfull[spill]: SKIPPED (mount of a 1 MiB tmpfs refused)" in out
    assert "survived" not in out.replace("0 survived", "")
    assert status == faults.EXIT_NOTHING_RAN
