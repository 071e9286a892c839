"""scripts/bench_report.py: the figures of the report against the raw pytest-benchmark JSON.

The committed runs under ``benchmarks/results`` are the input; every expected
figure is recomputed here from the JSON's own medians, independently of the
report's code (which groups cases, picks peers and formats the tables).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CPU_RUN = RESULTS / "run-20261126-1056.json"
GPU_FIRST = RESULTS / "gpu-h100-20261126-1140.json"
GPU_LATER = RESULTS / "gpu-h100-20261126-1152.json"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "scripts" / "bench_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(path: Path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def _marginal(doc: dict, library: str, case: str, device: str = "cpu") -> float:
    """Seconds per iteration of one case: difference of the medians over the difference of iterations.

    A peer run in several variants (FAISS at 1 and 2 threads) counts with its fastest.
    """
    fits = {}
    for b in doc["benchmarks"]:
        e = b.get("extra_info", {})
        if e.get("library") == library and e.get("case") == case and e.get("device", "cpu") == device:
            fits.setdefault(e.get("variant", ""), {})[e["n_iter"]] = b["stats"]["median"]
    best = None
    for by_iter in fits.values():
        lo, hi = min(by_iter), max(by_iter)
        t = (by_iter[hi] - by_iter[lo]) / (hi - lo)
        best = t if best is None else min(best, t)
    assert best is not None, f"no {library} fits of {case} in the JSON"
    return best


def _row(markdown: str, *cells: str) -> list[str]:
    """The cells of the first table row that starts with ``cells``."""
    for line in markdown.splitlines():
        if line.startswith("|"):
            parts = [c.strip() for c in line.strip("|").split("|")]
            if parts[: len(cells)] == list(cells):
                return parts
    raise AssertionError(f"no row starting with {cells}")


def _runs(report, *gpu_paths):
    run = report.Run(_load(CPU_RUN), str(CPU_RUN))
    for i, p in enumerate(gpu_paths):
        g = report.Run(_load(p), str(p))
        if i == 0:
            run.gpu_run = g
        else:
            run.gpu_run.overlay(g)
    return run


def test_marginal_iteration_and_peer_ratio_match_the_raw_json(report):
    doc = _load(CPU_RUN)
    run = _runs(report)
    case = "pixels-1Mx3-k8-float32-euclidean-mean"
    ours = run.get("gpukmeans", case)
    assert ours["per_iter"] == pytest.approx(_marginal(doc, "gpukmeans", case), rel=1e-12)
    sk = run.best_peer("scikit-learn", case, in_run=True)
    expected = _marginal(doc, "scikit-learn", case) / _marginal(doc, "gpukmeans", case)
    assert sk["per_iter"] / ours["per_iter"] == pytest.approx(expected, rel=1e-12)
    headline = report.headline_section(run)
    assert _row(headline, "1M x 3")[4] == f"{expected:.2f}"


def test_targets_say_met_or_missed_from_the_measured_ratio(report):
    doc = _load(CPU_RUN)
    run = _runs(report)
    targets = report.targets_section(run)
    for label in ("1M", "10M"):
        base = f"pixels-{label}x3-k8-float32"
        r = _marginal(doc, "scikit-learn", base + "-euclidean-mean") / _marginal(
            doc, "gpukmeans", base + "-euclidean-mean"
        )
        row = _row(targets, "euclidean >= 4x faster than scikit-learn", f"{label} x 3")
        assert row[2] == f"{r:.2f}x"
        assert row[3] == ("met" if r >= 4 else "MISSED")
        g = _marginal(doc, "gpukmeans", base + "-chebyshev-guarded") / _marginal(
            doc, "gpukmeans", base + "-euclidean-mean"
        )
        row = _row(targets, "chebyshev (guarded update) within 1.5x of euclidean", f"{label} x 3")
        assert row[2] == f"{g:.2f}x"
        assert row[3] == ("met" if g <= 1.5 else "MISSED")


def test_noise_larger_than_the_signal_gives_no_figure(report):
    stats = {"median": 1.0, "iqr": 0.1, "rounds": 3}
    by_iter = {2: (stats, {"n_iter": 2}), 12: ({**stats, "median": 0.9}, {"n_iter": 12})}
    assert report._summarise(by_iter)["per_iter"] is None


def test_gpu_overlay_takes_the_later_cases_and_keeps_the_peers(report):
    first, later = _load(GPU_FIRST), _load(GPU_LATER)
    run = _runs(report, GPU_FIRST, GPU_LATER)
    g = run.gpu_run
    case = "pixels-100Mx3-k8-float32-euclidean-mean"
    ours = g.get("gpukmeans", case, device="cuda")["per_iter"]
    assert ours == pytest.approx(_marginal(later, "gpukmeans", case, "cuda"), rel=1e-12)
    assert ours != pytest.approx(_marginal(first, "gpukmeans", case, "cuda"), rel=1e-3)
    torch = g.get("torch", case, device="cuda")["per_iter"]
    assert torch == pytest.approx(_marginal(first, "torch", case, "cuda"), rel=1e-12)
    bandwidth = [b["extra_info"]["gb_per_s"] for b in later["benchmarks"] if "hbm" in b["name"]][0]
    assert g.gpu_bandwidth == bandwidth

    section = report.gpu_section(run)
    assert "Laid over it: `gpu-h100-20261126-1152.json`" in section
    row = _row(section, "pixels 100M x 3, k=8, float32", "euclidean / mean")
    floor = 100_000_000 * 3 * 4 / (bandwidth * 1e9)  # one read of X, float32
    assert row[4] == f"{ours / floor:.2f}"
    assert row[6] == f"{torch / ours:.2f}"
    target = _row(report.targets_section(run), "GPU euclidean (mean) within 2x of the HBM read floor")
    assert target[3] == ("met" if ours / floor <= 2 else "MISSED")


def test_gpu_rows_faster_than_the_read_floor_are_marked_as_noise(report):
    run = _runs(report, GPU_FIRST, GPU_LATER)
    g = run.gpu_run
    section = report.gpu_section(run)
    checked = 0
    for (lib, _, case, dev), r in g.results.items():
        if lib != "gpukmeans" or dev != "cuda" or r["per_iter"] is None:
            continue
        floor, _ = g.floor(r["info"])
        label = report.case_label(r["info"])
        row = _row(section, label, f"{r['info']['metric']} / {r['info']['update']}")
        noise = "below the floor: noise" in row[2]
        assert noise == (r["per_iter"] < floor), (case, row)
        checked += noise
    assert checked >= 1  # the 10M euclidean row of the later run: 0.017 ms against a 0.039 ms floor


def test_readme_paragraph_quotes_the_report(report):
    doc = _load(CPU_RUN)
    run = _runs(report, GPU_FIRST, GPU_LATER)
    text = report.readme_paragraph(run)
    case = "pixels-1Mx3-k8-float32-euclidean-mean"
    ours = _marginal(doc, "gpukmeans", case)
    assert f"{ours * 1e3:.3g} ms per iteration at 1M x 3" in text
    m = re.search(r"at 1M x 3 \(([\d.]+)x faster than scikit-learn", text)
    assert m and float(m.group(1)) == pytest.approx(_marginal(doc, "scikit-learn", case) / ours, abs=0.051)


def test_paired_rounds_give_the_ratio_of_the_medians_and_the_targets(report):
    """bench_paired.py's entries: B's median marginal over A's, the range of the per-round ratios, met or missed."""
    import statistics

    def entry(pair, n, a, b):
        info = {
            "data": "pixels",
            "n_samples": n,
            "n_features": 3,
            "n_clusters": 8,
            "dtype": "float32",
            "metric": "euclidean",
            "update": "mean",
            "device": "cpu",
            "kind": "paired",
            "pair": pair,
            "case": f"pixels-{n // 1_000_000}Mx3-k8-float32-euclidean-mean",
            "a_seconds": a,
            "b_seconds": b,
            "ratios": [y / x for x, y in zip(a, b)],
            "ratio": statistics.median(b) / statistics.median(a),
        }
        return {"name": "test_paired", "group": "paired", "extra_info": info, "stats": {"median": 0.0}}

    sk_a, sk_b = [0.002, 0.0018, 0.0025, 0.0019], [0.0085, 0.0080, 0.0090, 0.0078]  # 4.23x: met
    gu_a, gu_b = [0.0019, 0.0020, 0.0018], [0.0031, 0.0030, 0.0032]  # 1.63x: missed
    doc = {
        "benchmarks": [
            entry("scikit-learn/euclidean", 1_000_000, sk_a, sk_b),
            entry("guarded/euclidean", 1_000_000, gu_a, gu_b),
        ]
    }
    run = report.Run(doc, "synthetic.json")
    text = report.paired_section(run)
    sk_ratio = statistics.median(sk_b) / statistics.median(sk_a)
    row = _row(text, "scikit-learn / gpukmeans euclidean")
    medians_ms = [f"{statistics.median(sk_a) * 1e3:.3g}", f"{statistics.median(sk_b) * 1e3:.3g}"]
    assert row[2:5] == [*medians_ms, f"{sk_ratio:.2f}"]
    per_round = [y / x for x, y in zip(sk_a, sk_b)]
    assert row[5] == f"{min(per_round):.2f}-{max(per_round):.2f}" and row[6] == "4"
    targets = {r[0]: r for r in report.paired_target_rows(run)}
    sk = targets["euclidean >= 4x faster than scikit-learn, paired rounds"]
    assert sk[2] == f"{sk_ratio:.2f}x" and sk[3] == ("met" if sk_ratio >= 4 else "MISSED")
    gu_ratio = statistics.median(gu_b) / statistics.median(gu_a)
    gu = targets["chebyshev (guarded update) within 1.5x of euclidean, paired rounds"]
    assert gu[2] == f"{gu_ratio:.2f}x" and gu[3] == ("met" if gu_ratio <= 1.5 else "MISSED")
    assert (sk[3], gu[3]) == ("met", "MISSED")


def test_every_pair_of_the_paired_benchmark_has_its_target(report, monkeypatch):
    """Each pair that bench_paired.py times is judged against a target in the report, and only those."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # bench_paired imports the suite's _common
    spec = importlib.util.spec_from_file_location("bench_paired", ROOT / "benchmarks" / "bench_paired.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.PAIRS) == set(report.PAIRED_TARGETS)
    for pair, side in module.PAIRS.items():
        target = report.PAIRED_TARGETS[pair][0]
        if side is None:
            assert "scikit-learn" in target
        else:
            metric, update = side
            assert target.startswith(f"{metric} ({update} update) within 1.5x of euclidean")


def test_a_long_fit_that_converged_in_its_last_iteration_is_marked(report):
    """``converged`` in the long fit's record: marked even when it ran every iteration asked (12 of 12)."""

    def fit(update, n_iter, median, converged):
        info = {
            "data": "pixels",
            "n_samples": 1_000_000,
            "n_features": 3,
            "n_clusters": 8,
            "dtype": "float32",
            "metric": "chebyshev" if update == "guarded" else "euclidean",
            "update": update,
            "device": "cpu",
            "library": "gpukmeans",
            "case": f"pixels-1Mx3-k8-float32-{'chebyshev' if update == 'guarded' else 'euclidean'}-{update}",
            "n_iter_requested": n_iter,
            "n_iter": n_iter,
            "x_bytes": 12_000_000,
            "converged": converged,
        }
        stats = {"median": median, "iqr": 0.0, "rounds": 7}
        return {"name": f"test_gpukmeans[{info['case']}-{n_iter}]", "extra_info": info, "stats": stats}

    doc = {
        "benchmarks": [
            fit("mean", 2, 0.010, False),
            fit("mean", 12, 0.025, False),
            fit("guarded", 2, 0.012, False),
            fit("guarded", 12, 0.040, True),
        ]
    }
    text = report.cases_section(report.Run(doc, "synthetic.json"))
    assert _row(text, "1M x 3, k=8, float32", "euclidean/mean")[6] == "0.025 (12)"
    assert _row(text, "1M x 3, k=8, float32", "chebyshev/guarded")[6] == "0.04 (12, converged)"


def test_gpu_compile_times_go_to_the_gpu_section_only(report):
    """A GPU run's NVRTC compile entry is tabled in the GPU section, from its own steps; the CPU section keeps
    the CPU's entries. Without one, the GPU section says it was not measured."""
    run = _runs(report, GPU_FIRST)
    assert "Kernel compile time (NVRTC): not measured in this run." in report.gpu_section(run)
    steps = {"euclidean/mean": 1.5, "manhattan/median": 0.75, "chebyshev/guarded": 2.25}

    def result(scale):
        out = {s: {"compile_s": t * scale} for s, t in steps.items()}
        return {"import_s": 0.5, "steps": out, "total_compile_s": sum(steps.values()) * scale}

    entry = {"kind": "compile", "device": "cuda", "dtype": "float32", "cold": result(1.0), "cached": result(0.01)}
    run.gpu_run.compile.append(entry)
    section = report.gpu_section(run)
    cold = _row(section, "float32", "cold")
    assert [float(c) for c in cold[3:7]] == pytest.approx([1.5, 0.75, 2.25, 4.5], rel=0.01)
    cached = _row(section, "float32", "cached")
    assert float(cached[-1]) == pytest.approx(0.045, rel=0.01)
    run.compile.append(entry)  # a GPU entry in the CPU run: not in the CPU's JIT section
    cpu_section = report.compile_section(run)
    assert cpu_section.count("| float32 | cold |") == sum(
        1 for c in run.compile if c.get("device", "cpu") == "cpu" and c["dtype"] == "float32" and c.get("cold")
    )
