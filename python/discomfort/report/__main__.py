"""python -m discomfort.report RUN_DIR [-o FILE]: writes the run's HTML report and prints its path.

Also runs as `python path/to/discomfort/report RUN_DIR`, without Discomfort's compiled core."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m discomfort.report",
                                     description="Write a Discomfort run's (or sweep's) report as one self-contained HTML file.")
    parser.add_argument("run_dir", help="the run's --out folder")
    parser.add_argument("-o", "--out", help="the HTML file to write (default: RUN_DIR/report.html)")
    parser.add_argument("--events", help="the run's events file (default: RUN_DIR/events.jsonl)")
    parser.add_argument("--trace", help="a Chrome trace of the run (default: RUN_DIR/trace.json when present)")
    parser.add_argument("--until", help="the run's until condition, to draw its thresholds (e.g. 'score > 0.9')")
    parser.add_argument("--title", help="the report's title")
    args = parser.parse_args(argv)
    generate = _generate()
    try:
        path = generate(args.run_dir, out=args.out, events=args.events, trace=args.trace, until=args.until,
                        title=args.title)
    except (OSError, ValueError) as exc:
        print(f"discomfort report: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _generate():
    if __package__:
        from . import generate
        return generate
    # Run as a folder (`python .../report`): load the package by its path, under a private name.
    import importlib.util
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("_discomfort_report", os.path.join(here, "__init__.py"),
                                                  submodule_search_locations=[here])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.generate


if __name__ == "__main__":
    sys.exit(main())
