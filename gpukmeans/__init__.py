"""gpukmeans: fast k-means (euclidean, manhattan, chebyshev) on CPUs (numba) and NVIDIA GPUs (CuPy)."""

import os as _os

# numba's OpenMP worker threads spin-wait after each parallel region by default. With
# another process on a core (a laptop, a CI box) that made a small fit 10-20x slower;
# passive waiting costs microseconds per region. Only a default: set it to override.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
