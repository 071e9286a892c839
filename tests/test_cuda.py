"""The CUDA backend: CPU-only checks (sources compile, package data, errors) and GPU checks (marked ``gpu``).

Without a GPU (CI): every kernel the backend can ask for compiles with ``nvcc``
for sm_80 and sm_90 (skipped where nvcc is absent), and through NVRTC with the
backend's own name expressions where CuPy's NVRTC is importable; the ``.cu``
files are in the built wheel; ``backend="cuda"`` fails with the documented
errors; the array-API helpers of the backend (the medians) equal the CPU
backend's, run with NumPy.

With a GPU (``pytest -m gpu``, or ``scripts/gpu_check.sh``): the CPU and GPU
backends agree on every metric, update rule, dtype and weighting (identical
labels, centers allclose; bit-identical on integer-valued data), GPU runs are
bit-reproducible, CuPy in gives CuPy out and NumPy in gives NumPy out.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import METRICS, blobs, pick_init
from scipy.spatial.distance import cdist

from gpukmeans import KMeans, available_backends
from gpukmeans.backends import CUDAUnavailableError, get_backend
from gpukmeans.backends.cpu import CPUBackend
from gpukmeans.backends.cuda import _runtime, median_by_sorting, median_from_histogram
from gpukmeans.metrics import get_metric

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "gpukmeans" / "backends" / "cuda"


# ------------------------------------------------------------------ sources compile (no GPU)
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_every_kernel_compiles_with_nvcc(tmp_path, arch):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: CUDA sources not compiled")
    exprs = _runtime.expressions(d_values=(0, 1, 3, 8))
    src = "".join(_runtime.source(f) + "\n" for f in _runtime.SOURCES)
    src += "void* gk_all_kernels[] = {\n" + ",\n".join(f"    (void*)&{e}" for _, e in exprs) + "\n};\n"
    (tmp_path / "all.cu").write_text(src)
    out = tmp_path / "all.cubin"
    proc = subprocess.run(
        [nvcc, f"-arch={arch}", "-cubin", "--fmad=false", "-std=c++17", "-o", str(out), str(tmp_path / "all.cu")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert out.stat().st_size > 10_000
    assert "warning" not in proc.stderr.replace("#177-D", "").lower() or "gk_all_kernels" in proc.stderr


def test_every_name_expression_compiles_with_nvrtc():
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # CuPy or its NVRTC library missing: the nvcc test covers the sources
        pytest.skip(f"CuPy's NVRTC not available: {exc}")
    for file in _runtime.SOURCES:
        exprs = [e for f, e in _runtime.expressions() if f == file]
        prog = nvrtc.createProgram(_runtime.source(file), file, [], [])
        for e in exprs:
            nvrtc.addNameExpression(prog, e)
        nvrtc.compileProgram(prog, ["-arch=compute_80", *_runtime.OPTIONS])
        lowered = [nvrtc.getLoweredName(prog, e) for e in exprs]
        assert len(set(lowered)) == len(exprs)


def test_sources_are_shipped_in_the_wheel(tmp_path):
    src = tmp_path / "src"  # build from a copy: no build/ or egg-info left in the checkout
    shutil.copytree(ROOT / "gpukmeans", src / "gpukmeans", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("gpukmeans-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for file in _runtime.SOURCES:
        assert f"gpukmeans/backends/cuda/{file}" in names
    assert "gpukmeans/backends/cuda/__init__.py" in names


# ------------------------------------------------------------------ errors without a usable GPU
class _FakeCUDARuntimeError(RuntimeError):
    def __init__(self, status):
        super().__init__(f"cuda error {status}")
        self.status = status


def _fake_cupy(device_count=None, status=None):
    def get_device_count():
        if status is not None:
            raise _FakeCUDARuntimeError(status)
        return device_count

    runtime = types.SimpleNamespace(
        CUDARuntimeError=_FakeCUDARuntimeError,
        getDeviceCount=get_device_count,
        driverGetVersion=lambda: 11040,
        runtimeGetVersion=lambda: 12080,
    )
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


@pytest.mark.parametrize(
    "fake, message",
    [
        (None, r'needs CuPy, which is not installed: pip install "gpukmeans\[cuda\]"'),
        (_fake_cupy(device_count=0), "no CUDA GPU is visible"),
        (_fake_cupy(status=100), "no CUDA GPU is visible"),
        (_fake_cupy(status=35), r"driver is too old for this CuPy build \(driver supports CUDA 11.4, CuPy was built"),
        (_fake_cupy(status=999), "CUDA could not be initialised"),
    ],
    ids=["no-cupy", "no-device", "no-device-error", "old-driver", "other"],
)
def test_cuda_unavailable_errors(monkeypatch, fake, message):
    monkeypatch.setitem(sys.modules, "cupy", fake)  # None makes `import cupy` fail
    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(CUDAUnavailableError, match=message):
        get_backend("cuda")
    with pytest.raises(ValueError, match=message):  # CUDAUnavailableError is a ValueError
        KMeans(3, backend="gpu").fit(X)
    from gpukmeans import silhouette_score

    with pytest.raises(CUDAUnavailableError, match=message):
        silhouette_score(X, np.arange(50) % 2, backend="cuda")
    assert available_backends() == ["cpu"]
    # "auto" never fails without CUDA: NumPy input runs on the CPU
    km = KMeans(3, random_state=0).fit(X)
    assert isinstance(km.labels_, np.ndarray) and get_backend("auto", X).name == "cpu"


# ------------------------------------------------------------------ array-API helpers, run with NumPy
@pytest.mark.parametrize("seed", range(40))
def test_median_helpers_equal_cpu_backend(seed):
    rng = np.random.default_rng(seed)
    n, d, k = int(rng.integers(1, 80)), int(rng.integers(1, 4)), int(rng.integers(1, 6))
    X = rng.integers(0, 6, (n, d)).astype(np.float64)
    w = rng.integers(0, 3, n).astype(np.float64)
    w[rng.integers(0, n)] = 1.0
    labels = rng.integers(0, k, n).astype(np.int32)
    ref, ref_w = CPUBackend().update(X, w, labels, k, "median")
    # integer data, integer weights: the histogram rule
    hist = np.zeros((k, d, 6))
    for i in np.flatnonzero(w > 0):
        for f in range(d):
            hist[labels[i], f, int(X[i, f])] += w[i]
    med, weights = median_from_histogram(np, hist, 0.0)
    np.testing.assert_array_equal(med, ref)
    np.testing.assert_array_equal(weights, ref_w)
    # sorting rule, on the same data and on non-integer data and weights
    np.testing.assert_array_equal(median_by_sorting(np, X, w, labels, k)[0], ref)
    Xf, wf = X + rng.normal(size=X.shape), w * rng.uniform(0.5, 1.5, n)
    ref_f, ref_fw = CPUBackend().update(Xf, wf, labels, k, "median")
    med_f, w_f = median_by_sorting(np, Xf, wf, labels, k)
    np.testing.assert_array_equal(med_f, ref_f)
    np.testing.assert_allclose(w_f, ref_fw, rtol=1e-12)


def test_cuda_backend_facts_logic_with_numpy():
    """The backend's per-run facts (unit weights, integer weights, integer range), run with NumPy as ``xp``."""
    from gpukmeans.backends.cuda import CUDABackend

    backend = object.__new__(CUDABackend)  # no GPU here: only the array-API helpers are exercised
    backend.xp = np
    X = np.array([[1.0, 4.0], [3.0, -2.0]])
    w = np.ones(2)
    for be in (backend, backend.bind(X, w)):
        for _ in range(2):  # the bound copy answers the second time from its memo
            assert be._weights(w)[1] == 0 and be._weights(w * 2)[1] == 1
            assert be._integer_weights(w) and not be._integer_weights(w * 0.5)
            assert be._integer_range(X) == (True, -2.0, 4.0)
            assert be._integer_range(X + 0.5) == (False, 0.0, 0.0)
    assert backend._bound is None  # binding returns a copy


def test_cuda_lookahead_is_let_go_with_numpy():
    """The run's queue holds no cycle with its backend, and the driver's settle lets it go (run with NumPy).

    A cycle would keep each fit's labels (400 MB at 100M samples) and buffers on the GPU until Python's
    cycle collector ran, and the memory pool would allocate anew at every fit.
    """
    import gc
    import weakref

    from gpukmeans.backends.cuda import CUDABackend, Lookahead, _Queue

    gc.disable()
    try:
        backend = object.__new__(CUDABackend)  # no GPU here: only the Python objects are exercised
        backend.xp = np
        X, w, labels = np.zeros((10, 2), np.float32), np.ones(10, np.float32), np.zeros(10, np.int32)
        bound = backend.bind(X, w)
        bound._lookahead = Lookahead(_Queue(bound, X, w, 0, labels), labels)
        assert bound._lookahead.device.backend._bound is not None  # reaches the bound backend
        bound.settle(np.zeros(10, np.int32))  # other labels: kept
        assert bound._lookahead is not None
        bound.settle(labels)
        assert bound._lookahead is None
        bound._lookahead = Lookahead(_Queue(bound, X, w, 0, labels), labels)
        alive = weakref.ref(bound)
        del bound
        assert alive() is None  # freed by reference counting alone
    finally:
        gc.enable()


@pytest.mark.parametrize(
    "n_sm, smem_sm, shared, regs, expected_per_sm",
    [
        (132, 233_472, 35_936, 0, 6),  # H100, fused assignment at k = 8, d = 3: 6 blocks fit, not 8
        (132, 233_472, 35_936, 80, 6),  # 80 registers a thread: 6 blocks' worth too
        (132, 233_472, 2_144, 0, 8),  # assignment without sums: capped at 8 per multiprocessor
        (132, 233_472, 2_144, 80, 6),  # ... unless registers hold fewer: 65,536 / (80 x 128) = 6.4
        (132, 233_472, 2_144, 65, 7),  # registers are given in steps of 8: 65 counts as 72 (7.1 blocks)
        (108, 167_936, 100_000, 0, 1),  # A100, slots larger than half the multiprocessor: one block each
        (80, 98_304, 200_000, 255, 1),  # more than fits: still one block per multiprocessor (never 0)
    ],
)
def test_cuda_grid_is_one_wave_of_resident_blocks(n_sm, smem_sm, shared, regs, expected_per_sm):
    """The accumulating kernels' grid: as many blocks as the multiprocessors hold at once, fewer for small n."""
    from gpukmeans.backends.cuda import _THREADS, CUDABackend

    backend = object.__new__(CUDABackend)  # no GPU here: the device attributes are set by hand
    backend._n_sm, backend._smem_sm, backend._regs_sm = n_sm, smem_sm, 65_536
    assert backend._blocks(10**9, shared, regs) == n_sm * expected_per_sm
    resident = smem_sm // (shared + 1024)  # what the hardware holds (1 KiB reserved per block)
    if regs:
        resident = min(resident, 65_536 // (_THREADS * -(-regs // 8) * 8))
    assert expected_per_sm <= max(1, resident)
    assert backend._blocks(1000, shared, regs) == -(-1000 // _THREADS)  # one block per 128 samples when n is small
    assert backend._blocks(0, shared, regs) == 1


# ------------------------------------------------------------------ GPU
UPDATES = ("mean", "median", "guarded")
WEIGHTS = ("none", "int", "float")


def _weights(kind, n, seed):
    rng = np.random.default_rng(seed + 1)
    if kind == "none":
        return None
    if kind == "int":
        return rng.integers(0, 4, n).astype(np.float64)
    return rng.uniform(0.1, 3.0, n)


def _assert_centers_match(X, w, labels, got, ref, metric, rtol):
    """Centers equal to ``rtol``, or, where not, equally good: the same objective on their cluster.

    Exact ties exist: with integer weights a weighted median can sit on a flat stretch of the
    L1 objective, and the guarded rule then keeps whichever candidate rounding favoured.
    """
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    close = np.isclose(got, ref, rtol=rtol, atol=rtol).all(axis=1)
    if close.all():
        return
    w = np.ones(X.shape[0], X.dtype) if w is None else np.asarray(w, X.dtype)
    code = get_metric(metric).code
    objs = CPUBackend().objective(X, w, np.asarray(labels, np.int32), np.stack([got, ref]).astype(X.dtype), code)
    np.testing.assert_allclose(objs[0][~close], objs[1][~close], rtol=1e-9)


def _fit_both(cp, X, k, metric, update, w, **kw):
    init = pick_init(X, k, 7)
    params = dict(metric=metric, update=update, init=init, n_init=1, max_iter=40, tol=0, **kw)
    ref = KMeans(k, backend="cpu", **params).fit(X, sample_weight=w)
    gpu = KMeans(k, backend="cuda", **params).fit(cp.asarray(X), sample_weight=None if w is None else cp.asarray(w))
    return ref, gpu


@pytest.mark.gpu
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("metric", METRICS)
def test_gpu_agrees_with_cpu_on_float_data(cp, metric, update, dtype, weights):
    X = blobs(20_000, 3, 5, seed=3, dtype=dtype)
    ref, gpu = _fit_both(cp, X, 5, metric, update, _weights(weights, X.shape[0], 3))
    assert isinstance(gpu.labels_, cp.ndarray) and isinstance(gpu.cluster_centers_, cp.ndarray)
    assert gpu.labels_.dtype == np.int32 and gpu.cluster_centers_.dtype == dtype
    np.testing.assert_array_equal(cp.asnumpy(gpu.labels_), ref.labels_)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    w = _weights(weights, X.shape[0], 3)
    _assert_centers_match(X, w, ref.labels_, cp.asnumpy(gpu.cluster_centers_), ref.cluster_centers_, metric, rtol)
    assert gpu.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(gpu.inertia_, ref.inertia_, rtol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("weights", ["none", "int"])
@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("metric", METRICS)
def test_gpu_bit_identical_to_cpu_on_imagery(cp, metric, update, weights):
    """Integer pixels (exact ties) and integer weights: every sum is exact, so the backends match bit for bit."""
    from gpukmeans.imagery import aral

    X = np.ascontiguousarray(aral.load(None)[0].data.reshape(-1, 3)[::7][:60_000], dtype=np.float32)
    ref, gpu = _fit_both(cp, X, 6, metric, update, _weights(weights, X.shape[0], 5))
    np.testing.assert_array_equal(cp.asnumpy(gpu.labels_), ref.labels_)
    np.testing.assert_array_equal(cp.asnumpy(gpu.cluster_centers_), ref.cluster_centers_)
    assert gpu.inertia_ == ref.inertia_ and gpu.n_iter_ == ref.n_iter_


@pytest.mark.gpu
@pytest.mark.parametrize("weights", ["none", "int"])
def test_gpu_guarded_on_a_sample_bit_identical_to_cpu(cp, monkeypatch, weights):
    """The guarded update choosing on a sample (and undoing what raised the objective) as on the CPU."""
    import gpukmeans._driver as driver
    from gpukmeans.imagery import aral

    monkeypatch.setattr(driver, "GUARD_SAMPLE", 4096)
    X = np.ascontiguousarray(aral.load(None)[0].data.reshape(-1, 3)[::7][:60_000], dtype=np.float32)
    ref, gpu = _fit_both(cp, X, 6, "chebyshev", "guarded", _weights(weights, X.shape[0], 5))
    np.testing.assert_array_equal(cp.asnumpy(gpu.labels_), ref.labels_)
    np.testing.assert_array_equal(cp.asnumpy(gpu.cluster_centers_), ref.cluster_centers_)
    assert gpu.inertia_ == ref.inertia_ and gpu.n_iter_ == ref.n_iter_


@pytest.mark.gpu
@pytest.mark.parametrize(
    "n_features, n_clusters", [(1, 4), (8, 16), (12, 5), (20, 64), (150, 3)], ids=["d1", "d8", "d12", "d20k64", "d150"]
)
@pytest.mark.parametrize("metric", METRICS)
def test_gpu_agrees_on_other_shapes(cp, metric, n_features, n_clusters):
    """Generic-width kernels (d > 8), split cluster ranges (many slots) and wide feature blocks."""
    X = blobs(6_000, n_features, n_clusters, seed=11)
    for update in ("mean", "median", "guarded"):
        init = pick_init(X, n_clusters, 7)
        params = dict(metric=metric, update=update, init=init, n_init=1, max_iter=15, tol=0)
        ref = KMeans(n_clusters, backend="cpu", **params).fit(X)
        gpu = KMeans(n_clusters, backend="cuda", **params).fit(X)  # NumPy in -> NumPy out
        assert isinstance(gpu.labels_, np.ndarray) and isinstance(gpu.cluster_centers_, np.ndarray)
        np.testing.assert_array_equal(gpu.labels_, ref.labels_)
        _assert_centers_match(X, None, ref.labels_, gpu.cluster_centers_, ref.cluster_centers_, metric, 1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("metric", METRICS)
def test_gpu_kernels_match_cpu_kernels(cp, metric):
    from gpukmeans.backends.cuda import CUDABackend

    code = get_metric(metric).code
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30_001, 5))
    w = rng.uniform(0, 2, X.shape[0])
    C = X[:7].copy()
    labels = rng.integers(0, 7, X.shape[0]).astype(np.int32)
    cpu, gpu = CPUBackend(), CUDABackend()
    Xd, wd, Cd, ld = (cp.asarray(a) for a in (X, w, C, labels))
    np.testing.assert_array_equal(cp.asnumpy(gpu.pairwise(Xd, Cd, code)), cpu.pairwise(X, C, code))
    np.testing.assert_array_equal(cp.asnumpy(gpu.point_costs(Xd, Cd, code, ld)), cpu.point_costs(X, C, code, labels))
    counts = gpu.label_counts(ld, 9)
    assert isinstance(counts, np.ndarray) and counts.dtype == np.int64
    np.testing.assert_array_equal(counts, cpu.label_counts(labels, 9))
    cand = np.stack([C, C + 0.5, C - 0.25])
    got = gpu.objective(Xd, wd, ld, cand, code)
    assert isinstance(got, np.ndarray)  # small results come back to the host
    np.testing.assert_allclose(got, cpu.objective(X, w, labels, cand, code), rtol=1e-12)
    for stride, weights in ((3, w), (7, np.ones_like(w))):  # on the sample of the guarded update
        got = gpu.objective(Xd, cp.asarray(weights), ld, cand, code, stride)
        np.testing.assert_allclose(got, cpu.objective(X, weights, labels, cand, code, stride), rtol=1e-12)
    lab_c, lab_g = np.full(X.shape[0], -1, np.int32), cp.full(X.shape[0], -1, dtype=cp.int32)
    obj_c, ch_c, sums_c = cpu.assign(X, w, C, code, lab_c, True)
    obj_g, ch_g, sums_g = gpu.assign(Xd, wd, Cd, code, lab_g, True)
    np.testing.assert_array_equal(cp.asnumpy(lab_g), lab_c)
    assert ch_g == ch_c == X.shape[0]
    np.testing.assert_allclose(obj_g, obj_c, rtol=1e-12)
    np.testing.assert_allclose(sums_g, sums_c, rtol=1e-12)
    for rule in ("mean", "median"):
        ref = cpu.update(X, w, labels, 7, rule)
        got = gpu.update(Xd, wd, ld, 7, rule)
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-12)
    Xi = np.floor(X * 4)  # integer-valued: the histogram median, integer weights
    wi = np.floor(w * 2)
    ref = cpu.update(Xi, wi, labels, 7, "median")
    got = gpu.update(cp.asarray(Xi), cp.asarray(wi), ld, 7, "median")
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("n_clusters", [6, 11])
@pytest.mark.parametrize("n_features", [1, 3, 12])
def test_gpu_assign_reads_consecutive_or_strided_samples_alike(cp, metric, n_features, n_clusters, dtype):
    """Aligned X and labels: each thread reads 4 consecutive samples as 16-byte vectors (d <= 8); a view at an
    odd offset, or d > 8, takes samples a grid stride apart. Centers in registers (k <= 8, rows of at most 12
    bytes) or read from memory. Every way gives the CPU's labels, changes, objective and sums."""
    from gpukmeans.backends.cuda import CUDABackend

    code = get_metric(metric).code
    rng = np.random.default_rng(n_features)
    n = 40_003  # a trip of 4 samples is cut short at the end
    base = rng.integers(0, 50, (n + 1, n_features)).astype(dtype)  # integer values: every sum is exact
    C = base[rng.choice(n, n_clusters, replace=False)] + 0.5
    start = rng.integers(-1, n_clusters, n + 1).astype(np.int32)
    cpu, gpu = CPUBackend(), CUDABackend()
    based = cp.asarray(base)
    # aligned; X offset by one row; labels offset by one
    for X, Xd, offset in ((base[:-1], based[:-1], 0), (base[1:], based[1:], 0), (base[:-1], based[:-1], 1)):
        labels = start[: X.shape[0]].copy()
        lab_d = cp.asarray(start)[1:] if offset else cp.asarray(labels)
        labels = start[1:].copy() if offset else labels
        ref = cpu.assign(np.ascontiguousarray(X), np.ones(n, dtype), C, code, labels, True)
        got = gpu.assign(Xd, cp.ones(n, dtype=dtype), C, code, lab_d, True)
        np.testing.assert_array_equal(cp.asnumpy(lab_d), labels)
        assert got[1] == ref[1] > 0
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
        np.testing.assert_array_equal(got[2], ref[2])


@pytest.mark.gpu
@pytest.mark.parametrize("metric, update", [("euclidean", "mean"), ("manhattan", "median"), ("chebyshev", "guarded")])
def test_gpu_runs_are_bit_reproducible(cp, metric, update):
    X = cp.asarray(blobs(200_000, 3, 8, seed=5, dtype=np.float32))
    w = cp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0]).astype(np.float32))
    fits = [
        KMeans(8, metric=metric, update=update, random_state=0, backend="cuda").fit(X, sample_weight=w)
        for _ in range(2)
    ]
    assert cp.array_equal(fits[0].cluster_centers_, fits[1].cluster_centers_)
    assert cp.array_equal(fits[0].labels_, fits[1].labels_)
    assert fits[0].inertia_ == fits[1].inertia_


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", METRICS)
def test_gpu_mean_update_is_queued_ahead(cp, monkeypatch, metric, dtype):
    """The driver's mean update is the device's guess bit for bit, so every assignment after the first was
    queued ahead (the final one too); a run ending on no change drops its last guess without computing it, and
    relocated empty clusters drop the guess and put the labels back. Each run as on the CPU."""
    import gpukmeans.backends.cuda as cuda_backend

    made = []

    class Recording(cuda_backend.Lookahead):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(cuda_backend, "Lookahead", Recording)
    X = np.round(blobs(30_000, 3, 6, seed=8, spread=6.0) * 4).astype(dtype)  # integer-valued: exact sums
    w = np.random.default_rng(3).integers(1, 4, X.shape[0]).astype(dtype)
    far = X.max(axis=0, keepdims=True) + 1000  # a center no sample is nearest to: an empty cluster
    for case, max_iter, init in (
        ("stopped", 2, pick_init(X, 6, 1)),
        ("converged", 300, pick_init(X, 6, 1)),
        ("empty", 300, np.vstack([X[:5], far])),
    ):
        made.clear()
        params = dict(metric=metric, update="mean", init=init.astype(dtype), n_init=1, max_iter=max_iter, tol=0)
        ref = KMeans(6, backend="cpu", **params).fit(X, sample_weight=w)
        gpu = KMeans(6, backend="cuda", **params).fit(cp.asarray(X), sample_weight=cp.asarray(w))
        np.testing.assert_array_equal(cp.asnumpy(gpu.labels_), ref.labels_)
        np.testing.assert_array_equal(cp.asnumpy(gpu.cluster_centers_), ref.cluster_centers_)
        assert gpu.n_iter_ == ref.n_iter_
        assert gpu.inertia_ == pytest.approx(ref.inertia_, rel=1e-12)  # means in float64: sums in another order
        assert all(run.ahead is None for run in made), case  # settled before the fit returned
        run = made[0]
        last_changed = gpu.history_[-1]["n_changed"]
        if case == "stopped":
            assert len(made) == 1 and gpu.n_iter_ == 2 and last_changed > 0 and (run.hits, run.misses) == (2, 0)
        elif case == "converged":
            assert len(made) == 1 and last_changed == 0 and (run.hits, run.misses) == (gpu.n_iter_ - 1, 1)
        else:  # the relocation settled the labels (dropping the guess) and let the queue go: a new one follows
            assert run.misses >= 1 and len(made) >= 2


@pytest.mark.gpu
def test_gpu_input_output_types_and_predict(cp):
    X = blobs(5_000, 4, 3, seed=1)
    km = KMeans(3, random_state=0).fit(cp.asarray(X))  # backend="auto" -> cuda for CuPy input
    assert km._backend.name == "cuda"
    for out in (km.labels_, km.cluster_centers_, km.predict(cp.asarray(X)), km.transform(cp.asarray(X))):
        assert isinstance(out, cp.ndarray)
    assert isinstance(km.predict(X), np.ndarray) and isinstance(km.transform(X), np.ndarray)
    np.testing.assert_array_equal(km.predict(X), cp.asnumpy(km.labels_))
    dist = cdist(X, cp.asnumpy(km.cluster_centers_))
    np.testing.assert_allclose(km.transform(X), dist, rtol=1e-12)
    np.testing.assert_allclose(cp.asnumpy(km.transform(cp.asarray(X))), dist, rtol=1e-12)
    assert km.score(cp.asarray(X)) == pytest.approx(-(dist.min(axis=1) ** 2).sum(), rel=1e-12)
    # the caller's arrays are never modified
    Xd = cp.asarray(X)
    before = Xd.copy()
    KMeans(3, random_state=0, metric="manhattan").fit(Xd)
    assert cp.array_equal(Xd, before)


@pytest.mark.gpu
def test_gpu_kmeans_plusplus_draws_like_cpu(cp):
    X = blobs(50_000, 3, 8, seed=4)
    cpu = KMeans(8, random_state=3, max_iter=1, backend="cpu").fit(X)
    gpu = KMeans(8, random_state=3, max_iter=1, backend="cuda").fit(X)
    np.testing.assert_allclose(gpu.cluster_centers_, cpu.cluster_centers_, rtol=1e-12)


@pytest.mark.gpu
def test_gpu_data_larger_than_memory_is_a_clear_error(cp):
    free, total = cp.cuda.runtime.memGetInfo()
    huge = np.broadcast_to(np.float32(1.0), (int(total // 12) + 10, 3))  # no host memory used
    with pytest.raises(MemoryError, match=r"needs .* GB on the GPU"):
        KMeans(3, backend="cuda").fit(huge)


@pytest.mark.gpu
@pytest.mark.parametrize("metric", METRICS)
def test_gpu_silhouette_equals_cpu(cp, metric):
    from gpukmeans import silhouette_score

    rng = np.random.default_rng(0)
    X = rng.integers(0, 12, (3_000, 3)).astype(np.float32)  # duplicates: the dedup path
    labels = rng.integers(0, 4, X.shape[0])
    for algorithm in ("brute", "dedup", "auto"):
        ref = silhouette_score(X, labels, metric=metric, algorithm=algorithm, backend="cpu")
        got, info = silhouette_score(cp.asarray(X), labels, metric=metric, algorithm=algorithm, return_info=True)
        assert info["backend"] == "cuda"
        assert got == pytest.approx(ref, rel=1e-10, abs=1e-12)
    if metric == "manhattan":
        ref = silhouette_score(X, labels, metric=metric, algorithm="sorted", backend="cpu")
        got = silhouette_score(X, labels, metric=metric, algorithm="sorted", backend="cuda")
        assert got == pytest.approx(ref, rel=1e-10, abs=1e-12)
    Xw = rng.normal(size=(2_000, 12))  # generic-width kernel, weights
    w = rng.integers(1, 4, Xw.shape[0]).astype(np.float64)
    lab = rng.integers(0, 3, Xw.shape[0])
    ref = silhouette_score(Xw, lab, metric=metric, sample_weight=w, backend="cpu")
    got = silhouette_score(Xw, lab, metric=metric, sample_weight=w, backend="cuda")
    assert got == pytest.approx(ref, rel=1e-10, abs=1e-12)
