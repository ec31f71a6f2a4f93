#!/usr/bin/env python3
"""stdout carries a command's output only: with warnings forced, the stdout of `discomfort convert`,
`object-info`, `ports`, `run --json` (its last line) and `sweep` (every line) still parses as JSON,
and every `[discomfort]` warning goes to stderr.

The warnings are forced three ways, so each command that starts ComfyUI has at least one:
  * a `kornia` package on PYTHONPATH that fails to import hides some of ComfyUI's optional
    comfy_extras modules: "optional ComfyUI node module not loaded" (every command starting ComfyUI);
  * tests/cli/nodes/warning_nodes.py (--nodes) has a node whose definition cannot be read:
    "node ... has no definition" (commands gathering node definitions);
  * tests/cli/warn_every_iteration.json has an OUTPUT port fed through ComfyUI's ExecutionBlocker:
    "OUTPUT port 'blocked' ... produced no value" every iteration (run, sweep).
A case whose warning could not be forced fails too: it would prove nothing.

Usage: stdout_is_json_test.py DISCOMFORT_BINARY SOURCE_DIR WORK_DIR   (ctest: cli.stdout_is_json)
"""
import json
import os
import shutil
import subprocess
import sys

MODULE_NOT_LOADED = "optional ComfyUI node module not loaded"
NO_DEFINITION = "has no definition"
NO_VALUE = "produced no value"


def parse_document(stdout):
    return json.loads(stdout)


def parse_last_line(stdout):
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("stdout is empty")
    return json.loads(lines[-1])


def parse_every_line(stdout):
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("stdout is empty")
    return [json.loads(line) for line in lines]


def cases(src):
    nodes = os.path.join(src, "tests", "cli", "nodes", "warning_nodes.py")
    loop = os.path.join(src, "tests", "cli", "warn_every_iteration.json")
    ui = os.path.join(src, "tests", "data", "original_discomfort", "latent_1024x1024_empty.json")
    # (name, argv, how stdout parses, warnings that must have been emitted, check of the parsed output)
    return [
        ("convert", ["convert", ui], parse_document, [MODULE_NOT_LOADED],
         lambda out: {n["class_type"] for n in out.values()} >= {"EmptyLatentImage", "DiscomfortPort"}),
        ("object-info", ["object-info", "--nodes", nodes], parse_document, [MODULE_NOT_LOADED, NO_DEFINITION],
         lambda out: "DiscomfortTestAddOne" in out and "DiscomfortTestNoDefinition" not in out),
        # ports reads no node definitions unless given a file: it starts no ComfyUI, nothing to force.
        ("ports", ["ports", ui], parse_document, [],
         lambda out: [p["unique_id"] for p in out["outputs"]] == ["latent"]),
        ("run --json", ["run", loop, "-n", "2", "--set", "x=1", "--nodes", nodes, "--json"], parse_last_line,
         [MODULE_NOT_LOADED, NO_DEFINITION, NO_VALUE], lambda out: out == {"y": 2}),
        ("sweep", ["sweep", loop, "--grid", "x=1..2", "--nodes", nodes], parse_every_line,
         [MODULE_NOT_LOADED, NO_VALUE],
         lambda out: [(p.get("event"), p.get("outputs")) for p in out] == [("point_done", {"y": 2}),
                                                                           ("point_done", {"y": 3})]),
    ]


def hide_module(work, name):
    """A PYTHONPATH folder where importing `name` fails, as a missing optional dependency does."""
    folder = os.path.join(work, "pythonpath")
    os.makedirs(os.path.join(folder, name))
    with open(os.path.join(folder, name, "__init__.py"), "w") as f:
        f.write(f"raise ImportError('{name} hidden by stdout_is_json_test.py')\n")
    return folder


def check(binary, work, env, case):
    name, argv, parse, warnings, expect = case
    p = subprocess.run([binary] + argv, capture_output=True, text=True, env=env, cwd=work, timeout=300)
    problems = []
    if p.returncode != 0:
        problems.append(f"exit {p.returncode}")
    for w in warnings:
        if w not in p.stdout + p.stderr:
            problems.append(f"the warning '{w}' was not produced (the test could not force it)")
    leaked = [line for line in p.stdout.splitlines() if line.startswith("[discomfort]")]
    if leaked:
        problems.append(f"{len(leaked)} log line(s) on stdout, first: {leaked[0][:160]}")
    try:
        parsed = parse(p.stdout)
        if not expect(parsed):
            problems.append(f"unexpected output: {json.dumps(parsed)[:300]}")
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        problems.append(f"stdout does not parse as JSON ({parse.__name__}): {e}")
    status = "OK" if not problems else "FAILED: " + "; ".join(problems)
    print(f"{name}: {status}", flush=True)
    if problems:
        print(f"  stdout (first 600 characters):\n{p.stdout[:600]}\n  stderr (last 600 characters):\n{p.stderr[-600:]}")
    return not problems


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    binary, src, work = os.path.abspath(argv[1]), os.path.abspath(argv[2]), os.path.abspath(argv[3])
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [hide_module(work, "kornia"), env.get("PYTHONPATH")]))
    results = [check(binary, work, env, case) for case in cases(src)]
    print(f"stdout is JSON: {sum(results)} of {len(results)} commands")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
