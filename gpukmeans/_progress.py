"""A tiny dependency-free progress bar written to stderr.

Used by :mod:`gpukmeans.imagery` and the command line for work that can take
more than a moment (block-by-block passes over large rasters). It draws only
when enabled: explicitly, or by default when stderr is a terminal, so logs and
captured output stay clean.

Examples
--------
>>> import io
>>> from gpukmeans._progress import Progress
>>> buf = io.StringIO()
>>> with Progress(4, "assign", enabled=True, stream=buf, min_interval=0) as bar:
...     for _ in range(4):
...         bar.update()
>>> buf.getvalue().rstrip().endswith("4/4")
True
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")

#: Process-wide default for ``enabled=None``; the CLI sets it from ``--progress/--no-progress``.
DEFAULT_ENABLED: bool | None = None


class Progress:
    """A single-line progress bar: ``desc [#####.....] 12/40``.

    Parameters
    ----------
    total : int
        Number of steps.
    desc : str
        Label printed before the bar.
    enabled : bool, optional
        Draw the bar. ``None``: :data:`DEFAULT_ENABLED` if set, else whether
        ``stream`` is a terminal.
    stream : file-like, optional
        Where to draw (default ``sys.stderr``).
    width : int
        Characters in the bar.
    min_interval : float
        Minimum seconds between redraws (the last step is always drawn).
    """

    def __init__(
        self,
        total: int,
        desc: str = "",
        *,
        enabled: bool | None = None,
        stream: IO[str] | None = None,
        width: int = 30,
        min_interval: float = 0.1,
    ) -> None:
        self.total = max(int(total), 0)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = DEFAULT_ENABLED
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.width = width
        self.min_interval = min_interval
        self.n = 0
        self._start = time.perf_counter()
        self._last = -float("inf")

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps and redraw if due."""
        self.n = min(self.n + n, self.total) if self.total else self.n + n
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self.min_interval or self.n >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = self.n / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = now - self._start
        self.stream.write(f"\r{self.desc} [{bar}] {self.n}/{self.total} {elapsed:5.1f}s")
        self.stream.flush()

    def close(self) -> None:
        """Finish the line (only if something was drawn)."""
        if self.enabled and self._last > -float("inf"):
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable[T], total: int, desc: str = "", *, enabled: bool | None = None) -> Iterator[T]:
    """Yield from ``iterable`` while drawing a :class:`Progress` bar of ``total`` steps."""
    with Progress(total, desc, enabled=enabled) as bar:
        for item in iterable:
            yield item
            bar.update()
