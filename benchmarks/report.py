"""Writes RESULTS.md and results.png from the results dict (benchmarks/results.json), and holds the
figures and goal checks that readme_figures.py puts into the README."""

import collections
import json
import re
import math
import os
import statistics

GIB = 1 << 30
HERE = os.path.dirname(os.path.abspath(__file__))

# The suite's goals: RESULTS.md marks each met or missed and the README lists the missed ones, both
# from goals() below.
GOAL_OVERHEAD_RATIO = 50  # the nested server's per-iteration overhead ÷ the Discomfort CLI's, at least
GOAL_PLAIN_RATIO = 1.05  # Discomfort CLI ÷ plain Python loop per iteration, at most: "no worse", 5 % for noise
GOAL_DISK_FRACTION = 0.8  # spill ÷ direct-I/O write of the same size, reload ÷ cold read of the same file, at least
GOAL_SWEEP_SPEEDUP = 1.5  # pipelined sweep ÷ pipeline off, at least
GOAL_CARRY_RSS_GROWTH = 64 << 20  # bytes a loop carrying a big tensor may grow, at most


def ms(s):
    return f"{s * 1e3:.2f} ms"


def fmt_s(s):
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def _ratio(a, b):
    return a / b if b else float("inf")


def load_results(path=None):
    """The results dict bench.py wrote (default: the committed benchmarks/results.json)."""
    with open(path or os.path.join(HERE, "results.json")) as f:
        return json.load(f)


def overhead_figures(o):
    """The overhead scenario's medians (s), the nodes' bare compute and the ratios between contenders."""
    c = o["contenders"]
    med = {k: v["median_of_repeat_medians_s"] for k, v in c.items()}
    bare = o["bare_compute"]["per_iteration"]["median"]
    ovh = {k: max(v - bare, 1e-7) for k, v in med.items()}
    return {"median": med, "bare": bare, "overhead": ovh,
            "server_vs_cli": _ratio(med["nested_server"], med["discomfort_cli"]),
            "overhead_ratio": _ratio(ovh["nested_server"], ovh["discomfort_cli"]),
            "cli_vs_plain": _ratio(med["discomfort_cli"], med["plain_python"]),
            "python_vs_plain": _ratio(med["discomfort_python"], med["plain_python"]),
            "outputs_equal": all(v["output_check"]["equal"] for v in c.values())}


def largest_carried(h):
    """The largest tensor size (1 GiB or more) the handoff scenario carried through a loop, or None."""
    big = [k for k, v in h["sizes"].items() if "engine_carry" in v and v["bytes"] >= GIB]
    return big[-1] if big else None


def disk_fractions(h, size):
    """(spill speed ÷ a direct-I/O write of the same size in the same round, reload speed ÷ a cold read of
    the same file) for one tensor size; results from before the paired direct write compare the spill
    with the 1 GiB buffered write probe."""
    sr, disk = h["sizes"][size]["spill_reload"], h["disk"]
    return (sr.get("spill_vs_direct_write", sr["spill_GBps"] / disk["write_buffered_GBps"]),
            reload_by_position(sr) or sr.get("reload_vs_cold_read", sr["reload_GBps"] / disk["read_cold_GBps"]))


def reload_by_position(sr):
    """Reload ÷ cold read of the same file, compared at the same position in a round. Each round reads
    the file twice (the reload and a plain cold `read()`, their order alternating), and the second
    reader is served partly by the VM host's cache of the disk, which the guest cannot evict: second
    readers ran 1.5-3x faster than first ones whichever they were. So the reload is compared with the
    cold read where both read first, and where both read second (medians), and the two ratios are
    combined by their geometric mean. None when the rounds do not hold both orders."""
    rounds = [r for r in sr.get("rounds", []) if "reload_first" in r and "cold_read_same_file_GBps" in r]
    ratios = []
    for reload_read_first in (True, False):
        reload = [r["reload_GBps"] for r in rounds if r["reload_first"] == reload_read_first]
        cold = [r["cold_read_same_file_GBps"] for r in rounds if r["reload_first"] != reload_read_first]
        if not reload or not cold:
            return None
        ratios.append(statistics.median(reload) / statistics.median(cold))
    return math.sqrt(ratios[0] * ratios[1])


def spill_reference(sr):
    """What a spill is compared with, in words."""
    if "direct_write_same_size_GBps" in sr:
        return f"a direct-I/O write of the same size ({sr['direct_write_same_size_GBps']:.2f} GB/s)"
    return "buffered disk write"


def large_model_subject(scn):
    """"(a)", "(b)": the scenario's tag in its label."""
    return scn["label"].split(")")[0] + ")"


Goal = collections.namedtuple("Goal", "kind subject measured target met")


def goals(res):
    """Every goal results.json has figures for, met or not."""
    out = []
    sc = res["scenarios"]
    o = sc.get("overhead")
    if o:
        f = overhead_figures(o)
        out.append(Goal("overhead", None, f"{f['overhead_ratio']:.0f}×", f"≥ {GOAL_OVERHEAD_RATIO}×",
                        f["overhead_ratio"] >= GOAL_OVERHEAD_RATIO))
        out.append(Goal("plain_loop", None, f"{f['cli_vs_plain']:.2f}×", "≤ 1", f["cli_vs_plain"] <= GOAL_PLAIN_RATIO))
        out.append(Goal("outputs_equal", None, "equal" if f["outputs_equal"] else "differ", "equal", f["outputs_equal"]))
    h = sc.get("handoff")
    if h:
        k = largest_carried(h)
        if k:
            ec = h["sizes"][k]["engine_carry"]
            out.append(Goal("carry", k, f"RSS growth {ec['rss_growth_bytes'] / 2**20:.1f} MiB, same storage: "
                                        f"{ec['same_storage_every_iteration']}",
                            f"same storage, RSS growth < {GOAL_CARRY_RSS_GROWTH >> 20} MiB",
                            ec["same_storage_every_iteration"] and ec["rss_growth_bytes"] < GOAL_CARRY_RSS_GROWTH))
        for k, v in h["sizes"].items():
            if isinstance(v, dict) and v.get("spill_reload"):
                w, rr = disk_fractions(h, k)
                target = f"≥ {100 * GOAL_DISK_FRACTION:.0f} %"
                out.append(Goal("spill", k, f"{100 * w:.0f} %", target, w >= GOAL_DISK_FRACTION))
                out.append(Goal("reload", k, f"{100 * rr:.0f} %", target, rr >= GOAL_DISK_FRACTION))
    s = sc.get("sweep")
    if s:
        out.append(Goal("sweep", None, f"{s['speedup']:.2f}×", f"≥ {GOAL_SWEEP_SPEEDUP}×",
                        s["speedup"] >= GOAL_SWEEP_SPEEDUP))
    for scn in (sc.get("large_model") or {}).get("scenarios", {}).values():
        c = scn["contenders"]
        if not {"discomfort_cli", "nested_server"} <= set(c):
            continue
        reads = {k: v["checkpoint_reads"] for k, v in c.items()}
        once = reads["discomfort_cli"] == 1 and reads.get("discomfort_python", 1) == 1
        out.append(Goal("model_once", large_model_subject(scn), f"{reads['discomfort_cli']}×", "once", once))
        equal = all(v["output_check"]["equal"] for v in c.values())
        out.append(Goal("model_outputs_equal", large_model_subject(scn), "equal" if equal else "differ", "equal", equal))
    return out


def _met(res):
    return {(g.kind, g.subject): g.met for g in goals(res)}


def headline(res):
    """The ratios and goal checks, as (text, met: bool|None) rows."""
    rows = []
    met = _met(res)
    sc = res["scenarios"]
    o = sc.get("overhead")
    if o:
        c = o["contenders"]
        f = overhead_figures(o)
        med, bare = f["median"], f["bare"]
        cpu = {k: v["cpu_per_iteration_s"] for k, v in c.items()}
        r_total, r_over = f["server_vs_cli"], f["overhead_ratio"]
        rows.append((f"Per-iteration time, nested server ÷ Discomfort CLI: **{r_total:.1f}×** "
                     f"(Python package: {_ratio(med['nested_server'], med['discomfort_python']):.1f}×); CPU time per "
                     f"iteration, nested server (server + client) ÷ Discomfort Python package: "
                     f"{_ratio(cpu['nested_server'], cpu['discomfort_python']):.1f}×", None))
        rows.append((f"Per-iteration *overhead* (time above the five nodes' bare compute, {ms(bare)}), nested server ÷ "
                     f"Discomfort CLI: **{r_over:.0f}×** — goal ≥ {GOAL_OVERHEAD_RATIO}×", met[("overhead", None)]))
        rows.append((f"Discomfort CLI ÷ plain Python loop: **{f['cli_vs_plain']:.2f}×** (Python package "
                     f"{f['python_vs_plain']:.2f}×) — goal ≤ 1 (no worse)", met[("plain_loop", None)]))
        ok = met[("outputs_equal", None)]
        rows.append(("Final images equal across all four contenders" if ok else "**Final images differ** — see table", ok))
    h = sc.get("handoff")
    if h:
        k = largest_carried(h)
        if k:
            v = h["sizes"][k]
            small = h["sizes"]["4KiB"]["engine_carry"]["iteration_median_s"]
            ec = v["engine_carry"]
            rows.append((f"Carrying {k} through a loop iteration: {fmt_s(ec['iteration_median_s'])} per iteration "
                         f"(4 KiB: {fmt_s(small)}), the context's save+load {fmt_s(v['context']['save_plus_load_s'])}, "
                         f"RSS growth {ec['rss_growth_bytes'] / 2**20:.1f} MiB, same storage: {ec['same_storage_every_iteration']}",
                         met[("carry", k)]))
            sr = v["spill_reload"]
            w, r = disk_fractions(h, k)
            rows.append((f"Spill {k}: {sr['spill_GBps']:.2f} GB/s = {100 * w:.0f} % of {spill_reference(sr)}; reload "
                         f"(cold, every page read) {sr['reload_GBps']:.2f} GB/s = {100 * r:.0f} % of a cold `read()` of the same file at the same position in its round — goal ≥ {100 * GOAL_DISK_FRACTION:.0f} %",
                         met[("spill", k)] and met[("reload", k)]))
        b = h["sizes"].get("1GiB", {}).get("base64", {})
        if "round_trip_s" in b:
            rows.append((f"1 GiB by torch.save + base64 (the nested server's way, before any HTTP): "
                         f"{fmt_s(b['round_trip_s'])} vs the in-RAM handoff's "
                         f"{fmt_s(h['sizes']['1GiB']['context']['save_plus_load_s'])}", None))
    s = sc.get("sweep")
    if s:
        rows.append((f"Sweep of 32 points, pipeline on vs off: **{s['speedup']:.2f}×** — goal ≥ {GOAL_SWEEP_SPEEDUP}×",
                     met[("sweep", None)]))
    rows.extend(large_model_headline(sc.get("large_model"), met))
    return rows


def large_model_headline(lm, met):
    """Large model: loaded once (goal), per-iteration ratio against the nested server, outputs equal."""
    rows = []
    if not lm:
        return rows
    n = lm["iterations"]
    for name, scn in lm["scenarios"].items():
        c = scn["contenders"]
        if not {"discomfort_cli", "nested_server"} <= set(c):
            continue
        reads = {k: v["checkpoint_reads"] for k, v in c.items()}
        once = met[("model_once", large_model_subject(scn))]
        med = {k: v["per_iteration"]["median"] for k, v in c.items()}
        rows.append((f"Large model {scn['label'].split(')')[0]}): checkpoint read from disk "
                     f"{reads['discomfort_cli']}× by the Discomfort CLI, {reads.get('discomfort_python', '?')}× by the Python "
                     f"package, {reads['nested_server']}× by the nested server over {n} iterations — goal: once", once))
        rows.append((f"Large model {scn['label'].split(')')[0]}): per iteration, nested server ÷ Discomfort CLI "
                     f"**{_ratio(med['nested_server'], med['discomfort_cli']):.2f}×** (Python package "
                     f"{_ratio(med['nested_server'], med.get('discomfort_python', 0)):.2f}×); Discomfort CLI ÷ plain "
                     f"Python loop {_ratio(med['discomfort_cli'], med.get('plain_python', 0)):.2f}×", None))
        ok = met[("model_outputs_equal", large_model_subject(scn))]
        rows.append((f"Large model {scn['label'].split(')')[0]}): final images "
                     + ("equal across contenders" if ok else "**differ** — see table"), ok))
    return rows


def large_model_section(lm):
    L = ["## Large model: a full-size SD1.5-architecture checkpoint\n"]
    ck = lm["checkpoint"]
    L.append(f"`{os.path.basename(ck['file'])}`: {ck['architecture']}, {ck['bytes'] / 1e9:.2f} GB, generated locally by "
             f"`{ck['generator']}` (ComfyUI's own model classes, seeded fill; no download), loaded by "
             f"`CheckpointLoaderSimple`. {lm['iterations']} iterations per contender, {lm['image']} image (8×8 latent), "
             f"{lm['steps']} step {lm['sampler']}, cfg {lm['cfg']}, torch on {lm['torch_threads']} thread everywhere; each "
             f"contender a fresh process, one at a time. *Per iteration* is the median over iterations 2..N (the first "
             f"includes the checkpoint load); *first iteration* is process launch → first iteration finished (start-up + "
             f"load + one iteration); peak RSS is the process's VmHWM (the nested server's: the server's); checkpoint "
             f"reads count `comfy.utils.load_torch_file` calls on the file inside each contender's ComfyUI.\n")
    for name, scn in lm["scenarios"].items():
        L.append(f"**{scn['label']}**\n")
        L.append("| contender | per iteration | first iteration | start-up | peak RSS | checkpoint reads | final image |")
        L.append("|---|---:|---:|---:|---:|---:|---|")
        for k, v in scn["contenders"].items():
            chk = v.get("output_check", {})
            eq = ("equal" if chk.get("equal") else f"DIFFERS (max {chk.get('max_abs_diff')})") + \
                (f" (max {chk['max_abs_diff']} levels)" if chk.get("equal") and chk.get("max_abs_diff") else "")
            L.append(f"| {v['label']} | {fmt_s(v['per_iteration']['median'])} | {fmt_s(v['time_to_first_iteration_s'])} | "
                     f"{fmt_s(v['startup_s'])} | {v['peak_rss_bytes'] / GIB:.2f} GiB | {v['checkpoint_reads']} | {eq} |")
        L.append("")
    L.append("- (a) Discomfort runs a loop plan: `init` (EmptyLatentImage → OUTPUT `latent`, iteration 0 only), then "
             "`sample` (CheckpointLoaderSimple, CLIPTextEncode ×2, KSampler on INPUT `latent` → OUTPUT `latent`, VAEDecode "
             "→ OUTPUT `image`). The plain loop carries the latent in a dict; the nested server as a base64 `torch.save` "
             "envelope in the prompt, back through `/history`.")
    L.append("- (b) Per iteration, workflow 1 (CheckpointLoaderSimple → OUTPUT `model`/`clip`/`vae`) then workflow 2 "
             "(INPUT `model`/`clip`/`vae`/`iteration` → sampling with seed = iteration → OUTPUT `image`). Discomfort and "
             "the plain loop hand the objects over by reference. The nested server cannot: as the original Discomfort "
             "did, it runs workflow 1 (the objects computed, then dropped: only the recipe is kept) and then workflow 2 "
             "with the pruned loader sub-workflow stitched in front, its `ckpt_name` fed by a context-loader stand-in "
             "whose `IS_CHANGED` is NaN like the original's — so ComfyUI cannot reuse the loaded model and reads the "
             "checkpoint again; workflow 1's own loader re-reads it too, because the server's default (classic) cache "
             "dropped its output when workflow 2 ran: two reads per iteration, as the original had (its notes: a "
             "CheckpointLoader fed by a context loader re-reads its file on every consuming run). The file stays in the "
             "page cache, so a read costs seconds of deserialisation, not disk time.")
    L.append("- In (a) every contender loads the model once (the nested server's own cache keeps it: the loader's "
             "inputs never change), and one UNet step of a full-size model on this CPU (seconds) dwarfs the "
             "per-iteration handoff (milliseconds, see the overhead section): the per-iteration times agree within "
             "the machine's noise. The difference shows in (b), where the nested server must rebuild what it cannot "
             "receive by pointer.")
    L.append("- The plain loop uses ComfyUI's LRU cache (16 entries): with the classic cache, running workflow 2 "
             "drops workflow 1's loaded model and the loop would re-read the checkpoint every iteration.")
    L.append("- Outputs: every contender's final image (8-bit) against the plain loop's, tolerance "
             f"{next(iter(next(iter(lm['scenarios'].values()))['contenders'].values())).get('output_check', {}).get('tolerance', 0)} levels.\n")
    return L


def misses(res):
    out = []
    met = _met(res)
    sc = res["scenarios"]
    o = sc.get("overhead")
    if o:
        c = o["contenders"]
        f = overhead_figures(o)
        med, ovh = f["median"], f["overhead"]
        r = f["overhead_ratio"]
        if not met[("overhead", None)]:
            out.append(
                f"**Overhead ≥ 50× lower than the nested server**: {r:.0f}×, short by {50 / r:.1f}×. A 50× ratio "
                f"needs Discomfort's overhead at {ms(ovh['nested_server'] / 50)} per iteration; the CLI's is "
                f"{ms(ovh['discomfort_cli'])} (the Python package's {ms(ovh['discomfort_python'])}), against "
                f"{ms(ovh['plain_python'])} for the plain `PromptExecutor` loop. Discomfort no longer pays ComfyUI's "
                f"per-prompt round in a loop (validation, cache keys, the execution list: the steady-state path); "
                f"what remains per iteration is ComfyUI's per-node machinery, the bridge and the engine — the "
                f"breakdown is in *Steady-state execution* below.")
        r_plain = f["cli_vs_plain"]
        if not met[("plain_loop", None)]:
            out.append(
                f"**No worse than the plain Python loop**: the CLI is {100 * (r_plain - 1):.0f} % slower per iteration "
                f"({ms(med['discomfort_cli'] - med['plain_python'])}); the Python package, the same engine and bridge, "
                f"is at {med['discomfort_python'] / med['plain_python']:.2f}×. Found and fixed (2026-11-28): the CLI embedded "
                f"Debian's shared `libpython3.11.so` (PIC, calls through the PLT), which ran pure-Python code 1.22× "
                f"slower than `python3` (median of 8 interleaved pairs); it now links the static non-PIC "
                f"`libpython3.11.a` as `python3` itself does (1.02×), and this run measured that build. Ruled out: PNG "
                f"encoding (none per iteration here), Discomfort's native code (0.9 % of perf samples), the bridge's "
                f"way of driving ComfyUI (its server stub, `client_id` and event callback ran as fast as the plain "
                f"loop's settings in one process, interleaved: 6.4–6.7 ms each). What remains is within this "
                f"machine's run-to-run noise (the CLI's own repeats: "
                f"{', '.join(ms(x) for x in c['discomfort_cli']['repeat_medians_s'])}). "
                f"The CLI writes no per-iteration PNG in this scenario (`--save-every 0`). "
                + ("The repeats' medians of the two overlap "
                   f"(CLI {', '.join(ms(x) for x in c['discomfort_cli']['repeat_medians_s'])}; plain "
                   f"{', '.join(ms(x) for x in c['plain_python']['repeat_medians_s'])}), so on this shared machine the "
                   f"difference is within the noise." if min(c['discomfort_cli']['repeat_medians_s'])
                   <= max(c['plain_python']['repeat_medians_s']) else
                   f"Every repeat shows it (CLI {', '.join(ms(x) for x in c['discomfort_cli']['repeat_medians_s'])}; plain "
                   f"{', '.join(ms(x) for x in c['plain_python']['repeat_medians_s'])})."))
    h = sc.get("handoff")
    if h:
        disk = h["disk"]
        for k, v in h["sizes"].items():
            sr = v.get("spill_reload") if isinstance(v, dict) else None
            if not sr:
                continue
            w, rr = disk_fractions(h, k)
            if not met[("spill", k)]:
                if "spill_vs_direct_write" in sr:
                    tries = ", ".join(f"{100 * r['spill_vs_direct_write']:.0f} %" for r in sr["rounds"])
                    out.append(
                        f"**Spill within 80 % of disk write** ({k}): {100 * w:.0f} %, short by {80 - 100 * w:.0f} points: "
                        f"{sr['spill_GBps']:.2f} GB/s against {sr['direct_write_same_size_GBps']:.2f} GB/s for `dd "
                        f"oflag=direct` of the same size next to it (median of the rounds; each round: {tries}). The spill "
                        f"writes with O_DIRECT from aligned buffers, two 16 MiB requests in flight, so what is left is this "
                        f"VM's disk moving by up to 2× between one write and the next on a disk shared with other work: "
                        f"rerun on a quiet machine (BENCH_ONLY=handoff).")
                else:
                    out.append(
                        f"**Spill within 80 % of disk write** ({k}): {100 * w:.0f} %, short by {80 - 100 * w:.0f} points. "
                        f"The disk probe writes 1 GiB, which fits the kernel's dirty-page allowance; a {k} spill does not, so "
                        f"it runs at what the disk really takes. It ran at {sr['spill_GBps']:.2f} GB/s, below even the probe's "
                        f"fsync'd write ({disk['write_fsync_GBps']:.2f} GB/s).")
            if not met[("reload", k)]:
                out.append(
                    f"**Reload within 80 % of disk read** ({k}): {100 * rr:.0f} % of cold sequential `read()`, short by "
                    f"{80 - 100 * rr:.0f} points (paired cold `read()` of the same spill file: "
                    f"{sr.get('cold_read_same_file_GBps', disk['read_cold_GBps']):.2f} GB/s). This VM's disk varies several-fold within minutes"
                    + (" (each round: " + ", ".join(f"{100 * r['reload_vs_cold_read']:.0f} %" for r in sr["rounds"]
                                                    if "reload_vs_cold_read" in r) + ")"
                       if any("reload_vs_cold_read" in r for r in sr.get("rounds", [])) else "")
                    + "; "
                    f"the read-in-full mode (`DISCOMFORT_RELOAD=read`) ran at "
                    f"{v.get('spill_reload_read', {}).get('reload_GBps', float('nan')):.2f} GB/s in the same run.")
    s_ = sc.get("sweep")
    if s_ and not met[("sweep", None)]:
        out.append(f"**Pipelined sweep ≥ 1.5×**: {s_['speedup']:.2f}×. On 2 shared cores, decode/encode can only overlap "
                   f"execution when a core is free.")
    return out


# ---------------------------------------------------------------- steady-state execution
# Its targets, checked in RESULTS.md's "Steady-state execution" section (not in goals(): the README's
# goal list and its tests keep the suite's original goals).
STEADY_VS_PLAIN = 0.5        # Discomfort (CLI, Python package) ÷ plain loop per iteration, at most
STEADY_SERVER_VS_CLI = 20    # nested server ÷ Discomfort CLI per iteration, at least
STEADY_OVERHEAD_S = 0.5e-3   # time above the five nodes' bare compute per iteration, at most
STEADY_LARGE_VS_PLAIN = 1.05  # large model (b): Discomfort ÷ plain loop per iteration, at most ("no slower", 5 % for noise)
SUBJECTS = {"discomfort_cli": "CLI", "discomfort_python": "Python package"}


def steady_state_targets(res):
    """The steady-state targets results.json has figures for, as Goal rows."""
    out = []
    o = res["scenarios"].get("overhead")
    if o:
        f = overhead_figures(o)
        for k, subject in SUBJECTS.items():
            r = _ratio(f["median"][k], f["median"]["plain_python"])
            out.append(Goal("steady_vs_plain", subject, f"{r:.2f}×", f"≤ {STEADY_VS_PLAIN}×", r <= STEADY_VS_PLAIN))
        out.append(Goal("steady_server_vs_cli", None, f"{f['server_vs_cli']:.1f}×", f"≥ {STEADY_SERVER_VS_CLI}×",
                        f["server_vs_cli"] >= STEADY_SERVER_VS_CLI))
        for k, subject in SUBJECTS.items():
            out.append(Goal("steady_overhead", subject, ms(f["overhead"][k]), f"≤ {ms(STEADY_OVERHEAD_S)}",
                            f["overhead"][k] <= STEADY_OVERHEAD_S))
    scn = (res["scenarios"].get("large_model") or {}).get("scenarios", {}).get("handoff")
    if scn and "plain_python" in scn["contenders"]:
        c = scn["contenders"]
        plain = c["plain_python"]["per_iteration"]["median"]
        for k, subject in SUBJECTS.items():
            if k in c:
                r = _ratio(c[k]["per_iteration"]["median"], plain)
                out.append(Goal("steady_large_vs_plain", subject, f"{r:.2f}×", f"≤ 1 ({STEADY_LARGE_VS_PLAIN}: noise)",
                                r <= STEADY_LARGE_VS_PLAIN))
    return out


def _profile_rows(o):
    """(bucket key, label, {profile key: seconds per iteration}) for the breakdown table."""
    prof = o.get("profile") or {}
    runs = [k for k in ("plain_python", "discomfort_python_exact", "discomfort_python") if k in prof]
    if not runs:
        return [], []
    labels = next(iter(prof.values())).get("buckets") or {}
    keys = list(labels) or list(next(iter(prof.values()))["per_iteration_s"])
    rows = []
    for key in keys:
        values = {r: prof[r]["per_iteration_s"].get(key, 0.0) for r in runs}
        if any(v > 0 for v in values.values()):
            rows.append((key, labels.get(key, key), values))
    return runs, rows


def _above_compute(p):
    return sum(v for k, v in p["per_iteration_s"].items() if k != "compute")


def steady_state_section(res):
    o = res["scenarios"].get("overhead")
    if not o:
        return []
    f = overhead_figures(o)
    med, ovh = f["median"], f["overhead"]
    L = ["## Steady-state execution\n"]
    L.append("The bridge validates a workflow once per slot (again when the prompt, the context inputs present or the "
             "node registry change) and, after the first iteration, runs only what ComfyUI's own cache would run: the "
             "nodes whose `IS_CHANGED` / `fingerprint_inputs` changed (a context loader's is its value's version; "
             "NaN: every time) and everything downstream of them, in the order ComfyUI's execution list picks, each "
             "through ComfyUI's per-node machinery, the other outputs reused "
             "(`bridge/python/discomfort_bridge/steady_state.py`). Workflows with lazy inputs or node expansion stay "
             "on ComfyUI's full round. `exact=True` / `DISCOMFORT_EXACT_EXECUTOR=1` forces the full round; "
             "`tests/python/test_steady_state.py` runs workflows both ways and compares every iteration's outputs, "
             "files, UI and the nodes run.\n")
    L.append("| target | measured | goal | |")
    L.append("|---|---:|---:|---|")
    names = {"steady_vs_plain": "Discomfort ÷ plain loop per iteration",
             "steady_server_vs_cli": "nested server ÷ Discomfort CLI per iteration",
             "steady_overhead": "overhead above the five nodes' bare compute",
             "steady_large_vs_plain": "large model (b): Discomfort ÷ plain loop per iteration"}
    for g in steady_state_targets(res):
        subject = f" ({g.subject})" if g.subject else ""
        L.append(f"| {names[g.kind]}{subject} | {g.measured} | {g.target} | {'✅' if g.met else '❌ missed'} |")
    L.append("")
    lm = (res["scenarios"].get("large_model") or {}).get("scenarios", {})
    if "handoff" in lm:
        L.append("Large model (b): Discomfort runs workflow 2's two `CLIPTextEncode` nodes every iteration, the plain "
                 "loop only in the first, on either execution path. Workflow 1's OUTPUT ports store the same "
                 "MODEL/CLIP/VAE objects every iteration and the engine gives every store a new context version, "
                 "which is the context loader's `IS_CHANGED`, so ComfyUI's cache sees a new CLIP; the plain loop's "
                 "saver node has no `IS_CHANGED`, is served from ComfyUI's cache and keeps its version. Keeping a "
                 "port's version when it stores the object it already holds and that object was not recomputed is "
                 "the engine's to change. Its contenders also run one after another, not interleaved, so load from "
                 "other processes falls on them unevenly: the plain loop's own repeats of this scenario vary by "
                 "seconds between runs of the suite.\n")
    ex = o.get("exact_executor")
    if ex:
        L.append(f"Same run, same Python package, ComfyUI's full round forced (`DISCOMFORT_EXACT_EXECUTOR=1`): "
                 f"{ms(ex['median_of_repeat_medians_s'])} per iteration against {ms(med['discomfort_python'])} on the "
                 f"steady-state path ({_ratio(med['discomfort_python'], ex['median_of_repeat_medians_s']):.2f}×); final "
                 f"image {'equal' if ex['output_check']['equal'] else 'DIFFERENT'} to the plain loop's.\n")
    runs, rows = _profile_rows(o)
    if rows:
        prof = o["profile"]
        heads = {"plain_python": "plain loop (full round)", "discomfort_python_exact": "Discomfort, full round",
                 "discomfort_python": "Discomfort, steady state"}
        L.append("### Where an iteration goes\n")
        L.append(f"`benchmarks/overhead/breakdown.py`: the same workflow, {prof[runs[0]]['iterations']} iterations per "
                 "run, with ComfyUI's and Discomfort's functions instrumented and their time attributed exclusively to "
                 "the buckets below (only bucket boundaries are timed, two `perf_counter` calls each, so small calls are "
                 "not inflated as under cProfile; the instrumented runs are a little slower than the table above). "
                 "Milliseconds per iteration (mean):\n")
        L.append("| | " + " | ".join(heads[r] for r in runs) + " |")
        L.append("|---|" + "---:|" * len(runs))
        for key, label, values in rows:
            L.append(f"| {label} | " + " | ".join(f"{values[r] * 1e3:.3f}" for r in runs) + " |")
        L.append("| **total** | " + " | ".join(f"**{sum(prof[r]['per_iteration_s'].values()) * 1e3:.3f}**" for r in runs) + " |")
        L.append("| above the nodes' compute | " + " | ".join(f"{_above_compute(prof[r]) * 1e3:.3f}" for r in runs) + " |")
        L.append("| timed calls per iteration | " + " | ".join(f"{prof[r]['timed_calls_per_iteration']:.0f}" for r in runs) + " |")
        L.append("")
        p = prof.get("plain_python")
        if p:
            s_ = p["per_iteration_s"]
            keys = sorted((k for k in s_ if k != "compute"), key=lambda k: -s_[k])
            L.append(f"- The plain loop's {ms(_above_compute(p))} above compute (instrumented), largest first: "
                     + ", ".join(f"{p['buckets'].get(k, k) if p.get('buckets') else k} {ms(s_[k])}" for k in keys[:6] if s_[k] > 0)
                     + ". Every one of them is per prompt: in a loop the prompt does not change, so the steady-state "
                       "path drops validation, the cache keys, the execution list and `asyncio.run`, and keeps what is "
                       "per node.")
        q = prof.get("discomfort_python")
        if q:
            s_ = q["per_iteration_s"]
            keys = sorted((k for k in s_ if k != "compute"), key=lambda k: -s_[k])
            L.append(f"- What remains on the steady-state path, {ms(_above_compute(q))} (instrumented), largest first: "
                     + ", ".join(f"{q['buckets'].get(k, k) if q.get('buckets') else k} {ms(s_[k])}" for k in keys[:6] if s_[k] > 0)
                     + ".")
        L.append("")
    return L


def steady_state_misses(res):
    out = []
    o = res["scenarios"].get("overhead")
    missed = [g for g in steady_state_targets(res) if not g.met]
    if not o or not missed:
        return out
    f = overhead_figures(o)
    med, ovh = f["median"], f["overhead"]
    q = (o.get("profile") or {}).get("discomfort_python")
    why_profile = ""
    if q:
        s_ = q["per_iteration_s"]
        b = q.get("buckets") or {}
        node = s_.get("machinery", 0) + s_.get("execute_other", 0) + s_.get("inputs", 0) + s_.get("progress", 0)
        why_profile = (f" The breakdown of the Python package's steady-state iteration: the per-node work "
                       f"{ms(node)} (ComfyUI's call machinery {ms(s_.get('machinery', 0))}, the node runner "
                       f"{ms(s_.get('execute_other', 0))}, input data {ms(s_.get('inputs', 0))}, progress "
                       f"{ms(s_.get('progress', 0))}) for 7 nodes (5 + the context loader and saver); "
                       f"{b.get('harness', 'the engine')} {ms(s_.get('harness', 0))}; the bridge's execute, "
                       f"iteration, IS_CHANGED and invalidation {ms(sum(s_.get(k, 0) for k in ('host', 'executor_other', 'is_changed', 'steady_state', 'event_loop')))}. "
                       f"The per-node machinery is ComfyUI's own `get_output_data` (list mapping, interrupt check, "
                       f"current-node context, the V3 `EXECUTE_NORMALIZED` wrapper and `NodeOutput`, result merge), kept "
                       f"so results stay ComfyUI's.")
    for g in missed:
        if g.kind == "steady_overhead":
            k = "discomfort_cli" if g.subject == "CLI" else "discomfort_python"
            extra = ""
            if k == "discomfort_cli":
                c = o["contenders"]
                extra = (f" The CLI runs the same engine and bridge as the Python package (overhead "
                         f"{ms(ovh['discomfort_python'])}); their repeats' medians: CLI "
                         f"{', '.join(ms(x) for x in c['discomfort_cli']['repeat_medians_s'])}, Python package "
                         f"{', '.join(ms(x) for x in c['discomfort_python']['repeat_medians_s'])}, plain loop "
                         f"{', '.join(ms(x) for x in c['plain_python']['repeat_medians_s'])}.")
            out.append(f"**Overhead ≤ {ms(STEADY_OVERHEAD_S)} per iteration** ({g.subject}): {g.measured}, "
                       f"{ms(ovh[k] - STEADY_OVERHEAD_S)} over.{extra}{why_profile}")
        elif g.kind == "steady_vs_plain":
            k = "discomfort_cli" if g.subject == "CLI" else "discomfort_python"
            out.append(f"**Discomfort ≤ {STEADY_VS_PLAIN}× the plain loop** ({g.subject}): {g.measured}. Its median "
                       f"{ms(med[k])} against the plain loop's {ms(med['plain_python'])}, of which the nodes' own compute "
                       f"is {ms(f['bare'])}.{why_profile}")
        elif g.kind == "steady_server_vs_cli":
            need = med["nested_server"] / STEADY_SERVER_VS_CLI
            out.append(f"**Nested server ≥ {STEADY_SERVER_VS_CLI}× the CLI** : {g.measured}; it would need the CLI at "
                       f"{ms(need)} per iteration, {ms(med['discomfort_cli'] - need)} less, with {ms(f['bare'])} of it the "
                       f"nodes' compute.{why_profile}")
        elif g.kind == "steady_large_vs_plain":
            scn = res["scenarios"]["large_model"]["scenarios"]["handoff"]["contenders"]
            k = "discomfort_cli" if g.subject == "CLI" else "discomfort_python"
            d = scn[k]["per_iteration"]["median"] - scn["plain_python"]["per_iteration"]["median"]
            out.append(f"**Large model (b) no slower than the plain loop** ({g.subject}): {g.measured} "
                       f"({fmt_s(d)} more per iteration of {fmt_s(scn['plain_python']['per_iteration']['median'])}); "
                       f"see *Steady-state execution*: Discomfort encodes the prompts again every iteration.")
    return out


def ray_section(r):
    """RESULTS.md's section for the `ray` scenario (benchmarks/ray/run.py): sweeps on a Ray cluster of
    this machine against a local sweep, model loads per actor, and a projection to N machines."""
    L = ["## Sweeps on Ray: the same points on 1 and 2 actors\n"]
    la0, la1 = r.get("loadavg_at_start", [0])[0], r.get("loadavg_at_end", [0])[0]
    L.append(f"`benchmarks/ray/run.py`: {r['points']} points of `{r['workflow']}` over different {r['image']} images, "
             f"Ray {r['ray_version']}, the driver loaded by path as the CLI loads it. `local:1` and `local:2` start a "
             f"cluster on this machine for each sweep (one one-CPU worker node per actor); the local sweep runs in the "
             f"benchmark's process, pipeline off (an actor runs its points one at a time). {r['torch_threads']} torch "
             f"thread everywhere. Time = first to last point's result, scaled by N/(N-1); of "
             f"{r['repeats']} repeat(s) with the contenders alternating, the median run (of two, the faster); "
             f"load average {la0:.1f} at the start, "
             f"{la1:.1f} at the end (other work shares this machine's {r['cores']} cores)."
             + (f" Measured on {r['started']} at commit `{r['commit'][:12]}`." if r.get("started") else "") + "\n")
    L.append("| contender | points / s | per point | runs (s) | rest of the wall time: cluster and engine start, stop |")
    L.append("|---|---:|---:|---|---:|")
    rows = [("local sweep", r["local"], r["points_per_s"]["local"], r["per_point_s"]["local"], None),
            ("Ray, 1 actor", r["ray"]["1"], r["points_per_s"]["ray_1_actor"], r["per_point_s"]["ray_1_actor"],
             r["ray"]["1"]),
            ("Ray, 2 actors", r["ray"]["2"], r["points_per_s"]["ray_2_actors"], r["per_point_s"]["ray_2_actors"],
             r["ray"]["2"])]
    for label, run, rate, per_point, ray in rows:
        spans = ", ".join(f"{s:.2f}" for s in run.get("span_s_all", [run["span_s"]]))
        startup = f"{ray['wall_s'] - ray['span_s']:.1f} s" if ray else "—"
        L.append(f"| {label} | {rate:.1f} | {ms(per_point)} | {spans} | {startup} |")
    outside = r["outside_execution_per_point_s"]
    L.append("")
    added = r["ray_added_per_point_s"]
    added_text = (f"{ms(added)} (1 actor against the local sweep)" if added > 0 else
                  f"none measurable: the 1-actor Ray sweep took {ms(-added)} less per point than the local one in "
                  f"this run (noise on this shared machine)")
    L.append(f"- Ray's added cost per point: {added_text}; time outside the point's execution (decode, encode, "
             f"and for Ray the call, its result and the driver) {ms(outside['local'])} locally, "
             f"{ms(outside['ray_1_actor'])} on Ray.")
    L.append(f"- 2 actors against 1: {r['speedup_2_vs_1_actor']:.2f}× on these {r['cores']} shared cores (the runs "
             f"column shows how much other work moves the times). Each actor is a process with an engine of its "
             f"own, sharing only the driver; the projection below assumes that actors on machines of their own add "
             f"up, which one machine cannot show.")
    L.append(f"- Outputs of every contender equal pixel for pixel: {r['outputs_equal']}.")
    m = r["model_loads"]
    per_actor = ", ".join(f"{n}" for n in m.get("points_per_actor", {}).values())
    L.append(f"- Model loads: a setup workflow loads `{m['checkpoint']}` (SD1.5 size) once per actor; "
             f"{m['points']} points encode prompts with its warm CLIP ({ms(m['point_seconds']['median'])} per point, "
             f"median; points per actor: {per_actor}). Checkpoint reads counted in the workers: "
             f"**{m['checkpoint_reads']} for {m['points']} points on {m['actors']} actors**; an actor's start-up "
             f"with the load: {', '.join(f'{s:.0f} s' for s in m['startup_with_setup_s'])}.")
    p = r["projection"]
    L.append(f"\n**Projection, not a measurement** ({p['assumes']}):\n")
    L.append("| machines | actors | points / s | 10,000 points |")
    L.append("|---:|---:|---:|---:|")
    for row in p["rows"]:
        L.append(f"| {row['machines']} | {row['actors']} | {row['points_per_s']:.0f} | {fmt_s(row['sweep_10000_s'])} |")
    L.append("")
    return L


def trace_section(t):
    """What `--trace` costs per iteration (benchmarks/trace_cost)."""
    m = t["median_s"]
    return [
        "## What a trace costs\n",
        f"The overhead workload (five nodes, 64x64) by the Discomfort CLI with and without `--trace`, "
        f"{t['iterations']} iterations after {t['warmup']} warm-up, {t['repeats']} repeats interleaved; median of "
        f"the repeats' medians of `iteration_done.seconds`.\n",
        "| | per iteration | trace per iteration |",
        "|---|---:|---:|",
        f"| without `--trace` | {ms(m['plain'])} | — |",
        f"| with `--trace` | {ms(m['traced'])} | {t['trace_events_per_iteration']:.0f} events, "
        f"{t['trace_bytes_per_iteration'] / 1024:.1f} KiB |",
        "",
        f"Cost: {t['cost_per_iteration_s'] * 1e3:+.2f} ms per iteration ({(t['ratio'] - 1) * 100:+.1f} %). "
        + trace_noise_verdict(t["repeat_medians_s"])
        + f" Every trace written had balanced spans: {t['traces_balanced']}.\n",
    ]


def trace_noise_verdict(medians):
    """Whether one run's repeats separate the trace's cost from this shared machine's noise."""
    plain, traced = medians["plain"], medians["traced"]
    spread = (f"the repeats' medians: without {', '.join(ms(x) for x in plain)}; "
              f"with {', '.join(ms(x) for x in traced)}")
    if min(traced) > max(plain):
        return f"Every traced repeat was slower than every untraced one ({spread}): the cost is real."
    if max(traced) < min(plain):
        return f"Every traced repeat was faster than every untraced one ({spread}): noise larger than the cost."
    return f"The repeats overlap ({spread}), so this run does not separate the cost from the noise."


def model_spill_section(ms):
    """Models under the RAM budget (benchmarks/model_spill): one checkpoint's models spilled and restored next
    to the disk and to ComfyUI's reload, and the two-model loop with and without a budget."""
    sr, m = ms["spill_restore"], ms["spill_restore"]["median"]
    L = ["## Models under the RAM budget\n",
         f"A random-weight SD1.5 checkpoint ({ms['checkpoint']['bytes'] / 1e9:.2f} GB file, fp16) loaded by ComfyUI's "
         f"own loader; its MODEL + CLIP + VAE hold **{m['model_bytes'] / 1e9:.2f} GB** in RAM (fp32 on the CPU). "
         f"Medians of {sr['repeats']} round(s) in one process (`model_spill/spill_restore.py`); each disk figure is "
         "measured in the same round on the same bytes.\n",
         "| | time | GB/s | the disk, same bytes |",
         "|---|---:|---:|---|",
         f"| spill: weights written to safetensors, swapped in place for file-backed tensors | "
         f"{fmt_s(m['spill_write_s'])} | {m['spill_write_GBps']:.2f} | `dd oflag=direct` "
         f"{m['direct_write_same_bytes_GBps']:.2f} GB/s (spill at {100 * m['spill_vs_direct_write']:.0f} %) |",
         f"| spill again (already on disk: nothing written, pages given back) | {fmt_s(m['spill_page_out_s'])} | — | "
         f"spill files written once: {sr.get('written_once')} |",
         f"| restore: page-in of every weight from a cold cache | {fmt_s(m['restore_page_in_s'])} | "
         f"{m['restore_page_in_GBps']:.2f} | cold `read()` of the spill files {m['cold_read_same_files_GBps']:.2f} GB/s "
         f"(page-in at {100 * m['page_in_vs_cold_read']:.0f} %) |",
         f"| restore inside a real use: the first sampling iteration after a spill ({fmt_s(m['iteration_after_spill_s'])}), "
         f"over the next one ({fmt_s(m['iteration_paged_in_s'])}) | {m['iteration_page_in_extra_s']:+.2f} s | — | "
         f"same image as in RAM: {sr['equal']} |",
         f"| ComfyUI's way: unload, `load_checkpoint` again, cold page cache | {fmt_s(m['reload_checkpoint_cold_s'])} | "
         f"{ms['checkpoint']['bytes'] / m['reload_checkpoint_cold_s'] / 1e9:.2f} (file) | — |",
         f"| ComfyUI's way, the file still in the page cache | {fmt_s(m['reload_checkpoint_warm_s'])} | "
         f"{ms['checkpoint']['bytes'] / m['reload_checkpoint_warm_s'] / 1e9:.2f} (file) | — |",
         "",
         f"Restoring a spilled model by page-in is {m['reload_vs_restore']:.1f}× faster than ComfyUI's reload of the "
         "checkpoint from a cold cache (the reload also converts fp16 to fp32 and builds the modules; the spill file "
         "holds the weights as they are in RAM). A spill can beat `dd`: it keeps two 16 MiB direct writes in flight, "
         "`dd` one. The disk is shared with other work: its cold-read figure moved between "
         f"{min(r['cold_read_same_files_GBps'] for r in sr['rounds']):.2f} and "
         f"{max(r['cold_read_same_files_GBps'] for r in sr['rounds']):.2f} GB/s from round to round, so the page-in's "
         "ratio to it is noisy.\n"]
    lp = ms["loop"]
    L += [f"The two-model loop (`tests/python/models_budget/workflows.py`: models A and B, each MODEL + CLIP + VAE of an "
          f"SD1.5 checkpoint, B with a LoRA, sampled in turns) by the Discomfort CLI, {lp['iterations']} iterations, without "
          f"a budget and with `--max-ram-gb {lp['budget_gb']:g}` (less than either model), the model spill "
          + ", ".join(f"`{k}`" for k in lp["runs"] if k != "none")
          + " (`DISCOMFORT_MODEL_SPILL`: `write` and `drop` forced, `auto` by the cost model). What was done is read "
          "from the run's `model_spill` events (a forced `drop` is still a write when dropping would not free the "
          "model); peak RSS is the process's VmHWM.\n",
          "| run | peak RSS | checkpoint reads | spills: write / page_out / drop | time in spills | restores (page-in) | "
          "recipe rebuilds | largest model write | per iteration (median, from 3rd) | images |",
          "|---|---:|---:|---|---:|---:|---:|---|---:|---|"]
    for mode, r in lp["runs"].items():
        a = r["actions"]
        spill_s = sum(r.get(f"{k}_seconds_total", 0) for k in ("write", "page_out", "drop"))
        rebuilds = r["recipe_runs"]
        rebuild_txt = f"{len(rebuilds)} (median {fmt_s(r['recipe_run_s_median'])})" if rebuilds else "0"
        lw = r.get("largest_write")
        write_txt = (f"{lw['bytes'] / 1e9:.2f} GB at {lw['GBps']:.2f} GB/s (`dd` direct "
                     f"{r['direct_write_same_bytes_GBps']:.2f}: {100 * r['write_vs_direct_write']:.0f} %)" if lw else "—")
        its = r["iteration_s"][2:] or r["iteration_s"]
        img = r.get("images_vs_no_budget")
        img_txt = "reference" if img is None else ("equal" if img["equal"] else f"DIFFER ({img['max_abs_diff']} levels)")
        name = "no budget" if mode == "none" else f"`--max-ram-gb {r['budget_gb']:g}`, {mode}"
        L.append(f"| {name} | {r['peak_rss_bytes'] / GIB:.2f} GiB | {r['checkpoint_reads_total']} | "
                 f"{a['write']} / {a['page_out']} / {a['drop']} | {fmt_s(spill_s) if spill_s else '—'} | {r['restores']} | "
                 f"{rebuild_txt} | {write_txt} | {fmt_s(statistics.median(its))} | {img_txt} |")
    L.append("")
    for mode, r in lp["runs"].items():
        if r.get("reasons"):  # the cost model's figures differ per model: "N s" stands for them
            reasons = sorted({re.sub(r"[0-9]+\.[0-9]+ s", "N s", x) for x in r["reasons"]})
            L.append(f"- `{mode}`: the `model_spill` events' reasons: " + "; ".join(f"*{x}*" for x in reasons) + ".")
    rr = (lp["runs"].get("drop") or {}).get("resume_from_recipes")
    if rr:
        runs = rr["recipe_runs"]
        each = ", ".join(f"{x['port']} {fmt_s(x['seconds'])}" for x in runs)
        L.append(f"- Rebuild from recipe: `discomfort resume` of the `drop` run's snapshot (every MODEL / CLIP / VAE held as "
                 f"its recipe) ran {len(runs)} recipes in {fmt_s(rr['recipe_run_s_total'])} "
                 f"({each}), reading the checkpoints "
                 f"{sum(rr['checkpoint_reads'].values())} times; peak RSS {rr['peak_rss_bytes'] / GIB:.2f} GiB.")
    L.append("- *Checkpoint reads*: every `comfy.utils.load_torch_file` of a checkpoint file (two files: A and B). A "
             "dropped model is rebuilt from its recipe (the pruned loader workflow) when next read: one more read each "
             "time; a written model is read back from its own spill file by page-in, never from the checkpoint.\n")
    return L


def write_md(res, folder):
    m = res["machine"]
    L = []
    L.append("# Benchmark results\n")
    L.append(f"Generated by `scripts/bench` on {res['started']}{' (BENCH_QUICK=1: a short development run)' if res['quick'] else ''}; "
             f"measured commit `{m.get('commit', '?')[:12]}`{' plus uncommitted changes' if m.get('worktree_dirty') else ''}.\n")
    L.append(f"**Machine:** {m.get('cpu_model', '?')}, {m['cores']} cores, "
             f"{m.get('ram_total_bytes', 0) / GIB:.1f} GiB RAM, Linux {m['kernel']}, Python {m['python']}, CPU only. "
             f"Shared with other engineers' builds: load average {m['loadavg_at_start'][0]:.1f} at the start, "
             f"{m.get('loadavg_at_end', [0])[0]:.1f} at the end — absolute times are noisy; ratios within one run are the headline.\n")
    L.append("![results](results.png)\n")
    L.append("## Headline\n")
    for text, met in headline(res):
        mark = "" if met is None else (" ✅" if met else " ❌ missed")
        L.append(f"- {text}{mark}")
    L.append("")

    why = misses(res) + steady_state_misses(res)
    if why:
        L.append("## Goals missed: by how much, and why\n")
        L.extend(f"- {w}" for w in why)
        L.append("")

    o = res["scenarios"].get("overhead")
    if o:
        L.append("## Overhead: a 5-node workflow in a loop\n")
        L.append(f"`{o['workflow']}`: ImageBlur → ImageSharpen → ImageFlip → ImageBlend → ImageInvert on a {o['image']} image, "
                 f"the image carried from each iteration to the next. {o['iterations']} iterations after {o['warmup']} warm-up "
                 f"iterations (excluded), {o['repeats']} repeats, contenders interleaved repeat by repeat; torch limited to "
                 f"{o['torch_threads']} thread in every contender. *Median* is the median of the repeats' medians; p95 pools all "
                 f"measured iterations. *Overhead* is the median minus the bare compute of the five nodes "
                 f"({ms(o['bare_compute']['per_iteration']['median'])}: their functions called directly in a Python loop).\n")
        L.append("| contender | median / iteration | p95 | overhead / iteration | CPU / iteration | start-up | final image |")
        L.append("|---|---:|---:|---:|---:|---:|---|")
        bare = o["bare_compute"]["per_iteration"]["median"]
        for k, v in o["contenders"].items():
            chk = v["output_check"]
            eq = ("equal" if chk["equal"] else f"DIFFERS (max {chk['max_abs_diff']})")
            cpu_txt = ms(v["cpu_per_iteration_s"]) if k != "discomfort_cli" else f"({ms(v['cpu_per_iteration_s'])})¹"
            L.append(f"| {v['label']} | {ms(v['median_of_repeat_medians_s'])} | {ms(v['per_iteration']['p95'])} | "
                     f"{ms(max(v['median_of_repeat_medians_s'] - bare, 0))} | {cpu_txt} | "
                     f"{v['startup_s']:.1f} s | {eq} |")
        cli = o["contenders"]["discomfort_cli"]
        L.append("")
        L.append(f"- Discomfort CLI times come from its `--events` (`iteration_done.seconds`); from wall clock alone "
                 f"(end of warm-up to last iteration, divided evenly) it is {ms(cli['wall_per_iteration_s'])} per iteration. "
                 f"Start-up is process launch → the engine's `run_start` event (ComfyUI imported, workflow validated); "
                 f"the whole process took {cli['process_wall_s']:.1f} s. ¹ Its CPU time per iteration is by difference of two "
                 f"processes (warm-up only vs warm-up + N): the start-up's CPU time varies by seconds on this shared "
                 f"machine, so this figure is not reliable and is left out of the headline.")
        L.append("- The CLI writes the last iteration's PNG only (`--out DIR --save-every 0`): the image the equality check "
                 "reads; like the other contenders it encodes nothing per iteration. It does write its `--events` file.")
        L.append("- Nested server: stock `main.py --cpu` on 127.0.0.1 with its default cache, API nodes off, no front end; per "
                 "iteration = encode the image (base64 `torch.save` in a JSON envelope, as the original Discomfort's "
                 "inline mode) → fresh websocket → POST /prompt → wait for `executing` node=None → GET /history → decode. "
                 "Start-up = launch → /object_info answers. Its CPU time is the server's plus the client's. The original's "
                 "per-run browser UI→API conversion is *not* included (the prompt is already API format): the real original "
                 "was slower.")
        L.append("- Plain Python: ComfyUI imported as a library, one `PromptExecutor`, the image carried in a dict through "
                 "a 10-line loader node (its `IS_CHANGED` a version number) and an output node; validation each iteration.")
        L.append("- Outputs: the Python contenders' final float32 tensors are compared exactly with the plain loop's; the "
                 "CLI's final PNG is compared with the plain loop's tensor quantized the same way (clip, ×255, truncate). "
                 f"The bare-compute loop's result equals the executor's: {o['bare_compute']['equal_to_executor_result']}.\n")

    L.extend(steady_state_section(res))

    h = res["scenarios"].get("handoff")
    if h:
        L.append("## Tensor handoff\n")
        d = h["disk"]
        direct = f"{d['write_direct_GBps']:.2f} GB/s direct (`dd oflag=direct`), " if "write_direct_GBps" in d else ""
        L.append(f"Same process, same run: memcpy (tensor copy, 1 GiB, {h['memcpy']['threads']} threads) "
                 f"**{h['memcpy']['GBps']:.1f} GB/s**; disk (1 GiB file, the work folder's file system) sequential write "
                 f"{direct}{d['write_buffered_GBps']:.2f} GB/s buffered (the page cache's burst: a 1 GiB write fits the "
                 f"kernel's dirty-page allowance), {d['write_fsync_GBps']:.2f} GB/s with fsync; read "
                 f"{d['read_cold_GBps']:.2f} GB/s cold, {d['read_warm_GBps']:.2f} GB/s from the page cache.\n")
        L.append("| tensor | loop iteration carrying it | context save+load | RSS growth over the loop | same storage | "
                 "spill (GB/s) | reload cold + read (GB/s) | torch.save+base64 round trip |")
        L.append("|---|---:|---:|---:|---|---:|---:|---:|")
        for k, v in h["sizes"].items():
            if "skipped" in v:
                L.append(f"| {k} | skipped: {v['skipped']} | | | | | | |")
                continue
            ec, cx = v["engine_carry"], v["context"]
            sr = v.get("spill_reload")
            b = v.get("base64", {})
            spill = (f"{sr['spill_GBps']:.2f} ({fmt_s(sr['spill_s'])}"
                     + (f"; direct write {sr['direct_write_same_size_GBps']:.2f}" if "direct_write_same_size_GBps" in sr
                        else "") + ")") if sr else "—"
            srr = v.get("spill_reload_read") or {}
            reload = (f"{sr['reload_GBps']:.2f} ({fmt_s(sr['reload_and_read_s'])}; Get {fmt_s(sr.get('reload_call_s', sr['reload_map_s']))})"
                      + (f"; read mode {srr['reload_GBps']:.2f}" if "reload_GBps" in srr else "")) if sr else "—"
            b64 = (f"{fmt_s(b['round_trip_s'])} ({b['round_trip_GBps']:.2f} GB/s)" if "round_trip_s" in b
                   else ("—" if not b else "not run (memory)"))
            L.append(f"| {k} | {fmt_s(ec['iteration_median_s'])} | {fmt_s(cx['save_plus_load_s'])} | "
                     f"{ec['rss_growth_bytes'] / 2**20:.1f} MiB | {ec['same_storage_every_iteration'] and cx['same_storage']} | "
                     f"{spill} | {reload} | {b64} |")
        L.append("")
        L.append("- *Loop iteration*: `d.run_detailed` on `handoff/carry.json` (INPUT port → a pass-through node that records "
                 "the data pointer → OUTPUT port), median of the iterations after 2 warm-up ones; *same storage* means the "
                 "node saw, and the context got back, the very tensor saved, every iteration.")
        cached = [v["spill_reload"].get("cached_after_spill_max") for v in h["sizes"].values()
                  if isinstance(v, dict) and v.get("spill_reload")]
        cached = [c for c in cached if c is not None]
        L.append("- *Spill*: the context store writes the tensor as a safetensors file (not fsynced: spill files die with the "
                 "process; O_DIRECT from aligned buffers, the file's space reserved first), compared with `dd oflag=direct "
                 "bs=16M` writing the same number of bytes in the same round, before or after the spill in turn (not "
                 "fsynced either: a direct write returns once the device has the data)"
                 + (f"; at most {100 * max(cached):.1f} % of a spill file was in the page cache right after its spill"
                    if cached else "") + ". *Reload*: after fsync + `POSIX_FADV_DONTNEED` on the file, "
                 "`load` maps it and a full `sum` reads every page, compared with a cold `read()` of the same file in the "
                 "same round, the two in alternating order; the second reader of a file is served partly by the VM host's "
                 "cache of the disk (1.5-3× faster whichever it is), so the headline compares the reload with the cold "
                 "read at the same position (first with first, second with second; geometric mean of the two ratios). "
                 "Round trips checked equal.")
        L.append("- *torch.save + base64*: encode and decode in memory only; the nested server adds JSON, HTTP and the "
                 "server's own decode on top. Run at 1 GiB only: its copies need ~3.5× the tensor in RAM; it scales linearly.\n")

    s = res["scenarios"].get("sweep")
    if s:
        L.append("## Sweep: 32 independent points\n")
        L.append(f"`discomfort sweep sweep/sweep.json --images DIR` over 32 different {s['image']} images (the overhead "
                 f"workflow's five nodes, PNG in, PNG out), {s['repeats']} repeat(s), modes alternating; time = first to "
                 "last `point_done` event (stamped as each appears in `--events`), scaled by 32/31; process start-up, "
                 "equal for both, left out. Torch uses its default threads here (the pipeline is about parallelism).\n")
        L.append("| mode | 32 points (median) | per point | sum of points' own times | process wall |")
        L.append("|---|---:|---:|---:|---:|")
        for mode, v in s["modes"].items():
            L.append(f"| {mode.replace('_', ' ')} | {v['span_s']['median']:.2f} s | {fmt_s(v['span_s']['median'] / s['points'])} | "
                     f"{v['point_seconds_sum']:.2f} s | {v['process_wall_s']:.1f} s |")
        L.append(f"\nSpeed-up {s['speedup']:.2f}×; outputs of both modes equal pixel for pixel: {s['output_check']['equal']}.\n")

    lm = res["scenarios"].get("large_model")
    if lm:
        L.extend(large_model_section(lm))

    if res["scenarios"].get("ray"):
        L.extend(ray_section(res["scenarios"]["ray"]))

    if res["scenarios"].get("trace"):
        L.extend(trace_section(res["scenarios"]["trace"]))

    if res["scenarios"].get("model_spill"):
        L.extend(model_spill_section(res["scenarios"]["model_spill"]))

    L.append("## Not measured (yet)\n")
    if not lm:
        L.append("- The large-model workload (`BENCH_ONLY=large_model scripts/bench`) is not in this results.json.")
    L.append("- GPU variants (no accelerator on this machine).")
    with open(os.path.join(folder, "RESULTS.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def write_png(res, folder):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sc = res["scenarios"]
    panels = [k for k in ("overhead", "handoff", "sweep", "large_model") if k in sc]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6))
    if len(panels) == 1:
        axes = [axes]
    for ax, name in zip(axes, panels):
        if name == "overhead":
            c = sc["overhead"]["contenders"]
            labels = {"discomfort_cli": "Discomfort\nCLI", "discomfort_python": "Discomfort\nPython", "plain_python": "plain\nPython loop",
                      "nested_server": "nested\nserver"}
            keys = list(c)
            med = [c[k]["median_of_repeat_medians_s"] * 1e3 for k in keys]
            p95 = [c[k]["per_iteration"]["p95"] * 1e3 for k in keys]
            bars = ax.bar([labels[k] for k in keys], med, color=["#2a7", "#5b9", "#888", "#c44"])
            ax.errorbar(range(len(keys)), med, yerr=[[0] * len(keys), [max(p - m, 0) for p, m in zip(p95, med)]],
                        fmt="none", ecolor="k", capsize=4)
            bare = sc["overhead"]["bare_compute"]["per_iteration"]["median"] * 1e3
            ax.axhline(bare, ls="--", color="#333", lw=1)
            ax.text(len(keys) - 0.5, bare, "bare compute", va="bottom", ha="right", fontsize=8)
            for b, m, p in zip(bars, med, p95):
                ax.text(b.get_x() + b.get_width() / 2, max(m, p) * 1.05, f"{m:.1f} ms", ha="center", va="bottom", fontsize=8)
            ax.set_yscale("log")
            ax.set_ylabel("ms per iteration (median; whisker p95)")
            ax.set_title("Overhead: 5 nodes, 64x64, loop-carried image")
        elif name == "handoff":
            h = sc["handoff"]
            sizes = [k for k, v in h["sizes"].items() if "engine_carry" in v and v["bytes"] >= GIB]
            import numpy as np
            x = np.arange(len(sizes))
            series = [("context save+load (pointer)", [h["sizes"][k]["context"]["save_plus_load_s"] for k in sizes]),
                      ("spill", [h["sizes"][k]["spill_reload"]["spill_s"] for k in sizes]),
                      ("reload (cold, full read)", [h["sizes"][k]["spill_reload"]["reload_and_read_s"] for k in sizes]),
                      ("torch.save+base64", [h["sizes"][k].get("base64", {}).get("round_trip_s", float("nan")) for k in sizes]),
                      ("memcpy (same size)", [h["sizes"][k]["bytes"] / h["memcpy"]["GBps"] / 1e9 for k in sizes])]
            w = 0.16
            for i, (lab, vals) in enumerate(series):
                ax.bar(x + (i - 2) * w, vals, w, label=lab)
            ax.set_xticks(x, sizes)
            ax.set_yscale("log")
            ax.set_ylabel("seconds per handoff")
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
            ax.set_title("Tensor handoff between iterations")
        elif name == "large_model":
            import numpy as np
            lm = sc["large_model"]
            scns = list(lm["scenarios"])
            keys = list(lm["scenarios"][scns[0]]["contenders"])
            labels = {"discomfort_cli": "Discomfort CLI", "discomfort_python": "Discomfort Python",
                      "plain_python": "plain Python loop", "nested_server": "nested server"}
            colors = {"discomfort_cli": "#2a7", "discomfort_python": "#5b9", "plain_python": "#888", "nested_server": "#c44"}
            x = np.arange(len(scns))
            w = 0.8 / len(keys)
            for i, k in enumerate(keys):
                vals = [lm["scenarios"][s_]["contenders"].get(k, {}).get("per_iteration", {}).get("median", float("nan"))
                        for s_ in scns]
                bars = ax.bar(x + (i - (len(keys) - 1) / 2) * w, vals, w, label=labels.get(k, k), color=colors.get(k))
                for b, s_ in zip(bars, scns):
                    reads = lm["scenarios"][s_]["contenders"].get(k, {}).get("checkpoint_reads")
                    ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{reads}r", ha="center", va="bottom", fontsize=7)
            ax.set_xticks(x, [s_ for s_ in scns])
            ax.set_ylabel("s per iteration (median); label: checkpoint reads")
            ax.legend(fontsize=7)
            ax.set_title(f"Large model (SD1.5 size), {lm['iterations']} iterations")
        else:
            s = sc["sweep"]
            modes = list(s["modes"])
            vals = [s["modes"][m]["span_s"]["median"] for m in modes]
            bars = ax.bar([m.replace("_", " ") for m in modes], vals, color=["#2a7", "#888"])
            for b, v in zip(bars, vals):
                ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.2f} s", ha="center", va="bottom", fontsize=8)
            ax.set_ylabel("seconds for 32 points")
            ax.set_title(f"Sweep: pipeline {s['speedup']:.2f}x")
    m = res["machine"]
    fig.suptitle(f"Discomfort benchmarks — {m.get('cpu_model', '?')}, {m['cores']} cores, "
                 f"{m.get('ram_total_bytes', 0) / GIB:.0f} GiB, CPU only{' (quick run)' if res['quick'] else ''}", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "results.png"), dpi=110)
    plt.close(fig)


def write(res, folder):
    write_md(res, folder)
    write_png(res, folder)
    if os.path.abspath(folder) == HERE:  # the committed results: the README's figures follow them
        import readme_figures
        readme_figures.update_readme(res)


if __name__ == "__main__":
    import sys
    write(load_results(sys.argv[1] if len(sys.argv) > 1 else None), HERE)
