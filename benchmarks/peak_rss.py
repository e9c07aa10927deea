"""Peak resident memory of this process over a block (Linux ``/proc``), shared by ``bench_engine.py`` and
``sv_worker.py``; standard library only, because ``sv_worker.py`` may run in a separate virtual environment."""

from __future__ import annotations

import resource
import threading


def rss_mb() -> float:
    """This process's resident set size in MiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRss:
    """Peak resident memory above the level at entry (``delta_mb`` after the block), sampled every 5 ms in a thread."""

    def __enter__(self):
        self.base = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.delta_mb = self.peak - self.base
