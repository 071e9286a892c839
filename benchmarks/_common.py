"""Cases, data, initial centers and the fit functions shared by the Lloyd benchmarks.

Sizes
-----
``GPUKMEANS_BENCH_N`` caps the number of samples of every case (CI's smoke pass
uses 20000 with ``--benchmark-disable``) and trims the grid to every data set, k
and dtype with euclidean, plus every metric/update on pixels and embeddings at
k = 8; cases that become identical after capping run once. Without it the full
grid runs (about 10 of the 15 minutes the whole suite takes on 2 cores).
``GPUKMEANS_BENCH_ROUNDS`` sets the timed rounds per case (default 3, after one
untimed warm-up round).

Data
----
- ``pixels`` (3 features): the two Aral Sea MODIS images shipped in the package
  (1,035,264 real NIR/G/B uint8 pixels), repeated to ``n`` samples; integer
  values stored as float32 or float64, as imagery is.
- ``multispectral`` (8 or 13 features): 16 synthetic land-cover spectra
  (reflectance 500-6000) plus Gaussian noise (sd 300), rounded to integers like
  uint16 reflectance.
- ``embeddings`` (64 features): a mixture of 100 Gaussian clusters, each row
  scaled to unit length.

The initial centers are ``k`` distinct samples drawn with a fixed seed; every
library starts from the same centers.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from importlib import resources

import numpy as np

N_CAP = int(os.environ["GPUKMEANS_BENCH_N"]) if os.environ.get("GPUKMEANS_BENCH_N") else None
ROUNDS = int(os.environ.get("GPUKMEANS_BENCH_ROUNDS", "3"))
SMOKE = N_CAP is not None

METRIC_UPDATES = (
    ("euclidean", "mean"),
    ("manhattan", "mean"),
    ("chebyshev", "mean"),
    ("manhattan", "median"),
    ("chebyshev", "guarded"),
)
PEER_MAX_N = 10_000_000  # peers are timed up to this many samples (time budget of one run)


@dataclass(frozen=True)
class Case:
    """One benchmark configuration (data set, size, number of clusters, dtype, metric, update)."""

    data: str
    n: int
    d: int
    k: int
    dtype: str
    metric: str = "euclidean"
    update: str = "mean"
    device: str = "cpu"

    @property
    def iterations(self) -> tuple[int, int]:
        """Short and long iteration counts; the marginal iteration is their difference.

        On the GPU, 10 iterations at every size: they take milliseconds, and the fixed part of a fit (checks,
        allocations) varies by about a millisecond from fit to fit at 100M samples, which 5 iterations
        would put into the marginal as 0.2 ms each.
        """
        return (2, 7) if self.n >= 10_000_000 and self.device != "cuda" else (2, 12)

    @property
    def peers(self) -> bool:
        """Whether peers (euclidean only) are timed on this case."""
        small = self.n <= PEER_MAX_N or self.device == "cuda"  # GPU peers are fast enough at every size
        return self.metric == "euclidean" and self.update == "mean" and small

    @property
    def id(self) -> str:
        n = f"{self.n / 1e6:g}M" if self.n >= 1_000_000 else f"{self.n / 1e3:g}k"
        return f"{self.data}-{n}x{self.d}-k{self.k}-{self.dtype}-{self.metric}-{self.update}"

    def info(self) -> dict:
        return {
            "data": self.data,
            "n_samples": self.n,
            "n_features": self.d,
            "n_clusters": self.k,
            "dtype": self.dtype,
            "metric": self.metric,
            "update": self.update,
            "device": self.device,
        }


def capped(cases: list[Case]) -> list[Case]:
    """``cases`` with ``n`` cut to ``GPUKMEANS_BENCH_N`` (the smoke pass), without duplicates."""
    out: list[Case] = []
    for case in cases:
        if N_CAP is not None and case.n > N_CAP:
            case = Case(**{**case.__dict__, "n": N_CAP})
        if case not in out:
            out.append(case)
    return out


def cpu_cases() -> list[Case]:
    """The CPU grid, ordered so that cases on the same data run one after another."""
    cases: list[Case] = []
    mu = METRIC_UPDATES
    # time vs n: pixels, k = 8, float32 (the headline) and float64
    for n in (100_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000):
        cases += [Case("pixels", n, 3, 8, "float32", m, u) for m, u in mu]
        if n in (1_000_000, 10_000_000):
            cases += [Case("pixels", n, 3, 8, "float64", m, u) for m, u in mu]
    # time vs k: 1M pixels
    for k in (3, 32, 256):
        cases += [Case("pixels", 1_000_000, 3, k, "float32", m, u) for m, u in mu]
    # more features: multispectral (1M) and embeddings (300k)
    for d in (8, 13):
        for k in (8, 32):
            cases += [Case("multispectral", 1_000_000, d, k, "float32", m, u) for m, u in mu]
    for k in (8, 32, 256):
        cases += [Case("embeddings", 300_000, 64, k, "float32", m, u) for m, u in mu]
    if SMOKE:  # every data set, k and dtype once; every metric/update on pixels and embeddings with k = 8
        cases = [c for c in cases if (c.metric, c.update) == ("euclidean", "mean") or c.k == 8 and c.d in (3, 64)]
    return capped(cases)


def gpu_cases() -> list[Case]:
    """The GPU grid (run only where a CUDA device and the library are present)."""
    cases: list[Case] = []
    for n in (1_000_000, 10_000_000, 100_000_000):
        mu = METRIC_UPDATES if n >= 10_000_000 else METRIC_UPDATES[:3]
        cases += [Case("pixels", n, 3, 8, "float32", m, u, device="cuda") for m, u in mu]
    cases += [Case("embeddings", 1_000_000, 64, k, "float32", device="cuda") for k in (8, 256)]
    return capped(cases)


def with_iterations(cases: list[Case], peers_only: bool = False) -> list:
    """pytest params ``(case, n_iter)``: each case at its short and its long iteration count."""
    import pytest

    params = []
    for case in cases:
        if peers_only and not case.peers:
            continue
        for it in case.iterations:
            params.append(pytest.param(case, it, id=f"{case.id}-it{it}"))
    return params


def import_or_skip(name: str, reason: str):
    """Import a peer library, or skip the test with ``reason`` (any ImportError: absent or broken)."""
    import importlib

    import pytest

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"{reason} ({exc})" if "No module named" not in str(exc) else reason)


# ---------------------------------------------------------------------- data


@functools.lru_cache(maxsize=1)
def _aral_pixels() -> np.ndarray:
    from PIL import Image

    parts = []
    for name in ("MOD_01.jpg", "MOD_24.jpg"):
        with resources.as_file(resources.files("gpukmeans") / "data" / "aral" / name) as path:
            parts.append(np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3))
    return np.concatenate(parts)


@functools.lru_cache(maxsize=1)
def dataset(kind: str, n: int, d: int, dtype: str) -> np.ndarray:
    """The (n, d) data set of a case (cached: consecutive cases share it). Read-only."""
    rng = np.random.default_rng(42)
    if kind == "pixels":
        X = np.resize(_aral_pixels(), (n, 3)).astype(dtype)
    elif kind == "multispectral":
        spectra = rng.uniform(500, 6000, (16, d))
        X = np.empty((n, d), dtype=dtype)
        step = 1 << 20
        for s in range(0, n, step):
            m = min(step, n - s)
            block = spectra[rng.integers(0, 16, m)] + rng.normal(0, 300, (m, d))
            X[s : s + m] = np.clip(np.rint(block), 0, 10000)
    elif kind == "embeddings":
        means = rng.normal(0, 1, (100, d))
        X = (means[rng.integers(0, 100, n)] + rng.normal(0, 0.7, (n, d))).astype(dtype)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    else:
        raise ValueError(kind)
    X.setflags(write=False)
    return X


def initial_centers(X: np.ndarray, k: int) -> np.ndarray:
    """``k`` distinct samples of X, chosen with a fixed seed (the same for every library)."""
    rng = np.random.default_rng(0)
    sample = X[rng.choice(X.shape[0], min(X.shape[0], max(20_000, 50 * k)), replace=False)]
    distinct = np.unique(sample, axis=0)
    return np.ascontiguousarray(distinct[rng.choice(len(distinct), k, replace=False)])


def case_data(case: Case) -> tuple[np.ndarray, np.ndarray]:
    X = dataset(case.data, case.n, case.d, case.dtype)
    return X, initial_centers(X, case.k)


def converged(km) -> bool:
    """Whether a gpukmeans fit stopped on convergence (``tol=0``: no label changed, or no center moved).

    Also true when it did so in its last allowed iteration, which the
    iteration count alone does not show; the report marks such fits, since
    their marginal iteration then includes the once-per-fit convergence check.
    """
    last = km.history_[-1] if km.history_ else None
    return bool(last is not None and (last["n_changed"] == 0 or last["center_shift"] <= 0.0))


def record(benchmark, case: Case, library: str, n_iter_asked: int, n_iter: int, group: str = "", **extra) -> None:
    """Group the case with its peers and record what was measured (``n_iter``: iterations really run)."""
    benchmark.group = f"lloyd {case.id.rsplit('-', 2)[0]}{group}"
    benchmark.extra_info.update(
        case.info(),
        library=library,
        case=case.id,
        n_iter_requested=n_iter_asked,
        n_iter=int(n_iter),
        x_bytes=case.n * case.d * np.dtype(case.dtype).itemsize,
        **extra,
    )
