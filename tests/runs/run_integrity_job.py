"""A small model-free runner job for the fault tests of tests/runs/test_runs_integrity.py, run as a separate process.

``python run_integrity_job.py OUT SLEEP_S [kill-at=<file name>]``: unit ``u<i>`` tabulates ``i * k`` for k < 3 after
sleeping ``SLEEP_S``; ``combine`` writes ``combined.csv`` and ``report.md``. With ``kill-at=<name>`` the process
kills itself with SIGKILL just before that file is renamed into place (its temporary complete, the target not yet
written), as ``kill -9`` during the write would. Prints the run's done / reused units as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd

from interp_steer.runs import Job, JobConfig, run_job
from interp_steer.runs.files import read_table, write_table_atomic, write_text_atomic


@dataclass
class SlowConfig(JobConfig):
    RESULT_FIELDS: ClassVar[tuple[str, ...]] = ("n",)
    JOB: ClassVar[str] = "slow table"

    model: str = "none"
    n: int = 4
    sleep_s: float = 0.0


@dataclass(frozen=True)
class SlowUnit:
    i: int

    @property
    def key(self) -> str:
        return f"u{self.i}"


def unit_table(i: int) -> pd.DataFrame:
    return pd.DataFrame({"i": [i] * 3, "k": [0, 1, 2], "y": [i * k for k in range(3)]})


class SlowJob(Job):
    def __init__(self, config: SlowConfig) -> None:
        self.config = config

    def units(self):
        return [SlowUnit(i) for i in range(self.config.n)]

    def unit_files(self, unit):
        return [f"units/{unit.key}.csv"]

    def compute(self, unit, model):
        time.sleep(self.config.sleep_s)
        return [(f"units/{unit.key}.csv", unit_table(unit.i))]

    def combine(self, out_dir: Path):
        present = [out_dir / f"units/{u.key}.csv" for u in self.units() if (out_dir / f"units/{u.key}.csv").exists()]
        table = pd.concat([read_table(p) for p in present], ignore_index=True)
        write_table_atomic(table, out_dir / "combined.csv")
        write_text_atomic(f"# slow table\n\n{len(table)} rows, total {int(table['y'].sum())}\n", out_dir / "report.md")
        return {"combined": table}


def main(argv: list[str]) -> None:
    out, sleep_s = argv[0], float(argv[1])
    kill_at = next((a.split("=", 1)[1] for a in argv[2:] if a.startswith("kill-at=")), None)
    if kill_at:
        real_replace = os.replace

        def replace_or_die(src, dst):
            if Path(dst).name == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)

        os.replace = replace_or_die  # type: ignore[assignment]
    report = run_job(SlowJob(SlowConfig(sleep_s=sleep_s)), out, model=object(), progress=False)
    print(json.dumps({"done": report.done, "reused": report.reused}))


if __name__ == "__main__":
    main(sys.argv[1:])
