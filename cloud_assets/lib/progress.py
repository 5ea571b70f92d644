"""Progress of a loop over images, reported as `report(done, total, seconds)`."""
from __future__ import annotations

import time
from collections.abc import Callable

ProgressCallback = Callable[[int, int, float], None]

EVERY_S = 5.0  # long loops report at least this often (the run log shows count, rate and ETA)


class Progress:
    """Counts finished items; calls `report` after the first batch, then at most every `every_s`
    seconds, and once at the end."""

    def __init__(self, total: int, report: ProgressCallback | None = None, every_s: float = EVERY_S):
        self.total, self.report, self.every_s = total, report, every_s
        self.done = 0
        self.start = self.last = time.monotonic()
        self.reported = False

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.report and (not self.reported or now - self.last >= self.every_s or self.done >= self.total):
            self.reported, self.last = True, now
            self.report(self.done, self.total, now - self.start)
