"""Metric registry: names, aliases, kernel codes and the update rule each metric uses.

Every backend kernel takes the metric as a small integer ``code`` (a compile-time
branch the compilers hoist out of the inner loops), so one kernel serves all
metrics. The *objective term* of a point is what the kernels compute and sum:

========== ============================== ===================================
metric     distance d(x, c)               objective term (summed, weighted)
========== ============================== ===================================
euclidean  sqrt(sum_f (x_f - c_f)^2)      d(x, c)^2   (scikit-learn's inertia)
manhattan  sum_f |x_f - c_f|              d(x, c)
chebyshev  max_f |x_f - c_f|              d(x, c)
========== ============================== ===================================
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "UPDATES", "get_metric", "resolve_update"]


@dataclass(frozen=True)
class Metric:
    """One distance metric.

    Attributes
    ----------
    name : str
        Canonical name.
    code : int
        Integer the backend kernels switch on (0, 1 or 2).
    aliases : tuple of str
        Other accepted names.
    squared_objective : bool
        True when the objective term is the squared distance (euclidean).
    default_update : str
        Update rule chosen by ``update="auto"``.
    """

    name: str
    code: int
    aliases: tuple[str, ...]
    squared_objective: bool
    default_update: str


EUCLIDEAN = Metric("euclidean", 0, ("l2",), True, "mean")
MANHATTAN = Metric("manhattan", 1, ("l1", "cityblock"), False, "median")
CHEBYSHEV = Metric("chebyshev", 2, ("linf", "chessboard"), False, "guarded")

METRICS: dict[str, Metric] = {}
for _m in (EUCLIDEAN, MANHATTAN, CHEBYSHEV):
    for _name in (_m.name, *_m.aliases):
        METRICS[_name] = _m

#: Update rules and what each guarantees (see :class:`gpukmeans.KMeans`).
UPDATES = ("auto", "mean", "median", "guarded")


def get_metric(metric: str | Metric) -> Metric:
    """Look a metric up by name or alias (case-insensitive).

    Raises
    ------
    ValueError
        If the name is unknown.
    """
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str) and metric.lower() in METRICS:
        return METRICS[metric.lower()]
    raise ValueError(f"Unknown metric {metric!r}; expected one of {sorted(METRICS)}.")


def resolve_update(update: str, metric: Metric) -> str:
    """Return the concrete update rule (``"mean"``, ``"median"`` or ``"guarded"``)."""
    if not isinstance(update, str) or update not in UPDATES:
        raise ValueError(f"Unknown update {update!r}; expected one of {list(UPDATES)}.")
    return metric.default_update if update == "auto" else update
