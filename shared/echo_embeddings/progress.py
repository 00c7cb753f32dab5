"""Progress of long work, wherever its output goes: a tqdm bar on a terminal or in a notebook, and plain lines in a
log (stderr sent to a file, a job scheduler, CI), where a bar would be one endless line or nothing at all."""

from __future__ import annotations

import sys
import time
from typing import Any

LINE_EVERY_SECONDS = 30.0
"""In a log, a line at least this often while work goes on..."""
LINE_EVERY_FRACTION = 0.1
"""... and whenever another tenth of the work is done."""


def progress_bar(total: int, *, desc: str, unit: str, disable: bool = False) -> Any:
    """A progress bar counting ``total`` ``unit``\\ s: tqdm where stderr is a terminal or a notebook shows it,
    [LineProgress][] otherwise; nothing is shown with ``disable``. Both are context managers with ``update(n)``."""
    from tqdm.auto import tqdm

    if disable or sys.stderr.isatty() or _in_notebook():  # tqdm.auto picks the notebook's widget there
        return tqdm(total=total, desc=desc, unit=unit, disable=disable)
    return LineProgress(total, desc=desc, unit=unit)


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (as ``tqdm.autonotebook`` tells)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class LineProgress:
    """Progress as lines on stderr: ``desc: done/total units (percent), rate, ETA``, every
    ``LINE_EVERY_SECONDS`` or ``LINE_EVERY_FRACTION`` of the work, and once at the end."""

    def __init__(self, total: int, *, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = 0.0
        self.start = self.last_time = time.monotonic()
        self.last_done = 0.0

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.done += n
        now = time.monotonic()
        step = LINE_EVERY_FRACTION * self.total
        if now - self.last_time >= LINE_EVERY_SECONDS or self.done - self.last_done >= step:
            self._line(now)

    def close(self) -> None:
        if self.done > self.last_done or self.done == 0:
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        self.last_time, self.last_done = now, self.done
        seconds = max(now - self.start, 1e-9)
        rate = self.done / seconds
        percent = 100 * self.done / self.total if self.total else 100.0
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = "done" if self.done >= self.total else f"ETA {_duration(left)}"
        print(
            f"{self.desc}: {self.done:,.0f}/{self.total:,} {self.unit}s ({percent:.0f}%), {rate:.1f} {self.unit}s/s, "
            f"{eta}",
            file=sys.stderr,
            flush=True,
        )


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
