"""Shared pieces of the ``analyses/`` study scripts: command-line options, the executor they ask for, the scan
studies' entry (:func:`scan_study`) and markdown report writing.

The studies' work units run through the job runner (:mod:`interp_steer.runs`); every study writes into
``analyses/results/<name>/``: the runner's ``config.json``, ``units/`` (one file set per finished unit, so an
interrupted run resumes where it stopped) and ``run_report.json``, plus ``report.md`` (tables + PNG plots) and
the tidy CSV tables behind it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from interp_steer.config import TAN_MULTIPLIERS
from interp_steer.config import parse_number_list as parse_float_list  # noqa: F401 - the studies' argparse type

RESULTS_ROOT = Path(__file__).resolve().parent / "results"
DEFAULT_MULTIPLIERS = TAN_MULTIPLIERS
DEFAULT_LAYERS = tuple(range(0, 30, 3))
CHOSEN_LAYER_FILE = RESULTS_ROOT / "layer_scan" / "chosen_layer.json"


# ------------------------------------------------------------------------------------------------ options
def parse_int_list(text: str) -> list[int]:
    """``"0,3,6"`` or a range ``"0:30:3"`` (start:stop:step, stop exclusive) → list of ints."""
    if ":" in text:
        parts = [int(p) for p in text.split(":")]
        return list(range(*parts))
    return [int(p) for p in text.split(",") if p.strip()]


def base_parser(description: str, config_class: type | None = None, *, n_train: int | None = None,
                n_test: int | None = None, multipliers: Sequence[float] | None = None) -> argparse.ArgumentParser:
    """Options every study shares: split sizes, multipliers, threads, seed and the output folder.

    ``--n-train`` / ``--n-test`` / ``--multipliers`` / ``--seed`` come from ``config_class``'s fields (the study's job
    config: its defaults and help, one place); the keyword arguments are a study's own choices where the job's
    default does not fit it (e.g. the layer scan's split sizes, whose job default is "all")."""
    from interp_steer.config import add_config_argument
    from interp_steer.runs.job_configs import ScanConfig

    config_class = config_class or ScanConfig
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for name, given in (("n_train", n_train), ("n_test", n_test)):
        add_config_argument(parser, config_class, name, type=int,
                            **({} if given is None else {"default": given}))
    add_config_argument(parser, config_class, "multipliers",
                        **({} if multipliers is None else {"default": list(multipliers)}))
    add_config_argument(parser, config_class, "seed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (per Ray worker with --executor ray)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default analyses/results/<study>)")
    add_model_options(parser)
    return parser


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` (default: the embedded model) and where the study's units run (``--executor local|ray``)."""
    from interp_steer.config import MODEL_HELP
    from interp_steer.models import DEFAULT_MODEL

    parser.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    parser.add_argument("--executor", choices=["local", "ray"], default="local", help="where the work units run")
    parser.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local one)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (each loads the model once)")


def study_executor(args):
    """The runner executor the options ask for (``--executor``, ``--threads``, ``--ray-address``, ``--workers``)."""
    from interp_steer.runs import make_executor

    return make_executor(args.executor, address=args.ray_address, workers=args.workers, torch_threads=args.threads)


def chosen_layer(explicit: int | None) -> tuple[int, str]:
    """The layer to use: ``explicit`` if given, else the layer picked by ``layer_scan.py``; and where it came from."""
    if explicit is not None:
        return int(explicit), "given with --layer"
    if CHOSEN_LAYER_FILE.exists():
        data = json.loads(CHOSEN_LAYER_FILE.read_text())
        return int(data["layer"]), f"chosen by layer_scan.py ({data['rule']})"
    raise SystemExit(f"no --layer given and {CHOSEN_LAYER_FILE} does not exist: run analyses/layer_scan.py first")


# ------------------------------------------------------------------------------------------------ scan studies
def persona_spec(name: str, framing: str) -> str:
    """``persona:<name>`` in the A/B framing, ``persona:<name>@free_text`` in free text."""
    return f"persona:{name}" + ("@free_text" if framing == "free_text" else "")


def scan_study(args, name: str, title: str, *, scale: str = "raw"):
    """The layer scan of ``args.datasets`` (persona names) × ``args.framings`` through :mod:`interp_steer.runs.scan`
    into the study's folder (``--out`` or ``analyses/results/<name>``). Returns ``(report, run, per_sample)``:
    the scan's per-sample table with the study columns ``behaviour``, ``framing``, ``vector_norm`` (length of the
    added vector), ``raw_norm`` (CAA length before rescaling), ``n_train`` and, when every unit was computed by
    this run, ``unit_seconds``."""
    from interp_steer.data.registry import parse_spec
    from interp_steer.runs.scan import ScanConfig, registry_pairs, run_scan_job, scan_vector_table

    specs = [persona_spec(n, f) for f in args.framings for n in args.datasets]
    config = ScanConfig(model=args.model, datasets=specs, layers=args.layers, multipliers=args.multipliers,
                        n_train=args.n_train, n_test=args.n_test, seed=args.seed, scale=scale)
    report = Report(name, title, args.out)
    run = run_scan_job(config, registry_pairs(config), report.out_dir, executor=study_executor(args))
    print(f"[{name}] {run.summary_line()}", flush=True)
    run.raise_if_failed()
    vectors = scan_vector_table(report.out_dir, config)
    per_sample = run.tables["per_sample"].merge(vectors, on=["dataset", "layer"], how="left")
    parsed = per_sample["dataset"].map(parse_spec)
    per_sample = per_sample.assign(behaviour=parsed.str[1], framing=parsed.str[2])
    if not run.reused:
        seconds = {g.dataset: run.unit_seconds.get(g.key) for g in config.groups()}
        per_sample["unit_seconds"] = per_sample["dataset"].map(seconds)
    return report, run, per_sample


# ------------------------------------------------------------------------------------------------ report
def _cell(value, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "–"
        return f"{value:.{digits}f}"
    if value is pd.NA or value is None:
        return "–"
    return str(value)


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table of ``frame`` (index dropped; floats with ``digits`` decimals, NaN as –)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _portable(value):
    """Paths inside the repository as repository-relative strings (reports must not carry machine paths)."""
    if isinstance(value, Path) and value.is_absolute() and value.is_relative_to(RESULTS_ROOT.parents[1]):
        return value.relative_to(RESULTS_ROOT.parents[1]).as_posix()
    return value


class Report:
    """Collects markdown sections, tables (also saved as CSV) and figures (PNG) for one study folder."""

    def __init__(self, name: str, title: str, out_dir: Path | None = None):
        self.name = name
        self.out_dir = Path(out_dir) if out_dir is not None else RESULTS_ROOT / name
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.lines: list[str] = [f"# {title}", ""]
        self.started = time.time()

    def text(self, *paragraphs: str) -> None:
        for paragraph in paragraphs:
            self.lines += [paragraph, ""]

    def table(self, frame: pd.DataFrame, csv_name: str | None = None, digits: int = 3, caption: str | None = None) -> None:
        """Add ``frame`` as a markdown table; with ``csv_name`` also save it as ``<csv_name>.csv`` and link it."""
        if caption:
            self.lines += [caption, ""]
        self.lines += [markdown_table(frame, digits), ""]
        if csv_name:
            self.save_csv(frame, csv_name)
            self.lines += [f"(table: [`{csv_name}.csv`]({csv_name}.csv))", ""]

    def save_csv(self, frame: pd.DataFrame, csv_name: str) -> Path:
        path = self.out_dir / f"{csv_name}.csv"
        frame.to_csv(path, index=False)
        return path

    def figure(self, fig, png_name: str, caption: str) -> None:
        from interp_steer.viz.plots import save_figure

        save_figure(fig, self.out_dir / f"{png_name}.png")
        self.lines += [f"![{caption}]({png_name}.png)", "", f"*{caption}*", ""]

    def settings(self, args, extra: dict | None = None, uses_model: bool = True) -> None:
        """A 'Settings' section listing the options used and (``uses_model``) the machine and model."""
        items = {k: _portable(v) for k, v in vars(args).items() if k != "out"}
        items.update(extra or {})
        self.lines += ["## Settings", ""]
        self.lines += [f"- `{k}`: {v}" for k, v in items.items()]
        if uses_model:
            from interp_steer.models import DEFAULT_MODEL

            self.lines += [f"- machine: {platform.machine()} CPU (2 cores shared with other jobs), torch "
                           f"{torch.__version__}, {getattr(args, 'threads', torch.get_num_threads())} thread(s); model "
                           f"`{getattr(args, 'model', DEFAULT_MODEL)}` (`load_model(spec)`)"]
        self.lines += [""]
        (self.out_dir / "settings.json").write_text(json.dumps({k: str(v) for k, v in items.items()}, indent=2))

    def write(self) -> Path:
        minutes = (time.time() - self.started) / 60
        self.lines += ["---", f"Wall time of the invocation that wrote this report: {minutes:.1f} min "
                       "(units cached by an earlier invocation are not recomputed).", ""]
        path = self.out_dir / "report.md"
        path.write_text("\n".join(self.lines))
        return path
