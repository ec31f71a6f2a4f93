"""benchmarks/readme_figures.py: the README's benchmark paragraph follows results.json, names every
goal report.py finds missed, and --check catches a block that differs (ctest docs.readme_benchmark_figures
runs --check on the real README)."""

import copy
import os
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import readme_figures  # noqa: E402
import report  # noqa: E402


@pytest.fixture()
def results():
    return copy.deepcopy(report.load_results())


def write_readme(path, body):
    path.write_text(f"# Title\n\nintro\n\n{body}\n\nafter\n")
    return str(path)


def test_the_paragraph_carries_the_results_figures(results):
    text = readme_figures.paragraph(results).replace("\n", " ")
    f = report.overhead_figures(results["scenarios"]["overhead"])
    assert f"**{f['server_vs_cli']:.1f}×** longer per iteration" in text
    assert f"the CLI takes {f['cli_vs_plain']:.2f}× and the Python package {f['python_vs_plain']:.2f}×" in text
    assert f"**{results['scenarios']['sweep']['speedup']:.2f}×** faster" in text
    assert results["machine"]["commit"][:7] in text


def test_every_missed_goal_is_named(results):
    results["scenarios"]["sweep"]["speedup"] = 1.2
    text = readme_figures.paragraph(results).replace("\n", " ")
    missed = [g for g in report.goals(results) if not g.met]
    assert any(g.kind == "sweep" for g in missed)
    assert "the pipelined sweep is only 1.20× faster (goal ≥ 1.5×)" in text
    for g in missed:
        assert g.measured in text, f"missed goal {g} not in the paragraph"


def test_a_run_meeting_every_goal_says_so(results):
    o = results["scenarios"]["overhead"]["contenders"]
    bare = results["scenarios"]["overhead"]["bare_compute"]["per_iteration"]["median"]
    o["discomfort_cli"]["median_of_repeat_medians_s"] = o["plain_python"]["median_of_repeat_medians_s"]
    o["nested_server"]["median_of_repeat_medians_s"] = bare + 100 * (o["discomfort_cli"]["median_of_repeat_medians_s"] - bare)
    handoff = results["scenarios"]["handoff"]
    for v in handoff["sizes"].values():
        if v.get("spill_reload"):
            v["spill_reload"]["spill_GBps"] = handoff["disk"]["write_buffered_GBps"]
            v["spill_reload"]["spill_vs_direct_write"] = 1.0  # results with the paired direct-write probe
            v["spill_reload"]["reload_vs_cold_read"] = 1.0
            for r in v["spill_reload"].get("rounds", []):  # compared by position in the round
                r["reload_GBps"] = r.get("cold_read_same_file_GBps", r.get("reload_GBps"))
    if results["scenarios"].get("sweep"):
        results["scenarios"]["sweep"]["speedup"] = report.GOAL_SWEEP_SPEEDUP
    assert all(g.met for g in report.goals(results)), [g for g in report.goals(results) if not g.met]
    text = readme_figures.paragraph(results).replace("\n", " ")
    assert "Every goal was met." in text and "Goals missed" not in text


def test_check_fails_on_a_stale_block_and_passes_after_an_update(results, tmp_path, capsys):
    stale = f"{readme_figures.BEGIN}\nThe nested server takes **6.0×** longer.\n{readme_figures.END}"
    path = write_readme(tmp_path / "README.md", stale)
    assert readme_figures.check_readme(results, path) == 1
    assert "differ from results.json" in capsys.readouterr().out
    readme_figures.update_readme(results, path)
    assert readme_figures.check_readme(results, path) == 0
    text = open(path).read()
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith("\n\nafter\n")


def test_a_readme_without_the_markers_is_an_error(results, tmp_path):
    path = write_readme(tmp_path / "README.md", "no markers here")
    with pytest.raises(SystemExit):
        readme_figures.check_readme(results, path)


def test_the_reload_is_compared_with_the_cold_read_at_the_same_position():
    # Each round reads the spill file twice, the reload and a cold read() in turn; the second reader is
    # faster whichever it is, so a reload read first must be compared with a cold read read first.
    sr = {"rounds": [{"reload_first": True, "reload_GBps": 0.5, "cold_read_same_file_GBps": 2.0},
                     {"reload_first": False, "reload_GBps": 2.0, "cold_read_same_file_GBps": 0.5},
                     {"reload_first": True, "reload_GBps": 0.7, "cold_read_same_file_GBps": 1.8}]}
    # First readers: reload 0.6 (median of 0.5, 0.7) vs cold 0.5; second: reload 2.0 vs cold 1.9.
    assert report.reload_by_position(sr) == pytest.approx(((0.6 / 0.5) * (2.0 / 1.9)) ** 0.5)
    assert report.reload_by_position({"rounds": sr["rounds"][:1]}) is None  # one order only: no comparison
