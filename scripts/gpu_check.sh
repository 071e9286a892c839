#!/usr/bin/env bash
# GPU checks: the `gpu` tests and the GPU benchmarks, on a machine with an NVIDIA GPU and CuPy.
#
#   bash scripts/gpu_check.sh [RESULTS_DIR]      (default: gpu-results)
#
# Writes to RESULTS_DIR: gpu.txt (nvidia-smi), tests.log and tests.xml (pytest -m gpu), tests-dask.log and
# tests-dask.xml (the Dask-with-CuPy tests, when dask can be imported),
# bench-gpu.json and bench.log (benchmarks/bench_gpu.py and the GPU silhouette benchmark).
# Render the benchmark JSON into BENCHMARKS.md with
#   python scripts/bench_report.py <cpu run JSON> --gpu RESULTS_DIR/bench-gpu.json
# Environment: PYTHON (default python3); GPUKMEANS_BENCH_N caps the benchmark sizes (smoke run);
# GPU_CHECK_SKIP_BENCH=1 runs the tests only.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-gpu-results}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
if ! $PY -c "import gpukmeans" 2>/dev/null; then
    # no registry needed: the project's dependencies are already there on a GPU image
    $PY -m pip install -q --no-deps --no-build-isolation -e . >"$OUT_DIR/install.log" 2>&1 \
        || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT_DIR/gpu.txt" 2>&1
$PY -c "import cupy, gpukmeans; print('cupy', cupy.__version__, 'backends', gpukmeans.available_backends())" \
    | tee -a "$OUT_DIR/gpu.txt"

TIMEOUT_OPT=()
if $PY -c "import pytest_timeout" 2>/dev/null; then TIMEOUT_OPT=(--timeout=120); fi  # a hung kernel fails one test
$PY -m pytest tests/test_cuda.py -m gpu "${TIMEOUT_OPT[@]}" -q -p no:cacheprovider --tb=short --junitxml "$OUT_DIR/tests.xml" 2>&1 \
    | tee "$OUT_DIR/tests.log"
tests_rc=${PIPESTATUS[0]}

# Dask arrays with CuPy chunks (tests/test_dask_cuda.py), where dask and distributed can be imported. A machine
# without registry access can be given their wheels in .whl/ (ignored by git): installed into a scratch folder.
if ! $PY -c "import dask, distributed" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    site="${TMPDIR:-/tmp}/gpukmeans-dask-site"
    $PY -m pip install -q --no-index --no-deps --target "$site" .whl/*.whl >>"$OUT_DIR/install.log" 2>&1 \
        && export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
if $PY -c "import dask, distributed" 2>/dev/null; then
    $PY -m pytest tests/test_dask_cuda.py -m gpu "${TIMEOUT_OPT[@]}" -q -p no:cacheprovider --tb=short \
        --junitxml "$OUT_DIR/tests-dask.xml" 2>&1 | tee "$OUT_DIR/tests-dask.log"
    tests_rc=$((tests_rc || PIPESTATUS[0]))
else
    echo "dask/distributed not importable: tests/test_dask_cuda.py not run" | tee -a "$OUT_DIR/gpu.txt"
fi

bench_rc=0
if [ -z "${GPU_CHECK_SKIP_BENCH:-}" ]; then
    $PY -m pytest benchmarks/bench_gpu.py benchmarks/bench_silhouette.py -k "cuda or hbm or torch or faiss_gpu" -q -p no:cacheprovider \
        --benchmark-json "$OUT_DIR/bench-gpu.json" --benchmark-columns=min,median,rounds 2>&1 | tee "$OUT_DIR/bench.log"
    bench_rc=${PIPESTATUS[0]}
fi
echo "gpu tests exit code $tests_rc, GPU benchmarks exit code $bench_rc" | tee -a "$OUT_DIR/gpu.txt"
exit $((tests_rc || bench_rc))
