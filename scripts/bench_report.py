"""Run the benchmark suite (or read its JSON) and write BENCHMARKS.md with tables and plots.

Usage::

    # run the whole suite (about 20-30 minutes on 2 cores), then write the report
    python scripts/bench_report.py --run
    # or render a JSON written by ``pytest benchmarks --benchmark-json=FILE``
    python scripts/bench_report.py benchmarks/results/cpu-2x-xeon.json -o BENCHMARKS.md

The report has: the machine (CPU, cores, memory, GPU, library versions, BLAS
kernels, threads) and its measured limits (memory read bandwidth, GEMM peak);
per case the marginal time of one Lloyd iteration, ``(t_long - t_short) /
(it_long - it_short)`` from the medians of the timed rounds, the end-to-end fit
time, the peak extra memory, the time floor (bytes of X / measured read
bandwidth, or ``2 n k d`` / GEMM peak when that is larger) and the ratio to it;
ratios against every peer measured in the same run; the JIT compile times; the
silhouette and segmentation benchmarks; every skipped case with its reason;
the targets of the benchmark issue, met or missed. PNG plots (time vs n and vs
k per metric) are written next to the report when matplotlib is installed;
without it the report says so and is written without them.

A file ``<json stem>.notes.md`` next to the JSON, if present, is included as
the report's analysis section (hand-written observations about that run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRIC_UPDATES = [
    ("euclidean", "mean"),
    ("manhattan", "mean"),
    ("chebyshev", "mean"),
    ("manhattan", "median"),
    ("chebyshev", "guarded"),
]
PEERS = ("scikit-learn", "faiss", "faiss-gpu", "torch")


# ---------------------------------------------------------------- loading


class Run:
    """Everything the report needs from one pytest-benchmark JSON."""

    def __init__(self, doc: dict, path: str) -> None:
        self.path = path
        self.doc = doc
        self.meta = doc.get("gpukmeans_bench", {})
        self.machine = self.meta.get("machine", {})
        self.bandwidth: list[tuple[int, float]] = []  # (bytes, GB/s)
        self.gpu_bandwidth: float | None = None
        self.flops: dict[str, float] = {}  # dtype -> GFLOP/s
        self.compile: list[dict] = []
        self.paired: list[dict] = []  # bench_paired.py: both sides of a ratio in each round
        self.others: list[dict] = []  # silhouette, segmentation, anything else
        runs: dict = defaultdict(dict)
        for bench in doc.get("benchmarks", []):
            info = bench.get("extra_info", {})
            kind = info.get("kind")
            if kind == "read_bandwidth":
                self.bandwidth.append((info["bytes"], info["gb_per_s"]))
            elif kind == "gpu_read_bandwidth":
                self.gpu_bandwidth = info["gb_per_s"]
            elif kind == "peak_flops":
                self.flops[info["dtype"]] = info["gflop_per_s"]
            elif kind == "compile":
                self.compile.append(info)
            elif kind == "paired":
                self.paired.append(info)
            elif "library" in info and "case" in info:
                key = (info["library"], info.get("variant", ""), info["case"], info.get("device", "cpu"))
                runs[key][info["n_iter_requested"]] = (bench["stats"], info)
            else:
                self.others.append(bench)
        self.bandwidth.sort()
        self.rechecks: list[Run] = []
        self.gpu_run: Run | None = None  # a separate GPU run (--gpu)
        self.overlays: list[tuple[Run, int, int]] = []  # later runs laid over this one: (run, ours, peers)
        self.results: dict = {}
        for key, by_iter in runs.items():
            self.results[key] = _summarise(by_iter)

    def overlay(self, later: Run) -> None:
        """Take from a later run (same machine, newer code) every case it measured, and its read floor.

        The report names the later file and what it replaced; cases it did not
        measure (peers, silhouette) stay from this run.
        """
        replaced = [key for key in later.results if key[0] == "gpukmeans"]
        self.results.update(later.results)
        if later.gpu_bandwidth:
            self.gpu_bandwidth = later.gpu_bandwidth
        names = {b["name"] for b in later.others}
        self.others = [b for b in self.others if b["name"] not in names] + later.others
        self.overlays.append((later, len(replaced), len(later.results) - len(replaced)))

    def bw_at(self, n_bytes: int) -> float | None:
        """Read bandwidth (GB/s) measured at the array size nearest to ``n_bytes`` (log scale)."""
        if not self.bandwidth:
            return None
        return min(self.bandwidth, key=lambda b: abs(math.log(b[0] / max(n_bytes, 1))))[1]

    def floor(self, info: dict) -> tuple[float | None, str]:
        """Time floor (s) of one iteration of a case, and what bounds it."""
        if info.get("device") == "cuda":
            bw = self.gpu_bandwidth
            return (info["x_bytes"] / (bw * 1e9), "HBM") if bw else (None, "")
        bw = self.bw_at(info["x_bytes"])
        mem = info["x_bytes"] / (bw * 1e9) if bw else None
        peak = self.flops.get(info["dtype"])
        flop = 2.0 * info["n_samples"] * info["n_clusters"] * info["n_features"] / (peak * 1e9) if peak else None
        if mem is None and flop is None:
            return None, ""
        if flop is not None and (mem is None or flop > mem):
            return flop, "GEMM"
        return mem, "memory"

    def get(self, library: str, case: str, variant: str = "", device: str = "cpu") -> dict | None:
        return self.results.get((library, variant, case, device))

    def best_peer(self, library: str, case: str, device: str = "cpu", in_run: bool = False) -> dict | None:
        """The fastest run (per iteration) of ``library`` on ``case`` over its variants (threads).

        Unless ``in_run``, re-check sessions (``--recheck``) count too, so that every ratio against a peer
        uses the fastest time that peer showed (the conservative choice); such results carry ``recheck``.
        """
        found = [r for (lib, _, c, dev), r in self.results.items() if lib == library and c == case and dev == device]
        if not in_run:
            for other in self.rechecks:
                found += [
                    {**r, "recheck": True}
                    for (lib, _, c, dev), r in other.results.items()
                    if lib == library and c == case and dev == device
                ]
        found = [r for r in found if r["per_iter"] is not None]
        return min(found, key=lambda r: r["per_iter"]) if found else None


def _summarise(by_iter: dict) -> dict:
    lo, hi = min(by_iter), max(by_iter)
    (s_lo, i_lo), (s_hi, i_hi) = by_iter[lo], by_iter[hi]
    per_iter = None
    if hi != lo and i_hi["n_iter"] > i_lo["n_iter"]:
        per_iter = (s_hi["median"] - s_lo["median"]) / (i_hi["n_iter"] - i_lo["n_iter"])
        if per_iter <= 0:  # noise larger than the signal: say so rather than print nonsense
            per_iter = None
    peaks = [i.get("peak_rss_extra_bytes") for _, i in by_iter.values() if i.get("peak_rss_extra_bytes") is not None]
    setup = s_lo["median"] - i_lo["n_iter"] * per_iter if per_iter is not None else None
    return {
        "info": i_hi,
        "per_iter": per_iter,
        "setup": setup,
        "fit": s_hi["median"],
        "fit_short": s_lo["median"],
        "n_iter": i_hi["n_iter"],
        "n_iter_short": i_lo["n_iter"],
        "iqr_rel": (s_hi["iqr"] / s_hi["median"]) if s_hi.get("median") else None,
        "rounds": s_hi["rounds"],
        "peak": max(peaks) if peaks else None,
        "variant": i_hi.get("variant", ""),
    }


# ---------------------------------------------------------------- formatting


def ms(t: float | None) -> str:
    if t is None:
        return "n/a"
    t *= 1e3
    return f"{t:.3g}" if t < 100 else f"{t:.0f}"


def sec(t: float | None) -> str:
    return "n/a" if t is None else (f"{t:.3g}" if t < 100 else f"{t:.0f}")


def ratio(a: float | None, b: float | None) -> str:
    return "" if not a or not b else f"{a / b:.2f}"


def mb(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:,.0f}"


def nfmt(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def case_id(data: str, n: int, d: int, k: int, dtype: str, metric: str = "euclidean", update: str = "mean") -> str:
    return f"{data}-{nfmt(n)}x{d}-k{k}-{dtype}-{metric}-{update}"


def case_label(info: dict) -> str:
    return f"{info['data']} {nfmt(info['n_samples'])} x {info['n_features']}, k={info['n_clusters']}, {info['dtype']}"


# ---------------------------------------------------------------- sections


def machine_section(run: Run) -> str:
    m = run.machine
    v = m.get("versions", {})
    lines = ["## Machine and software\n"]
    caches = m.get("caches", {})
    lines.append(
        f"- CPU: **{m.get('cpu_model', '?')}**, {m.get('logical_cpus', '?')} logical CPUs "
        f"({caches.get('Hypervisor vendor', 'bare metal')} guest), {m.get('memory_gib', '?')} GiB memory; "
        f"caches as reported: L1d {caches.get('L1d cache', '?')}, L2 {caches.get('L2 cache', '?')}, "
        f"L3 {caches.get('L3 cache', '?')}; SIMD: {', '.join(m.get('cpu_flags', [])) or '?'}."
    )
    gpus = m.get("gpus") or []
    none = "none in this run" + (
        " (GPU figures: see the GPU section)" if run.gpu_run else ": the GPU path is unmeasured"
    )
    lines.append(f"- GPU: {', '.join(gpus) if gpus else none}.")
    lines.append(f"- OS: {m.get('platform', '?')}.")
    libs = ", ".join(f"{k} {val}" if val else f"{k} not installed" for k, val in v.items())
    lines.append(f"- Versions: {libs}.")
    nb = m.get("numba", {})
    lines.append(
        f"- gpukmeans CPU backend: numba threading layer `{nb.get('threading_layer', '?')}`, "
        f"{nb.get('num_threads', '?')} threads."
    )
    for b in m.get("blas", []):
        lines.append(
            f"- Loaded {b.get('internal_api')} library `{b.get('filepath')}` {b.get('version') or ''}: "
            f"{b.get('num_threads')} threads"
            + (f", kernel `{b['architecture']}`" if b.get("architecture") else "")
            + (f", threading `{b['threading_layer']}`" if b.get("threading_layer") else "")
            + "."
        )
    env = m.get("environment") or {}
    lines.append(
        f"- Environment at the end of the run: {', '.join(f'{k}={val}' for k, val in env.items()) or 'none set'}."
    )
    if "thread_environment_start" in run.meta:
        start = run.meta["thread_environment_start"]
        lines.append(
            f"- Thread variables at the start of the run: {', '.join(f'{k}={v}' for k, v in start.items()) or 'none'}"
            f"; at the end: {', '.join(f'{k}={v}' for k, v in run.meta.get('thread_environment_end', {}).items())}"
            " (modules of the session may change them; unless OMP_WAIT_POLICY is set, `import gpukmeans` sets "
            "`GOMP_SPINCOUNT=1000`, which the peers' OpenMP runtimes in the same process inherit; the run "
            "of this report recorded only the variables above)."
        )
    meta = run.meta
    lines.append(
        f"- Run: {meta.get('started', '?')} to {meta.get('finished', '?')}; load average (1, 5, 15 min) "
        f"{meta.get('load_average_start')} at the start, {meta.get('load_average_end')} at the end; "
        f"{meta.get('rounds', '?')} timed rounds per case after one warm-up round"
        + (f"; samples capped at {meta['n_cap']:,} (smoke run)" if meta.get("n_cap") else "")
        + "."
    )
    lines.append("\n### Measured limits (same run)\n")
    rows = [[f"{b / 2**20:,.1f}".removesuffix(".0") + " MiB", f"{gbs:.1f}"] for b, gbs in run.bandwidth]
    if rows:
        lines.append("Memory read bandwidth (parallel numba sum over float32, best of 7 passes):\n")
        lines.append(table(["array size", "GB/s"], rows))
    if run.flops:
        lines.append(
            "GEMM peak (NumPy BLAS `matmul`, best of 5): "
            + ", ".join(f"{dt} {g:.0f} GFLOP/s" for dt, g in sorted(run.flops.items()))
            + ".\n"
        )
    if run.gpu_bandwidth:
        lines.append(f"GPU read bandwidth (CuPy sum over 1 GiB): {run.gpu_bandwidth:.0f} GB/s.\n")
    return "\n".join(lines) + "\n"


def headline_rows(run: Run, ns=(1_000_000, 3_000_000, 10_000_000)) -> list[dict]:
    out = []
    for n in ns:
        cid = case_id("pixels", n, 3, 8, "float32")
        ours = run.get("gpukmeans", cid)
        if not ours:
            continue
        fl, _ = run.floor(ours["info"])
        sk = run.best_peer("scikit-learn", cid)
        fa = run.best_peer("faiss", cid)
        out.append({"n": n, "ours": ours, "sk": sk, "fa": fa, "floor": fl})
    return out


def headline_section(run: Run) -> str:
    rows = []
    for h in headline_rows(run, (100_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000)):
        o, sk, fa = h["ours"], h["sk"], h["fa"]
        rows.append(
            [
                f"{nfmt(h['n'])} x 3",
                ms(o["per_iter"]),
                _peer_cell(run, "scikit-learn", sk, f"pixels-{nfmt(h['n'])}x3-k8-float32-euclidean-mean"),
                (f"{_peer_cell(run, 'faiss', fa, None)} ({fa['variant']})" if fa else "not run"),
                ratio(sk["per_iter"] if sk else None, o["per_iter"]),
                ratio(fa["per_iter"] if fa else None, o["per_iter"]),
                ms(h["floor"]),
                ratio(o["per_iter"], h["floor"]),
            ]
        )
    if not rows:
        return ""
    return (
        "## Headline: euclidean k-means, pixels (3 features), k = 8, float32\n\n"
        + table(
            [
                "n",
                "gpukmeans ms/iter",
                "scikit-learn ms/iter",
                "FAISS ms/iter (threads)",
                "x faster than scikit-learn",
                "x faster than FAISS",
                "memory floor ms",
                "x floor",
            ],
            rows,
        )
        + "\n"
    )


def _peer_cell(run: Run, library: str, best: dict | None, case: str | None) -> str:
    """A peer's ms/iter; when the fastest came from a re-check session, the in-run figure too."""
    if best is None:
        return "not run"
    if best.get("recheck") and case is not None:
        own = run.best_peer(library, case, in_run=True)
        return f"{ms(best['per_iter'])} (re-check; {ms(own['per_iter']) if own else 'n/a'} in the main run)"
    return ms(best["per_iter"]) + (" (re-check)" if best.get("recheck") else "")


def recheck_section(run: Run) -> str:
    if not run.rechecks:
        return ""
    rows = []
    for other in run.rechecks:
        for (lib, variant, cid, dev), r in sorted(other.results.items()):
            main = run.results.get((lib, variant, cid, dev))
            rows.append(
                [
                    lib,
                    variant or f"{r['info'].get('threads', '?')} threads",
                    case_label(r["info"]),
                    ms(main["per_iter"]) if main else "not in main run",
                    ms(r["per_iter"]),
                    ratio(main["per_iter"] if main else None, r["per_iter"]),
                ]
            )
        src = os.path.basename(other.path)
        started = other.meta.get("started", "?")
    return (
        "## Peers re-checked in a separate session\n\n"
        f"`{src}` (started {started}, same machine, same code, peers only, recorded threads in the peers table of "
        "that file). Every ratio against a peer in this report uses the faster of the two sessions (marked `r` in "
        "the tables when it is the re-check).\n\n"
        + table(["library", "threads", "case", "main run ms/iter", "re-check ms/iter", "main / re-check"], rows)
        + "\n"
    )


def targets_section(run: Run) -> str:
    lines = ["## Targets of the benchmark issue (2-core CPU)\n"]
    heads = headline_rows(run)
    rows = []
    for h in heads:
        o = h["ours"]["per_iter"]
        for name, peer in (("scikit-learn", h["sk"]), ("FAISS", h["fa"])):
            if peer is None or o is None or peer["per_iter"] is None:
                rows.append([f"euclidean >= 4x faster than {name}", f"{nfmt(h['n'])} x 3", "not measured", "?"])
                continue
            r = peer["per_iter"] / o
            rows.append(
                [
                    f"euclidean >= 4x faster than {name}",
                    f"{nfmt(h['n'])} x 3",
                    f"{r:.2f}x",
                    "met" if r >= 4 else "MISSED",
                ]
            )
        if h["floor"] and o:
            r = o / h["floor"]
            rows.append(["euclidean within 3x of the memory floor", f"{nfmt(h['n'])} x 3", f"{r:.1f}x", _ok(r <= 3)])
        for metric, update in METRIC_UPDATES[1:]:
            other = run.get("gpukmeans", case_id("pixels", h["n"], 3, 8, "float32", metric, update))
            if other and other["per_iter"] and o:
                r = other["per_iter"] / o
                rows.append(
                    [
                        f"{metric} ({update} update) within 1.5x of euclidean",
                        f"{nfmt(h['n'])} x 3",
                        f"{r:.2f}x",
                        _ok(r <= 1.5),
                    ]
                )
    rows += paired_target_rows(run)
    rows += gpu_target_rows(run)
    lines.append(table(["target", "case (k=8, float32)", "measured", "status"], rows))
    return "\n".join(lines) + "\n"


#: bench_paired.py's pairs: (target, whether B's median marginal over A's meets it)
PAIRED_TARGETS = {
    "scikit-learn/euclidean": ("euclidean >= 4x faster than scikit-learn, paired rounds", lambda r: r >= 4),
    "guarded/euclidean": ("chebyshev (guarded update) within 1.5x of euclidean, paired rounds", lambda r: r <= 1.5),
    "median/euclidean": ("manhattan (median update) within 1.5x of euclidean, paired rounds", lambda r: r <= 1.5),
    "manhattan-mean/euclidean": ("manhattan (mean update) within 1.5x of euclidean, paired rounds", lambda r: r <= 1.5),
    "chebyshev-mean/euclidean": ("chebyshev (mean update) within 1.5x of euclidean, paired rounds", lambda r: r <= 1.5),
}


def _paired(run: Run) -> list[dict]:
    return sorted(run.paired, key=lambda i: (i["pair"], i["n_samples"]))


def paired_target_rows(run: Run) -> list[list[str]]:
    rows = []
    for info in _paired(run):
        if info["pair"] in PAIRED_TARGETS:
            name, ok = PAIRED_TARGETS[info["pair"]]
            r = info["ratio"]
            rows.append([name, f"{nfmt(info['n_samples'])} x 3", f"{r:.2f}x", _ok(ok(r))])
    return rows


def paired_section(run: Run) -> str:
    if not run.paired:
        return ""
    rows = []
    for info in _paired(run):
        a_side, b_side = "gpukmeans euclidean", info["pair"].split("/")[0]
        ratios = info["ratios"]
        rows.append(
            [
                f"{b_side} / {a_side}",
                case_label(info),
                ms(statistics.median(info["a_seconds"])),
                ms(statistics.median(info["b_seconds"])),
                f"{info['ratio']:.2f}",
                f"{min(ratios):.2f}-{max(ratios):.2f}",
                str(len(ratios)),
            ]
        )
    return (
        "## Paired rounds\n\n"
        "The main tables time each library's cases back to back, so the two sides of a ratio are measured minutes "
        "apart and the machine can change in between. `bench_paired.py` times both sides of the headline ratios in "
        "every round (order AB, then BA), each with the same short and long fits as the main suite: each round "
        "gives one marginal iteration per side. `A ms/iter` and `B ms/iter` are the medians over the rounds, "
        "`ratio` is B's over A's, and `per-round range` the range of the ratios of single rounds (one fit per side "
        "each: far noisier).\n\n"
        + table(["B / A", "case", "A ms/iter", "B ms/iter", "ratio", "per-round range", "rounds"], rows)
        + "\n"
    )


def _vs(r: float, peer: str) -> str:
    """``r`` = peer time / our time, in words."""
    x = r if r >= 1 else 1 / r
    digits = 2 if x < 10 else 1  # 3.96x is not 4.0x next to a 4x target
    return f"{x:.{digits}f}x " + ("faster" if r >= 1 else "slower") + f" than {peer}"


def _ok(flag: bool) -> str:
    return "met" if flag else "MISSED"


SECTIONS = [
    (
        "Time vs n (pixels, 3 features, k = 8, float32)",
        lambda i: i["data"] == "pixels" and i["n_clusters"] == 8 and i["dtype"] == "float32",
    ),
    ("float64 (pixels, 3 features, k = 8)", lambda i: i["data"] == "pixels" and i["dtype"] == "float64"),
    (
        "Time vs k (pixels, 1M x 3, float32)",
        lambda i: i["data"] == "pixels" and i["n_samples"] == 1_000_000 and i["dtype"] == "float32",
    ),
    ("More features (multispectral 8 and 13, embeddings 64; float32)", lambda i: i["data"] != "pixels"),
]


def cases_section(run: Run) -> str:
    ours = {k: r for k, r in run.results.items() if k[0] == "gpukmeans" and k[3] == "cpu"}
    order = {mu: i for i, mu in enumerate(METRIC_UPDATES)}

    def sort_key(item):
        i = item[1]["info"]
        return (
            i["data"],
            i["n_features"],
            i["dtype"],
            i["n_clusters"],
            i["n_samples"],
            order.get((i["metric"], i["update"]), 9),
        )

    parts = [
        "## gpukmeans on the CPU, every case\n",
        "`ms/iter`: marginal time of one Lloyd iteration. `vs euclidean`: ms/iter over the euclidean/mean "
        "ms/iter of the same case. `floor`: bytes of X / read bandwidth measured at that size (or `2nkd` / GEMM "
        "peak when larger, marked G). `fit`: end-to-end `fit` of the long run, seconds (iterations; "
        "`converged` when it stopped on convergence, also in its last iteration: its marginal then includes "
        "that stop once, for the guarded update a comparison of its candidates on every sample). "
        "`set-up ms`: the part of a fit that does not scale with the iterations (short fit minus its iterations: "
        "validation, buffers, the final assignment). `peak MB`: extra resident memory during the fits. "
        "Peers are euclidean only: their columns are filled on the euclidean/mean rows "
        "(`x faster` = peer ms/iter / gpukmeans ms/iter; FAISS at its faster thread "
        "count).\n",
    ]
    for title, pred in SECTIONS:
        items = sorted(((k, r) for k, r in ours.items() if pred(r["info"])), key=sort_key)
        if not items:
            continue
        rows = []
        for (_, _, cid, _), r in items:
            i = r["info"]
            euclid = run.get(
                "gpukmeans", case_id(i["data"], i["n_samples"], i["n_features"], i["n_clusters"], i["dtype"])
            )
            fl, bound = run.floor(i)
            sk = run.best_peer("scikit-learn", cid)
            fa = run.best_peer("faiss", cid)
            conv = ", converged" if r["n_iter"] < i["n_iter_requested"] or i.get("converged") else ""
            rows.append(
                [
                    f"{nfmt(i['n_samples'])} x {i['n_features']}, k={i['n_clusters']}, {i['dtype']}",
                    f"{i['metric']}/{i['update']}",
                    ms(r["per_iter"]),
                    ratio(r["per_iter"], euclid["per_iter"] if euclid else None),
                    ms(fl) + (" G" if bound == "GEMM" else ""),
                    ratio(r["per_iter"], fl),
                    f"{sec(r['fit'])} ({r['n_iter']}{conv})",
                    ms(r["setup"]),
                    mb(r["peak"]),
                    (ms(sk["per_iter"]) + (" r" if sk.get("recheck") else "")) if sk else "",
                    ratio(sk["per_iter"] if sk else None, r["per_iter"]),
                    (ms(fa["per_iter"]) + (" r" if fa.get("recheck") else "")) if fa else "",
                    ratio(fa["per_iter"] if fa else None, r["per_iter"]),
                ]
            )
        parts.append(f"### {title}\n")
        parts.append(
            table(
                [
                    "case",
                    "metric/update",
                    "ms/iter",
                    "vs euclidean",
                    "floor ms",
                    "x floor",
                    "fit s (it)",
                    "set-up ms",
                    "peak MB",
                    "sklearn ms/iter",
                    "x faster",
                    "FAISS ms/iter",
                    "x faster",
                ],
                rows,
            )
        )
    return "\n".join(parts) + "\n"


def peers_section(run: Run) -> str:
    rows = []
    items = [(k, r) for k, r in run.results.items() if k[0] != "gpukmeans"]
    items.sort(
        key=lambda kr: (
            kr[0][0],
            kr[1]["info"]["data"],
            kr[1]["info"]["n_features"],
            kr[1]["info"]["dtype"],
            kr[1]["info"]["n_clusters"],
            kr[1]["info"]["n_samples"],
            kr[0][1],
        )
    )
    for (lib, variant, cid, device), r in items:
        i = r["info"]
        ours = run.get("gpukmeans", cid, device=device)
        rows.append(
            [
                lib,
                variant or f"{i.get('threads', '?')} threads",
                case_label(i),
                ms(r["per_iter"]),
                f"{sec(r['fit'])} ({r['n_iter']})",
                ms(r["setup"]),
                mb(r["peak"]),
                i.get("compute_dtype", i["dtype"]),
                ratio(r["per_iter"], ours["per_iter"] if ours else None),
            ]
        )
    if not rows:
        return ""
    return (
        "## Peers, every run\n\n"
        + table(
            [
                "library",
                "threads",
                "case",
                "ms/iter",
                "fit s (it)",
                "set-up ms",
                "peak MB",
                "computes in",
                "gpukmeans x faster",
            ],
            rows,
        )
        + "\n"
    )


def compile_table(entries: list[dict]) -> str:
    """The compile-time steps of ``bench_compile.py``'s script, cold and cached, one row each (seconds)."""
    rows = []
    for c in entries:
        for label in ("cold", "cached"):
            res = c.get(label)
            if not res:
                continue
            steps = res["steps"]
            rows.append(
                [c["dtype"], label, sec(res["import_s"])]
                + [sec(steps[s]["compile_s"]) for s in ("euclidean/mean", "manhattan/median", "chebyshev/guarded")]
                + [sec(res["total_compile_s"])]
            )
    return table(
        ["dtype", "cache", "import gpukmeans", "euclidean/mean", "+ manhattan/median", "+ chebyshev/guarded", "total"],
        rows,
    )


def compile_section(run: Run) -> str:
    entries = [c for c in run.compile if c.get("device", "cpu") == "cpu"]
    if not entries:
        return ""
    return (
        "## JIT compile time (separate processes)\n\n"
        "First fit minus second fit of a 20,000 x 3 problem, per step, in a fresh process; `cold`: empty numba "
        "cache (first use after installation), `cached`: the same cache directory in a new process (every later "
        "use). Each step adds the kernels it needs to the earlier ones. Seconds.\n\n" + compile_table(entries) + "\n"
    )


def others_section(run: Run) -> str:
    if not run.others:
        return ""
    rows = []
    for b in run.others:
        info = b.get("extra_info", {})
        keep = {k: v for k, v in info.items() if not isinstance(v, (dict, list)) or k in ("timings_s",)}
        desc = ", ".join(f"{k}={_short(v)}" for k, v in keep.items())
        st = b["stats"]
        rows.append(
            [b.get("fullname", b["name"]).split("/")[-1], sec(st["median"]), sec(st["min"]), st["rounds"], desc]
        )
    files = sorted({b.get("fullname", b["name"]).split("::")[0].split("/")[-1] for b in run.others})
    return (
        "## Other benchmarks of the suite (silhouette, segmentation, Dask, ...)\n\n"
        f"From {', '.join(f'`benchmarks/{f}`' for f in files)} (see their docstrings for what each case does), "
        "run in the same session. Seconds.\n\n"
        + table(["benchmark", "median s", "min s", "rounds", "details (extra_info)"], rows)
        + "\n"
    )


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x)}" for k, x in v.items()) + "}"
    return str(v)


def skipped_section(run: Run) -> str:
    skipped = run.meta.get("skipped", [])
    if not skipped:
        return ""
    by_reason: dict = defaultdict(list)
    for s in skipped:
        by_reason[s["reason"]].append(s["test"].split("::")[-1])
    rows = []
    for reason, tests in by_reason.items():
        cases = {re.sub(r"-it\d+(-t\d+)?\]$", "]", t).split("[", 1)[-1] for t in tests}
        funcs = sorted({t.split("[")[0] for t in tests})
        rows.append([reason, len(tests), len(cases), ", ".join(funcs)])
    return (
        "## Not run (skipped, with the reason)\n\n"
        + table(["reason", "tests", "cases", "test functions"], rows)
        + f"\nPeers were also not timed above {10_000_000:,} samples (time budget of one run), and only on "
        "euclidean/mean cases (they have no other metric).\n\n"
    )


FAIRNESS = """## How the comparison is made

- **Same start, same work**: every library gets the same data, the same dtype and the same initial centers
  (`init=` array: `k` distinct samples drawn with a fixed seed), and runs a fixed number of Lloyd iterations
  (`tol=0`, no early stop other than strict convergence, which is flagged in the tables; FAISS always runs
  `niter`). Each case runs at a short and a long iteration count (2 and 12; 2 and 7 from 10M samples on);
  **ms/iter** is the difference of the two medians divided by the difference of the iterations really run, so
  set-up that a fit does once (validation, copies, scikit-learn's centring of X, the final assignment) cancels.
  **fit** is the end-to-end time of the long run.
- **Threads**: gpukmeans runs on numba's pool and scikit-learn on its OpenMP runtime, each with all (2) cores.
  FAISS is timed with 1 and 2 OpenMP threads at 3 features (1 is faster there) and with 2 elsewhere; ratios use
  its faster run.
- **Dtypes**: float32 data stays float32 in all three libraries. scikit-learn computes distances in the input
  dtype through chunked GEMM on a mean-centred copy, and sums its inertia in the input dtype; FAISS is
  float32-only, so float64 cases do not run it (listed as skipped) rather than timing a conversion; gpukmeans
  computes distances in the input dtype and accumulates sums in float64.
- **Interference**: OpenMP runtimes spin after each parallel region, and on 2 cores a library called right after
  another one can be slowed several-fold. Every library therefore runs all of its cases back to back (one test
  function per library, in file order), with an untimed warm-up round before each case's timed rounds.
  gpukmeans's kernels are compiled (or loaded from numba's on-disk cache) in that warm-up round; compile time is
  measured separately, in fresh processes.
- **Floor**: one iteration must read X once. The floor is the bytes of X divided by the read bandwidth measured in
  this run on an array of about the same size (exactly X's size for the pixel cases of the headline; a
  cache-resident X is held to the cache's bandwidth), or
  `2 n k d` FLOPs at the measured GEMM peak when that is larger (many features and clusters). `x floor` = measured
  / floor: 1.0 would be the machine's limit.
- **Memory**: peak extra resident memory of the process during the timed fits, above the level before them
  (Linux `VmHWM` reset through `/proc/self/clear_refs`); it includes each library's copies and buffers.
"""


def plots(run: Run, outdir: Path, md_dir: Path) -> tuple[str, list[Path]]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        msg = "matplotlib not installed (`pip install gpukmeans[bench]`): plots skipped."
        print(msg, file=sys.stderr)
        return f"_{msg}_\n", []
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    styles = {"mean": "-", "median": "--", "guarded": ":"}

    def series(pred, xkey):
        out = defaultdict(list)
        sessions = [(run, "")] + [(other, " (re-check)") for other in run.rechecks]
        for session, tag in sessions:
            for (lib, variant, _cid, dev), r in session.results.items():
                i = r["info"]
                if dev != "cpu" or r["per_iter"] is None or not pred(i):
                    continue
                if lib != "gpukmeans":
                    threads = i.get("threads")
                    variant = f"{threads} thread{'s' if threads != 1 else ''}{tag}"
                out[(lib, variant, i["metric"], i["update"])].append((i[xkey], r["per_iter"] * 1e3, i))
        return {k: sorted(v, key=lambda t: t[0]) for k, v in out.items()}

    figs = [
        (
            "time_vs_n.png",
            "n_samples",
            "samples n",
            "pixels, 3 features, k = 8, float32",
            lambda i: i["data"] == "pixels" and i["n_clusters"] == 8 and i["dtype"] == "float32",
        ),
        (
            "time_vs_k.png",
            "n_clusters",
            "clusters k",
            "pixels, 1M x 3, float32",
            lambda i: i["data"] == "pixels" and i["n_samples"] == 1_000_000 and i["dtype"] == "float32",
        ),
        (
            "time_vs_features.png",
            "n_features",
            "features d",
            "k = 8, float32 (pixels and multispectral 1M, embeddings 300k); y: ns per sample",
            lambda i: (
                i["n_clusters"] == 8
                and i["dtype"] == "float32"
                and i["n_samples"] == (300_000 if i["data"] == "embeddings" else 1_000_000)
            ),
        ),
    ]
    for name, xkey, xlabel, title, pred in figs:
        data = series(pred, xkey)
        if xkey == "n_features":  # different n per data set: per sample
            data = {key: [(x, y * 1e6 / i["n_samples"], i) for x, y, i in pts] for key, pts in data.items()}
        if not data:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
        for ax, metric in zip(axes, ("euclidean", "manhattan", "chebyshev")):
            floors = {}
            for (lib, variant, m, u), pts in sorted(data.items()):
                if lib == "gpukmeans" and m != metric:
                    continue
                if lib != "gpukmeans" and metric != "euclidean":
                    continue  # peers have only euclidean
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                label = f"gpukmeans {u}" if lib == "gpukmeans" else f"{lib} {variant}".strip()
                ax.plot(xs, ys, styles.get(u, "-") if lib == "gpukmeans" else "-.", marker="o", ms=3, label=label)
                if lib == "gpukmeans":
                    for x, _, i in pts:
                        fl, _ = run.floor(i)
                        if fl:
                            floors[x] = fl * (1e9 / i["n_samples"] if xkey == "n_features" else 1e3)
            if floors:
                xs = sorted(floors)
                ax.plot(xs, [floors[x] for x in xs], color="grey", lw=1, label="floor (X / bandwidth)")
            ax.set_xscale("log", base=10 if xkey == "n_samples" else 2)
            ax.set_yscale("log")
            ax.set_title(metric)
            ax.set_xlabel(xlabel)
            ax.grid(True, which="both", alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        axes[0].set_ylabel("ns per sample per iteration" if xkey == "n_features" else "ms per Lloyd iteration")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        path = outdir / name
        fig.savefig(path, dpi=72)
        plt.close(fig)
        written.append(path)
    text = "".join(f"![{p.stem}]({os.path.relpath(p, md_dir)})\n\n" for p in written)
    return text, written


def gpu_section(run: Run) -> str:
    g = run.gpu_run
    if g is None and any(k[3] == "cuda" for k in run.results):
        g = run
    if g is None:
        return (
            "## GPU\n\n"
            "**The GPU path is unmeasured in this report.** Run `bash scripts/gpu_check.sh` on a machine with an "
            "NVIDIA GPU and CuPy, then pass its `bench-gpu.json` with `--gpu`.\n\n"
        )
    m = g.machine
    gpus = ", ".join(m.get("gpus") or ["?"])
    lines = [
        "## GPU\n",
        f"From `{os.path.basename(g.path)}`: a run of `scripts/gpu_check.sh` on {gpus} "
        f"(host {m.get('cpu_model', '?')}, {m.get('logical_cpus', '?')} cores; started {g.meta.get('started', '?')}). "
        "X is copied to the device once, outside the timings; every timed fit ends with a device synchronisation; "
        "ms/iter is the marginal time of one Lloyd iteration (long minus short fit, divided by the extra "
        "iterations), as on the CPU.\n",
    ]
    for later, n_ours, n_peers in g.overlays:
        lm = later.machine
        lines.append(
            f"Laid over it: `{os.path.basename(later.path)}`, a later run on {', '.join(lm.get('gpus') or ['?'])} "
            f"(started {later.meta.get('started', '?')}): its {n_ours} gpukmeans cases"
            + (f", {n_peers} peer cases" if n_peers else "")
            + (" and its read floor" if later.gpu_bandwidth else "")
            + " replace the first run's; the other rows are from the first run.\n"
        )
    if g.gpu_bandwidth:
        lines.append(
            f"Read floor: a CuPy sum over 1 GiB ran at {g.gpu_bandwidth:.0f} GB/s; the floor of a case is the bytes "
            "of X divided by that rate (one read of X per iteration).\n"
        )
    rows = []
    ours = sorted(
        ((k, r) for k, r in g.results.items() if k[0] == "gpukmeans" and k[3] == "cuda"),
        key=lambda kr: (kr[1]["info"]["data"], kr[1]["info"]["n_samples"], kr[1]["info"]["n_clusters"], kr[0][2]),
    )
    for (_, _, cid, _), r in ours:
        i = r["info"]
        floor, _ = g.floor(i)
        torch = g.get("torch", cid, device="cuda")
        o = r["per_iter"]
        if o and floor and o < floor:  # faster than reading X once: the marginal difference is noise
            rows.append(
                [case_label(i), f"{i['metric']} / {i['update']}", ms(o) + " (below the floor: noise)", "", "", "", ""]
            )
            continue
        rows.append(
            [
                case_label(i),
                f"{i['metric']} / {i['update']}",
                ms(o),
                f"{i['x_bytes'] / o / 1e9:,.0f}" if o else "n/a",
                ratio(o, floor),
                ms(torch["per_iter"]) if torch else "",
                ratio(torch["per_iter"], o) if torch else "",
            ]
        )
    lines.append(
        table(
            [
                "case",
                "metric / update",
                "ms/iter",
                "GB/s of X",
                "x read floor",
                "PyTorch ms/iter",
                "gpukmeans x faster",
            ],
            rows,
        )
    )
    sil = [
        b for b in g.others if b.get("extra_info", {}).get("device") == "cuda" and "silhouette" in b.get("group", "")
    ]
    if sil:
        srows = []
        for b in sorted(sil, key=lambda b: b["name"]):
            e = b["extra_info"]
            srows.append(
                [b["group"].split()[-1], e.get("path", "?"), f"{e.get('n_samples', 0):,}", sec(b["stats"]["median"])]
            )
        lines.append("Exact silhouette of the Aral crop (179,400 pixels, k = 3) on the GPU:\n")
        lines.append(table(["metric", "path", "samples", "seconds"], srows))
    gpu_compile = [c for c in g.compile if c.get("device") == "cuda"]
    if gpu_compile:
        lines.append(
            "Kernel compile time (NVRTC), apart from the run time: the first fit minus the second of a 20,000 x 3 "
            "problem on the GPU, per step, in a fresh process; `cold`: an empty CuPy kernel cache (the first GPU "
            "fit after installation), `cached`: the same cache in a new process. Seconds.\n"
        )
        lines.append(compile_table(gpu_compile))
    else:
        lines.append("Kernel compile time (NVRTC): not measured in this run.\n")
    profile = Path(g.path).with_suffix(".profile.txt")
    if profile.exists():
        lines.append(
            "Where the time of one iteration goes at 100M x 3 (`scripts/gpu_profile.py`, same machine, best of 10 "
            "timed with CUDA events; `x read` is the time over one CuPy read of X):\n\n```\n"
            + profile.read_text().strip()
            + "\n```\n"
        )
    notes = Path(g.path).with_suffix(".notes.md")
    if notes.exists():
        lines.append(notes.read_text().strip() + "\n")
    skipped = g.meta.get("skipped") or []
    if skipped:
        reasons = sorted({s["reason"] for s in skipped})
        lines.append("Skipped in the GPU run: " + "; ".join(reasons) + ".\n")
    return "\n".join(lines) + "\n"


def gpu_target_rows(run: Run) -> list[list[str]]:
    g = run.gpu_run or run
    rows = []
    for metric, update in METRIC_UPDATES:
        r = g.get("gpukmeans", case_id("pixels", 100_000_000, 3, 8, "float32", metric, update), device="cuda")
        if r is None or r["per_iter"] is None:
            continue
        floor, _ = g.floor(r["info"])
        if floor:
            x = r["per_iter"] / floor
            rows.append(
                [f"GPU {metric} ({update}) within 2x of the HBM read floor", "100M x 3", f"{x:.1f}x", _ok(x <= 2)]
            )
    if not rows:
        rows.append(["GPU: within 2x of the HBM read floor", "100M x 3", "unmeasured (no GPU run given)", "open"])
    return rows


def render(run: Run, md_path: Path, plot_dir: Path, notes: str | None) -> str:
    m = run.machine
    heads = headline_rows(run)
    summary = []
    for h in heads:
        o = h["ours"]["per_iter"]
        bits = [f"{ms(o)} ms per iteration at {nfmt(h['n'])} x 3"]
        if h["sk"] and h["sk"]["per_iter"] and o:
            bits.append(_vs(h["sk"]["per_iter"] / o, "scikit-learn"))
        if h["fa"] and h["fa"]["per_iter"] and o:
            bits.append(_vs(h["fa"]["per_iter"] / o, "FAISS"))
        if h["floor"] and o:
            bits.append(f"{o / h['floor']:.1f}x the memory floor")
        summary.append("- " + ", ".join(bits) + ".")
    plot_text, _ = plots(run, plot_dir, md_path.parent)
    parts = [
        "# gpukmeans benchmarks\n",
        f"Generated by `scripts/bench_report.py` from `{os.path.relpath(run.path, md_path.parent)}` "
        f"(a real run on {m.get('cpu_model', '?')}, {m.get('logical_cpus', '?')} cores"
        f"{', GPU ' + ', '.join(m['gpus']) if m.get('gpus') else ', no GPU'})"
        + (
            f"; the GPU section comes from `{os.path.relpath(run.gpu_run.path, md_path.parent)}`, a run on "
            f"{', '.join(run.gpu_run.machine.get('gpus') or ['?'])}.\n"
            if run.gpu_run
            else ".\n"
        ),
    ]
    if summary:
        parts.append(
            "Euclidean k-means, k = 8, pixel data (3 features), float32, 2 cores:\n\n" + "\n".join(summary) + "\n"
        )
    parts += [
        "How to run: `pip install -e .[bench]`, then `python scripts/bench_report.py --run` (full suite, about "
        "15 minutes on 2 cores; writes `benchmarks/results/*.json`, this file and `benchmarks/plots/`), or "
        "`pytest benchmarks --benchmark-json=run.json` and `python scripts/bench_report.py run.json`. CI runs a "
        "smoke pass: `GPUKMEANS_BENCH_N=20000 pytest benchmarks -q --benchmark-disable`.\n",
        headline_section(run),
        targets_section(run),
        paired_section(run),
    ]
    if notes:
        parts.append("## Analysis of this run\n\n" + notes.strip() + "\n")
    parts += [
        "## Plots\n\n" + plot_text,
        FAIRNESS,
        cases_section(run),
        peers_section(run),
        recheck_section(run),
        compile_section(run),
        others_section(run),
        gpu_section(run),
        skipped_section(run),
        machine_section(run),
    ]
    return "\n".join(p for p in parts if p)


def readme_paragraph(run: Run) -> str:
    """The README's benchmark paragraph: headline figures, machine, how to run, link."""
    m = run.machine
    bits = []
    for h in headline_rows(run):
        o = h["ours"]["per_iter"]
        if o is None:
            continue
        part = f"{ms(o)} ms per iteration at {nfmt(h['n'])} x 3"
        extra = []
        if h["sk"] and h["sk"]["per_iter"]:
            extra.append(_vs(h["sk"]["per_iter"] / o, "scikit-learn"))
        if h["fa"] and h["fa"]["per_iter"]:
            extra.append(_vs(h["fa"]["per_iter"] / o, "FAISS"))
        if h["floor"]:
            extra.append(f"{o / h['floor']:.1f}x the memory-bandwidth floor")
        bits.append(part + (f" ({', '.join(extra)})" if extra else ""))
    machine = f"{m.get('cpu_model', '?')}, {m.get('logical_cpus', '?')} cores" + (
        f", {', '.join(m['gpus'])}" if m.get("gpus") else ", no GPU"
    )
    return (
        "## Benchmarks\n\n"
        f"On an {machine}, euclidean k-means of pixel data (3 features, float32, k = 8), same initial centers "
        "and iteration count for every library, runs at "
        + "; ".join(bits)
        + ". "
        + _targets_sentence(run)
        + _gpu_sentence(run)
        + "Manhattan and chebyshev, other k, more features, float64, compile time, memory and the GPU figures are "
        "in [BENCHMARKS.md](BENCHMARKS.md). Reproduce with `pip install -e .[bench]` and "
        "`python scripts/bench_report.py --run` (about 15 minutes on 2 cores); CI runs a smoke pass "
        "(`GPUKMEANS_BENCH_N=20000 pytest benchmarks -q --benchmark-disable`).\n"
    )


def _gpu_sentence(run: Run) -> str:
    g = run.gpu_run
    if g is None:
        return ""
    cid = case_id("pixels", 100_000_000, 3, 8, "float32")
    ours, torch = g.get("gpukmeans", cid, device="cuda"), g.get("torch", cid, device="cuda")
    if not ours or not ours["per_iter"]:
        return ""
    floor, _ = g.floor(ours["info"])
    bits = [f"{ms(ours['per_iter'])} ms per iteration at 100M x 3"]
    if floor:
        bits.append(
            f"{ours['per_iter'] / floor:.1f}x the time of one read of X (target 2x: missed)"
            if ours["per_iter"] / floor > 2
            else f"{ours['per_iter'] / floor:.1f}x one read of X"
        )
    if torch and torch["per_iter"]:
        bits.append(_vs(torch["per_iter"] / ours["per_iter"], "a PyTorch cdist k-means"))
    gpus = ", ".join(g.machine.get("gpus") or ["?"])
    return f'On {gpus} (`backend="cuda"`) the same euclidean case runs at ' + ", ".join(bits) + ". "


def compact_json(path: Path) -> None:
    """Rewrite a pytest-benchmark JSON without indentation and per-benchmark options (about half the size)."""
    with open(path) as fh:
        doc = json.load(fh)
    for bench in doc.get("benchmarks", []):
        bench.pop("options", None)
        bench.pop("params", None)
    with open(path, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))


def _targets_sentence(run: Run) -> str:
    """Which of the CPU targets (4x both peers; within 3x of the floor; at 1M-10M x 3) this run meets, per size."""
    heads = [h for h in headline_rows(run) if h["ours"]["per_iter"]]
    if not heads:
        return ""
    peers_missed = [
        f"{nfmt(h['n'])} x 3"
        for h in heads
        if any(p and p["per_iter"] and p["per_iter"] / h["ours"]["per_iter"] < 4 for p in (h["sk"], h["fa"]))
    ]
    floor_missed = [f"{nfmt(h['n'])} x 3" for h in heads if h["floor"] and h["ours"]["per_iter"] / h["floor"] > 3]
    if not peers_missed and not floor_missed:
        return (
            "The performance targets (at least 4x faster than both peers and within 3x of the memory floor "
            "at 1M-10M x 3) are met. "
        )

    def status(missed):
        if not missed:
            return "met at every size"
        if len(missed) == len(heads):
            return f"missed at every size ({', '.join(missed)})"
        return f"missed at {', '.join(missed)} (met at the other sizes)"

    return (
        f"In this run the target of at least 4x faster than both peers is {status(peers_missed)}, and the "
        f"target of within 3x of the memory floor is {status(floor_missed)}; BENCHMARKS.md says where the "
        "time goes. "
    )


def run_suite(json_path: Path, extra: list[str]) -> int:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "benchmarks"),
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={json_path}",
        *extra,
    ]
    env = dict(os.environ)
    env.setdefault("GPUKMEANS_BENCH_ROUNDS", "7")  # the committed reports use 7 timed rounds per case
    print(f"running (GPUKMEANS_BENCH_ROUNDS={env['GPUKMEANS_BENCH_ROUNDS']}):", " ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd, cwd=ROOT, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="?", help="pytest-benchmark JSON of `pytest benchmarks` (omit with --run)")
    parser.add_argument("--run", action="store_true", help="run the suite first (writes benchmarks/results/...)")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments for --run (one string)")
    parser.add_argument("-o", "--output", default=str(ROOT / "BENCHMARKS.md"), help="markdown to write")
    parser.add_argument("--plots", default=str(ROOT / "benchmarks" / "plots"), help="folder for the PNG plots")
    parser.add_argument("--readme", help="also write the README's benchmark paragraph to this file")
    parser.add_argument("--compact", action="store_true", help="rewrite the JSON compactly (as --run does)")
    parser.add_argument(
        "--gpu",
        action="append",
        default=[],
        help="pytest-benchmark JSON of a GPU run (scripts/gpu_check.sh): the GPU section; repeat it to lay later "
        "runs of the same machine over the first (their cases replace the first's)",
    )
    parser.add_argument(
        "--recheck",
        action="append",
        default=[],
        help="JSON of a later session re-timing some peers; ratios use the faster of the sessions (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.run:
        stamp = time.strftime("%Y%m%d-%H%M", time.gmtime())
        path = Path(args.json) if args.json else ROOT / "benchmarks" / "results" / f"run-{stamp}.json"
        rc = run_suite(path, args.pytest_args.split())
        if not path.exists():
            print(f"the suite wrote no JSON (pytest exit code {rc})", file=sys.stderr)
            return rc or 1
        if rc:
            print(f"pytest exit code {rc}: some benchmarks failed; the report covers those that ran", file=sys.stderr)
        compact_json(path)
    elif not args.json:
        parser.error("give a JSON file or --run")
    else:
        path = Path(args.json)
        if args.compact:
            compact_json(path)
    with open(path) as fh:
        run = Run(json.load(fh), str(path))
    for extra in args.recheck:
        if args.compact:
            compact_json(Path(extra))
        with open(extra) as fh:
            run.rechecks.append(Run(json.load(fh), extra))
    for i, gpu_path in enumerate(args.gpu):
        with open(gpu_path) as fh:
            gpu = Run(json.load(fh), gpu_path)
        if i == 0:
            run.gpu_run = gpu
        else:
            run.gpu_run.overlay(gpu)
    notes_path = path.with_suffix(".notes.md")
    notes = notes_path.read_text() if notes_path.exists() else None
    out = Path(args.output)
    text = render(run, out.resolve(), Path(args.plots).resolve(), notes)
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)
    if args.readme:
        Path(args.readme).write_text(readme_paragraph(run))
        print(f"wrote {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
