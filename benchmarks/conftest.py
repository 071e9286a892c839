"""Benchmark-suite plumbing: the machine description and every skip go into the JSON.

``pytest benchmarks --benchmark-json=FILE`` writes, next to pytest-benchmark's
own fields, a ``gpukmeans_bench`` object: the machine (CPU, memory, GPU,
library versions, BLAS kernels, numba threading), the load average at the start
and the end of the run, and each skipped case with its reason, so that
``scripts/bench_report.py`` lists peers that did not run instead of dropping
them silently.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # _common, _machine

_SKIPPED: list[dict] = []
_STATE: dict = {}


def pytest_sessionstart(session):
    from _machine import load_average

    _STATE["started"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    _STATE["load_average_start"] = load_average()
    _STATE["thread_environment_start"] = _thread_env()


def _thread_env() -> dict:
    keys = (
        "OMP_NUM_THREADS",
        "OMP_WAIT_POLICY",
        "GOMP_SPINCOUNT",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMBA_NUM_THREADS",
    )
    return {k: os.environ[k] for k in keys if k in os.environ}


def pytest_runtest_logreport(report):
    if report.skipped and report.when in ("setup", "call"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append({"test": report.nodeid, "reason": reason.removeprefix("Skipped: ")})


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    from _common import N_CAP, ROUNDS
    from _machine import describe, load_average

    output_json["gpukmeans_bench"] = {
        **_STATE,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load_average_end": load_average(),
        "thread_environment_end": _thread_env(),
        "n_cap": N_CAP,
        "rounds": ROUNDS,
        "machine": describe(),
        "skipped": list(_SKIPPED),
    }
