"""gpukmeans: fast k-means (euclidean, manhattan, chebyshev) on CPUs (numba) and NVIDIA GPUs (CuPy)."""

from ._estimator import ConvergenceWarning, KMeans, KMeansResult, kmeans
from ._validation import NotFittedError
from .backends import available_backends
from .metrics import METRICS

__version__ = "0.1.0"

__all__ = [
    "KMeans",
    "kmeans",
    "KMeansResult",
    "ConvergenceWarning",
    "NotFittedError",
    "available_backends",
    "METRICS",
    "__version__",
]
