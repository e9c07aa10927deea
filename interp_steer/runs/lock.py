"""One run per output directory: an advisory ``fcntl`` lock on ``<out>/.interp-steer.lock``.

The lock file holds the holder's pid, host and start time. A second run on the same directory refuses with one
line naming the holder (or, given ``wait_s``, waits that long for it to finish). The kernel drops the lock when
its process dies, even by ``kill -9``; the next run takes it over and says whose it was. Locks are re-entrant
within one process (a study holds its directory while its stages lock their own subdirectories).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

from interp_steer.errors import ConfigError

LOCK_FILE = ".interp-steer.lock"
WAIT_ENV = "INTERP_STEER_LOCK_WAIT"
"""Seconds a run waits for another run's lock on its output directory before refusing (default 0: refuse now)."""

_HELD: dict[str, tuple[IO[str], int]] = {}


def _holder(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}"


def default_wait() -> float:
    """The wait of :data:`WAIT_ENV` (seconds; 0 when unset); a ConfigError naming it when it is not a number ≥ 0."""
    text = os.environ.get(WAIT_ENV, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # also catches NaN
        raise ConfigError(f"{WAIT_ENV}={text!r}: give the seconds to wait for another run's lock (a number ≥ 0)")
    return value


class OutDirLock:
    """Context manager holding the lock of ``out_dir`` (see the module docs). ``wait_s``: how long to wait for a
    live holder (default :func:`default_wait`); afterwards a :class:`ConfigError` names the holder's pid."""

    def __init__(self, out_dir: str | Path, *, wait_s: float | None = None, quiet: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_FILE
        self.wait_s = default_wait() if wait_s is None else wait_s
        self.quiet = quiet
        self._key = os.path.realpath(self.path)

    def acquire(self) -> None:
        """Take the lock (re-entrant within this process)."""
        if self._key in _HELD:
            handle, count = _HELD[self._key]
            _HELD[self._key] = (handle, count + 1)
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    holder = _holder(self.path)
                    handle.close()
                    raise ConfigError(
                        f"--out {self.out_dir} is in use by another run ({_describe(holder)}); wait for it to finish, "
                        f"or set {WAIT_ENV}=<seconds> to wait, or use another --out") from None
                time.sleep(0.2)
        previous = _holder(self.path)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "argv": sys.argv[:6]}
        if previous and previous.get("pid") != me["pid"] and not self.quiet:
            print(f"note: --out {self.out_dir}: taking over the lock of a run that ended without releasing it "
                  f"({_describe(previous)})", file=sys.stderr)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(me) + "\n")
        handle.flush()
        _HELD[self._key] = (handle, 1)

    def release(self) -> None:
        """Drop one level of the lock; the last one empties the lock file and unlocks it."""
        if self._key not in _HELD:
            return
        handle, count = _HELD[self._key]
        if count > 1:
            _HELD[self._key] = (handle, count - 1)
            return
        del _HELD[self._key]
        try:
            handle.seek(0)
            handle.truncate()  # an empty lock file: released cleanly, nobody to take over from
            handle.flush()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def __enter__(self) -> "OutDirLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_not_locked(out_dir: str | Path) -> None:
    """A ConfigError naming the holder when another process holds the lock of ``out_dir`` now (nothing is held
    afterwards); commands call it before loading a model. A directory without a lock file passes."""
    path = Path(out_dir) / LOCK_FILE
    if not path.exists() or os.path.realpath(path) in _HELD:
        return
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if default_wait() > 0:
                return  # the run itself will wait
            raise ConfigError(f"--out {out_dir} is in use by another run ({_describe(_holder(path))}); wait for "
                              f"it to finish, or set {WAIT_ENV}=<seconds> to wait, or use another --out") from None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def is_locked_by_other(directory: Path) -> bool:
    """Whether another process holds the lock of ``directory`` now (used by the clean-up of temporaries)."""
    path = directory / LOCK_FILE
    if not path.exists() or os.path.realpath(path) in _HELD:
        return False
    try:
        with open(path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False
