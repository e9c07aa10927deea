"""Runner benchmark: units/s of a layer scan on the embedded model, local executor vs Ray, side by side.

The same scan (one dataset, one unit per layer, fast engine) runs twice into fresh directories: the local
executor in this process with 1 torch thread, then a local Ray cluster of ``--workers`` actors × 1 torch thread.
Both tables must agree (max |Δ propensity| is printed). The Ray row is split into its overheads: cluster start,
actor start-up with the model load (each actor loads the model once), the per-unit cost of shipping a result
back (pickled size and a put/get round trip), and the per-unit time not spent computing.

Start Ray only inside a private network namespace (``make bench-runs`` does:
``unshare -n bash -c 'ip link set lo up; ...'``), so its traffic stays on loopback.
Usage: ``python benchmarks/bench_runs.py [--layers 6-13] [--n-train 16] [--n-test 16] [--markdown out.md]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch  # noqa: E402

from interp_steer.models import load_model  # noqa: E402
from interp_steer.runs import LocalExecutor, RayExecutor, ScanConfig, registry_pairs, run_scan_job  # noqa: E402

MULTIPLIERS = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]


def parse_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi) + 1)) if hi else [int(x) for x in text.split(",")]


def transfer_cost(ray, outcome, repeats: int = 5) -> tuple[float, float]:
    """(pickled MB of one unit's outcome, seconds per ray.put + ray.get round trip)."""
    from ray import cloudpickle

    size = len(cloudpickle.dumps(outcome)) / 2**20
    start = time.perf_counter()
    for _ in range(repeats):
        ray.get(ray.put(outcome))
    return size, (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="model spec (tiny-llama for a smoke run)")
    parser.add_argument("--dataset", default="persona:desire-for-acquiring-power")
    parser.add_argument("--layers", default="6-13")
    parser.add_argument("--n-train", type=int, default=16)
    parser.add_argument("--n-test", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    torch.set_num_threads(1)
    layers = parse_range(args.layers)
    config = ScanConfig(model=args.model, datasets=[args.dataset], layers=layers, multipliers=MULTIPLIERS,
                        n_train=args.n_train, n_test=args.n_test, layers_per_unit=1)
    data = registry_pairs(config)
    n_units = len(config.groups())
    load1 = os.getloadavg()[0]

    start = time.perf_counter()
    model = load_model(config.model)
    local_load = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        local = run_scan_job(config, data, Path(tmp) / "local", model=model, executor=LocalExecutor(torch_threads=1),
                             progress=False)
        ray_executor = RayExecutor(workers=args.workers, torch_threads=1)
        import ray

        ray_run = run_scan_job(config, data, Path(tmp) / "ray", executor=ray_executor, progress=False)
        assert local.complete and ray_run.complete, (local.failed, ray_run.failed)
        a = local.tables["propensities"]["propensity"].to_numpy()
        b = ray_run.tables["propensities"]["propensity"].to_numpy()
        max_diff = float(abs(a - b).max())
        # transfer: one unit's outcome as the workers return it, through a fresh local cluster
        from interp_steer.runs.runner import UnitOutcome
        from interp_steer.runs.scan import ScanJob

        job = ScanJob(config, data)
        files = job.compute(config.groups()[0], model)
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        size_mb, roundtrip_s = transfer_cost(ray, UnitOutcome("x", files=files))
        ray.shutdown()
    load2 = os.getloadavg()[0]

    local_units_s = local.seconds
    t = ray_executor.timings
    ray_units_s = ray_run.seconds - t["connect_s"] - t["actors_ready_s"]
    loads = [w["load_seconds"] for w in ray_executor.worker_info]
    mean_unit_ray = sum(ray_run.unit_seconds.values()) / n_units
    mean_unit_local = sum(local.unit_seconds.values()) / n_units
    overhead_per_unit = ray_units_s * args.workers / n_units - mean_unit_ray
    rows = [
        ("local, 1 × 1 thread", n_units, local_units_s, n_units / local_units_s, 1.0, local.seconds + local_load),
        (f"ray, {args.workers} workers × 1 thread", n_units, ray_units_s, n_units / ray_units_s,
         local_units_s / ray_units_s, ray_run.seconds),
    ]
    lines = [
        f"Layer scan: {config.model}, {args.dataset}, layers {args.layers} (one unit per layer), "
        f"{args.n_train} train / {args.n_test} test pairs, {len(MULTIPLIERS)} multipliers, fast engine; "
        f"load average {load1:.1f} → {load2:.1f} on {os.cpu_count()} CPUs.",
        "",
        "| executor | units | units wall s | units/s | throughput vs local | end-to-end wall s (incl. start-up, model load) |",
        "|---|---|---|---|---|---|",
        *(f"| {name} | {n} | {w:.1f} | {ups:.3f} | {sp:.2f}× | {e2e:.1f} |" for name, n, w, ups, sp, e2e in rows),
        "",
        "| Ray overhead | value |",
        "|---|---|",
        f"| cluster start (`ray.init`, local, 2 CPUs) | {t['connect_s']:.1f} s |",
        f"| actors ready (process start + imports + model load, in parallel) | {t['actors_ready_s']:.1f} s |",
        f"| model load per actor | {', '.join(f'{x:.1f}' for x in loads)} s (local: {local_load:.1f} s) |",
        f"| mean compute per unit in a worker / locally | {mean_unit_ray:.2f} s / {mean_unit_local:.2f} s |",
        f"| per-unit time not spent computing (scheduling, transfer, driver writes) | {overhead_per_unit:.3f} s |",
        f"| one unit's result: pickled size, put + get round trip | {size_mb:.3f} MB, {roundtrip_s * 1000:.1f} ms |",
        f"| max abs difference of the propensity tables (local vs Ray) | {max_diff:.1e} |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
