"""gpukmeans: fast k-means (euclidean, manhattan, chebyshev) on CPUs (numba) and NVIDIA GPUs (CuPy)."""

import os as _os

# numba's OpenMP worker threads spin-wait after each parallel region (GNU OpenMP: 300,000
# spins by default). With another process on a core that made a small fit 10-20x slower;
# not spinning at all (OMP_WAIT_POLICY=PASSIVE) halved the speed of the 1M-point kernels on
# an idle 2-core machine. A short spin serves both. Only a default: users' settings win.
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from ._estimator import ConvergenceWarning, KMeans, KMeansResult, kmeans
from ._validation import NotFittedError
from .backends import available_backends
from .metrics import METRICS
from .silhouette import silhouette_samples, silhouette_score

__version__ = "0.1.0"

__all__ = [
    "KMeans",
    "kmeans",
    "KMeansResult",
    "ConvergenceWarning",
    "NotFittedError",
    "available_backends",
    "METRICS",
    "silhouette_score",
    "silhouette_samples",
    "__version__",
]
