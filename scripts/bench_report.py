"""Render a pytest-benchmark JSON of benchmarks/bench_lloyd.py as a markdown report.

Usage::

    pytest benchmarks/bench_lloyd.py --benchmark-json=bench.json
    python scripts/bench_report.py bench.json [-o BENCHMARKS.md]

Per library / metric / update it prints the marginal time of one Lloyd
iteration, ``(t(12 it) - t(2 it)) / 10`` from the mean of each case (fixed
set-up cancels out), the end-to-end time of the 12-iteration fit, and the
speed-up of gpukmeans over each peer measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict


def load(path: str) -> tuple[dict, dict]:
    with open(path) as fh:
        doc = json.load(fh)
    cases: dict = defaultdict(dict)
    for bench in doc["benchmarks"]:
        info = bench["extra_info"]
        if "library" not in info:  # a case that failed before recording what it measured
            continue
        key = (info["library"], info["metric"], info["update"], info["n_samples"], info["n_clusters"])
        cases[key][info["n_iter"]] = bench["stats"]["mean"]
    return cases, doc.get("machine_info", {})


def render(cases: dict, machine: dict) -> str:
    rows = []
    per_iter = {}
    for key, times in sorted(cases.items()):
        lo, hi = min(times), max(times)
        if lo == hi:  # converged before the shorter run ended: no marginal figure
            continue
        per_iter[key] = (times[hi] - times[lo]) / (hi - lo)
        rows.append((key, per_iter[key], times[hi], hi))
    peers = {k[0]: v for k, v in per_iter.items() if k[0] != "gpukmeans"}
    euclid = next((v for k, v in per_iter.items() if k[0] == "gpukmeans" and k[1] == "euclidean"), None)
    peer_names = sorted(peers)
    head = ["library", "metric", "update", "n x k", "ms / iteration", "fit, ms (iterations)"]
    head += [f"x faster than {p}" for p in peer_names] + ["vs gpukmeans euclidean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (lib, metric, update, n, k), t_it, t_fit, n_it in rows:
        cells = [lib, metric, update, f"{n:,} x {k}", f"{t_it * 1e3:.2f}", f"{t_fit * 1e3:.1f} ({n_it})"]
        for p in peer_names:
            cells.append(f"{peers[p] / t_it:.1f}" if lib == "gpukmeans" else "")
        cells.append(f"{t_it / euclid:.2f}" if lib == "gpukmeans" and euclid else "")
        lines.append("| " + " | ".join(cells) + " |")
    cpu = machine.get("cpu", {})
    desc = (
        f"Machine: {cpu.get('brand_raw', machine.get('processor', '?'))}, "
        f"{cpu.get('count', '?')} logical CPUs, Python {machine.get('python_version', '?')}."
    )
    return desc + "\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="pytest-benchmark JSON file")
    parser.add_argument("-o", "--output", help="write the markdown here instead of stdout")
    args = parser.parse_args(argv)
    text = render(*load(args.json))
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
