"""Assignments queued one ahead of the driver: the bookkeeping of ``CUDABackend.assign_ahead``.

With the mean update, an assignment's sums alone give the next centers. The
device computes them itself (``means_kernel``) and starts assigning to them
while the host copies the sums back and runs the driver's step, so the GPU
does not wait for the host between two Lloyd iterations. The driver still
decides everything: it makes its own update and asks for the assignment to
its centers. When they are exactly (bit for bit) the centers the device
guessed, the queued assignment is that assignment, and its results are
returned; when they are not (empty clusters were relocated, or the run
stopped), the guess is dropped and the labels it overwrote are put back.

This module is the bookkeeping only, written against a small ``device``
interface (:class:`gpukmeans.backends.cuda.CUDABackend`'s queue; the CPU tests
drive it with NumPy stand-ins):

``upload(centers) -> device centers``
    Host centers (NumPy, X's dtype) to the device.
``launch(centers, gate) -> handle``
    Queue the assignment of the run's labels to ``centers`` (device), with
    its sums, their mean update and the copy of all that to the host.
    ``gate``: None, or the handle of the group before, whose labels-changed
    count gates this group (the device skips it when that count is 0, see
    :meth:`Lookahead.assign`).
``wait(handle) -> (objective, n_changed, sums, next_centers)``
    The group's results on the host (``next_centers`` the device's mean
    update, NumPy in X's dtype).
``next_centers(handle) -> device centers``
    The device's mean update of the group (the look-ahead's centers).
``restore(centers)``
    Queue the assignment of the run's labels to ``centers`` (no sums).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(eq=False)
class Group:
    """One queued assignment (with its sums and their mean update)."""

    centers: Any  # device centers it assigns to
    host_centers: np.ndarray | None  # the same values on the host (a guess's: once the group before is read)
    handle: Any = None  # the device's buffers and event
    chained: bool = False  # its centers are the device's mean update of the group before (a guess)
    gated: bool = False  # the device skips it when the group before changed no label
    skipped: bool = False  # gated, and the group before changed no label: nothing was computed
    result: tuple | None = None  # (objective, n_changed, sums, next host centers) once waited for


def _same(a: np.ndarray, b: Any) -> bool:
    """Bit-for-bit equality of two host arrays of the same dtype and shape (False for device arrays)."""
    return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


class Lookahead:
    """One run's assignments of ``labels``, each followed by a guess of the next (see the module docstring).

    ``last`` is the group whose results were returned last: ``labels`` are
    its labels, unless ``ahead``, the assignment to the mean update of its
    sums, is queued (the device then overwrites them). Every use of the
    labels other than the next assignment must first call :meth:`settle`.
    """

    def __init__(self, device: Any, labels: Any) -> None:
        self.device = device
        self.labels = labels
        self.last: Group | None = None
        self.ahead: Group | None = None
        self.hits = 0  # assignments answered by a guess
        self.misses = 0  # guesses dropped (the labels they overwrote put back where needed)

    def _results(self, group: Group, source: Group | None) -> tuple:
        if group.result is None:
            if group.skipped:  # the same labels, sums and update as the group before
                objective, _, sums, following = source.result
                group.result = (objective, 0, sums, following)
            else:
                group.result = self.device.wait(group.handle)
        return group.result

    def assign(self, centers: np.ndarray, look_ahead: bool = True) -> tuple[float, int, Any]:
        """``(objective, n_changed, sums)`` of the assignment of the labels to ``centers`` (host, X's dtype).

        The queued guess when it is exactly ``centers``; otherwise the guess
        is dropped and the assignment made. With ``look_ahead``, the
        assignment to the mean update of its sums is queued before the host
        waits for the results.

        A guess that follows a guess is gated: if the one before changed no
        label, its sums repeat those before it, and so would the update, the
        labels and the sums of the next; the device then computes nothing,
        and the results are those of the group before.
        """
        source = self.last
        group = self.settle(centers, keep=True)
        if group is None:
            group = Group(self.device.upload(centers), np.array(centers, copy=True))
            group.handle = self.device.launch(group.centers, None)
            source = None
        ahead = None
        if look_ahead and not group.skipped:
            ahead = Group(self.device.next_centers(group.handle), None, chained=True, gated=group.chained)
            ahead.handle = self.device.launch(ahead.centers, group.handle if ahead.gated else None)
        result = self._results(group, source)
        self.last, self.ahead = group, ahead
        if ahead is not None:
            ahead.host_centers = result[3]
            ahead.skipped = ahead.gated and result[1] == 0
        return result[:3]

    def settle(self, centers: Any = None, keep: bool = False) -> Any:
        """Make the labels those of the last results returned, or of the guess when it is exactly ``centers``.

        Returns the guess's ``(objective, n_changed, sums)`` when it is taken
        (the guess itself with ``keep``, for :meth:`assign`), else None.
        """
        ahead, source = self.ahead, self.last
        self.ahead = None
        if ahead is None:
            return None
        if centers is not None and _same(ahead.host_centers, centers):
            self.hits += 1
            if keep:
                return ahead
            result = self._results(ahead, source)
            self.last = ahead
            return result[:3]
        self.misses += 1
        if not ahead.skipped and not _same(source.host_centers, ahead.host_centers):
            self.device.restore(source.centers)  # the guess overwrote the labels: assign them again
        return None
