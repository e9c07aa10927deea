"""Time the main job (``interp-steer demo``) step by step: wall time, process CPU time and load average.

Runs the demo in a fresh Python process (so the import of torch / TransformerLens is counted) into a temporary
directory and prints the per-step table the demo writes (``timings.csv``), plus the import time and the whole
process's wall and CPU time. ``--fresh-cache`` points ``INTERP_STEER_CACHE`` at an empty directory, which forces
the GGUF conversion (the first-run case). The machine may be shared: read wall times beside the load average and
the CPU time.

    python benchmarks/bench_demo.py [--fresh-cache] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import os, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
from pathlib import Path
from interp_steer.runs.demo import DemoConfig, run_demo
print(f"IMPORT {time.perf_counter() - t0:.3f} {time.process_time() - c0:.3f} {os.getloadavg()[0]:.2f}", flush=True)
run_demo(DemoConfig(), Path(sys.argv[1]), echo=lambda line: print(line, flush=True))
"""


def markdown(table) -> str:
    """``table`` as a GitHub markdown table (numbers to two decimals)."""
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def run_once(fresh_cache: bool) -> None:
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="bench_demo_") as tmp:
        env = dict(os.environ)
        if fresh_cache:
            env["INTERP_STEER_CACHE"] = str(Path(tmp) / "cache")
        out = Path(tmp) / "demo"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], env=env, stdout=subprocess.PIPE, text=True)
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:  # the demo's progress lines as they come
            lines.append(line)
            if line.startswith(("[", "IMPORT")):
                print(line, end="", flush=True)
        returncode = proc.wait()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if returncode != 0:
            sys.exit(f"demo failed ({returncode}); its stderr is above")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        imp = next(line.split()[1:] for line in lines if line.startswith("IMPORT "))
        timings = pd.read_csv(out / "timings.csv")
        rows = [{"step": "import", "wall_s": float(imp[0]), "cpu_s": float(imp[1]), "load_1min": float(imp[2])},
                *timings.drop(columns="reused").to_dict("records")]
        rows.append({"step": "process (all)", "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                     "load_1min": os.getloadavg()[0]})
        table = pd.DataFrame(rows)
        print(f"\ndemo {'with a fresh cache (GGUF conversion)' if fresh_cache else 'with the converted model cached'}; "
              f"{os.cpu_count()} CPUs, load average {load_before:.2f} at start; torch threads: default")
        print(markdown(table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh-cache", action="store_true", help="empty INTERP_STEER_CACHE: include the conversion")
    parser.add_argument("--repeat", type=int, default=1, help="runs to time")
    args = parser.parse_args()
    for _ in range(args.repeat):
        run_once(args.fresh_cache)


if __name__ == "__main__":
    main()
