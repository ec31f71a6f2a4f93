"""Writes the README's benchmark figures from benchmarks/results.json, so that they cannot drift from
RESULTS.md: the paragraph between the README's `<!-- figures:begin -->` and `<!-- figures:end -->`
markers is generated here from the same figures and goal checks report.py uses.

    readme_figures.py            # rewrite the block in README.md
    readme_figures.py --check    # exit 1 (and show the difference) when the block is not what it would write
    readme_figures.py --results R.json --readme R.md   # other files (tests)

report.write() calls update_readme() whenever scripts/bench rewrites the committed results.
"""
import argparse
import difflib
import os
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402

README = os.path.join(os.path.dirname(HERE), "README.md")
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
WIDTH = 100

# How a missed goal reads in the paragraph; {m}: the measured figure(s), {t}: the goal, {s}: its subject.
MISSED = {
    "overhead": "Discomfort's per-iteration overhead (the time above the nodes' own compute) is {m} lower than "
                "the nested server's (goal {t})",
    "plain_loop": "the CLI takes {m} the plain loop's time per iteration (goal {t})",
    "outputs_equal": "the final images differ between contenders (goal: equal)",
    "carry": "carrying {s} through a loop copied the tensor or grew memory ({m})",
    "spill": "spilling a tensor to disk runs at {m} of the disk's direct-I/O write speed (goal {t})",
    "reload": "reloading a spilled tensor runs at {m} of a cold disk read (goal {t})",
    "sweep": "the pipelined sweep is only {m} faster (goal {t})",
    "model_once": "the large model {s}: the checkpoint was read {m} by Discomfort (goal: once)",
    "model_outputs_equal": "the large model {s}: the final images differ between contenders (goal: equal)",
}


def gib(size):
    """"8GiB" -> "8 GiB"."""
    return size.replace("GiB", " GiB").replace("KiB", " KiB")


def missed_goals(res):
    """One clause per kind of missed goal; a goal measured for several subjects (tensor sizes, large-model
    scenarios) lists each one's figure."""
    by_kind = {}
    for g in report.goals(res):
        if not g.met:
            by_kind.setdefault(g.kind, []).append(g)
    clauses = []
    for kind, gs in by_kind.items():
        if len(gs) == 1 or gs[0].subject is None:
            m, s = gs[0].measured, gs[0].subject or ""
        else:
            m = ", ".join(f"{g.measured} ({gib(g.subject)})" for g in gs)
            s = ", ".join(g.subject for g in gs)
        clauses.append(MISSED[kind].format(m=m, t=gs[0].target, s=gib(s)))
    return clauses


def figures(res):
    """The measured clauses of the paragraph, each present only when results.json has its scenario."""
    sc = res["scenarios"]
    parts, slower = [], []
    o = sc.get("overhead")
    lm_handoff = (sc.get("large_model") or {}).get("scenarios", {}).get("handoff")
    if o:
        f = report.overhead_figures(o)
        med = f["median"]
        slower.append(f"**{f['server_vs_cli']:.1f}×** longer per iteration than the Discomfort CLI on the small "
                      f"workflow ({med['nested_server'] * 1e3:.1f} ms vs {med['discomfort_cli'] * 1e3:.1f} ms median, "
                      f"{o['iterations']} iterations)")
    if lm_handoff and {"discomfort_cli", "nested_server"} <= set(lm_handoff["contenders"]):
        c = lm_handoff["contenders"]
        ratio = c["nested_server"]["per_iteration"]["median"] / c["discomfort_cli"]["per_iteration"]["median"]
        ours = c["discomfort_cli"]["checkpoint_reads"]
        slower.append(f"**{ratio:.1f}×** longer in the two-workflow model handoff, where it reads the checkpoint "
                      f"{c['nested_server']['checkpoint_reads']} times against Discomfort's "
                      + ("once" if ours == 1 else f"{ours} times"))
    if slower:
        parts.append("the nested server takes " + " and ".join(slower))
    if o:
        parts.append(f"per iteration the CLI takes {f['cli_vs_plain']:.2f}× and the Python package "
                     f"{f['python_vs_plain']:.2f}× the time of a hand-written in-process `PromptExecutor` loop")
    h = sc.get("handoff")
    k = report.largest_carried(h) if h else None
    if k:
        ec = h["sizes"][k]["engine_carry"]
        parts.append(f"carrying a tensor of {gib(k)} costs {report.fmt_s(ec['iteration_median_s'])} per iteration "
                     f"with {ec['rss_growth_bytes'] / 2**20:.1f} MiB of memory growth")
        if h["sizes"][k].get("spill_reload"):
            _, reload = report.disk_fractions(h, k)
            parts.append(f"reloading it from disk runs at {100 * reload:.0f} % of the disk's cold read speed")
    s = sc.get("sweep")
    if s:
        parts.append(f"the pipelined {s['points']}-point sweep is **{s['speedup']:.2f}×** faster")
    return parts


def paragraph(res):
    m = res["machine"]
    when = res["started"].split(" ")[0]
    commit = m.get("commit", "?")[:7] + (" plus uncommitted changes" if m.get("worktree_dirty") else "")
    text = (f"Measured on {when} at commit `{commit}` on {m.get('cpu_model', '?')}, {m['cores']} cores, CPU only"
            + (" (a quick development run)" if res.get("quick") else "")
            + " (a shared machine, so ratios are the headline): " + "; ".join(figures(res)) + ". ")
    missed = missed_goals(res)
    text += ("Goals missed: " + "; ".join(missed) + ". ") if missed else "Every goal was met. "
    text += ("Figures, machine, commit and why each goal was missed: "
             "[benchmarks/RESULTS.md](benchmarks/RESULTS.md).")
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def block(res):
    return f"{BEGIN}\n{paragraph(res)}\n{END}"


def split_readme(text, path):
    """(before, current block, after) of a README; the markers must appear once each, in order."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start or text.count(BEGIN) != 1 or text.count(END) != 1:
        raise SystemExit(f"{path}: needs exactly one {BEGIN} … {END} block")
    end += len(END)
    return text[:start], text[start:end], text[end:]


def update_readme(res, path=README):
    with open(path) as f:
        before, _, after = split_readme(f.read(), path)
    with open(path, "w") as f:
        f.write(before + block(res) + after)


def check_readme(res, path=README):
    """0 when the README's block is what update_readme would write; else 1, with the difference."""
    with open(path) as f:
        _, current, _ = split_readme(f.read(), path)
    expected = block(res)
    if current == expected:
        return 0
    sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), expected.splitlines(True),
                                               f"{path} (now)", "generated from results.json"))
    print(f"\n{path}: the benchmark figures differ from results.json; run benchmarks/readme_figures.py")
    return 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--results", help="results.json to read (default: benchmarks/results.json)")
    ap.add_argument("--readme", default=README)
    args = ap.parse_args(argv)
    res = report.load_results(args.results)
    if args.check:
        return check_readme(res, args.readme)
    update_readme(res, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
