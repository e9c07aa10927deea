"""Bad inputs to the CLI, one table row per case (issue 12 §5): exit code 2, no traceback, one line naming the culprit.

Each row is ``(id, argv, fragments, needs_model)``. ``argv`` entries are formatted with the fixture paths
(``{vec1}``, ``{data}``, ``{tmp}``, …; see ``paths``). ``fragments`` (a string or a tuple of strings) must all
occur in the output. Rows with ``needs_model=False`` run with model loading disabled: the command must reject
the input *before* it loads a model, so that nothing computed is lost to a late error.

Usage errors (typer's own: unknown option, missing option, wrong type) are in ``USAGE_ROWS``; their message is
typer's short usage block, so they are checked for exit code 2, no traceback and the option's name.
"""

from __future__ import annotations

import pytest
from broken_data import write_broken_data_root, write_nan_vector_files
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.steering import SteeringVector

LONG_TEXT = " ".join(["word"] * 700)  # > 512 tokens: the tiny models' context

T = "--model tiny-llama".split()  # most rows run on the tiny model
D = ["--data-dir", "{data}"]

ROWS = [
    # --- arguments: multipliers ---------------------------------------------------------------------------------
    ("generate-mult-inf", ["generate", "--vector", "{vec1}", "--prompt", "hi", "--multipliers", "inf", *T], "--multipliers", False),
    ("generate-mult-nan", ["generate", "--vector", "{vec1}", "--prompt", "hi", "--multipliers", "0,nan", *T], "--multipliers", False),
    ("generate-mult-empty", ["generate", "--vector", "{vec1}", "--prompt", "hi", "--multipliers", ",", *T], "--multipliers", False),
    ("evaluate-mult-inf", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--multipliers", "-inf,0,1",
                           "--out", "{tmp}/e", *T], "--multipliers", False),
    ("evaluate-mult-nan", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--multipliers", "nan",
                           "--out", "{tmp}/e", *T], "--multipliers", False),
    ("scan-mult-inf", ["scan", "--dataset", "builtin:sentiment", "--multipliers", "0,inf", "--out", "{tmp}/s", *T], "--multipliers", False),
    ("demo-mult-nan", ["demo", "--multipliers", "nan,1", "--out", "{tmp}/d", *T], "--multipliers", False),
    ("explain-mult-inf", ["explain", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--multipliers", "-inf,0,1",
                          "--out", "{tmp}/x", *T], "--multipliers", False),
    ("explain-patch-mult-nan", ["explain", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--patch-multiplier", "nan",
                                "--out", "{tmp}/x", *T], "--patch-multiplier", False),
    ("explain-eps-negative", ["explain", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--eps", "-1",
                              "--out", "{tmp}/x", *T], "--eps", False),
    ("compare-mult-inf", ["compare", "--dataset", "builtin:sentiment", "--multipliers", "0,inf", "--out", "{tmp}/c", *T],
     "--multipliers", False),
    ("tune-mult-nan", ["tune", "--dataset", "builtin:sentiment", "--layers", "1", "--multipliers", "0,nan", "--out", "{tmp}/t", *T],
     "--multipliers", False),
    ("tune-kl-budget-negative", ["tune", "--dataset", "builtin:sentiment", "--layers", "1", "--kl-budget", "-1",
                                 "--out", "{tmp}/t", *T], "--kl-budget", False),
    ("tune-layers-reversed", ["tune", "--dataset", "builtin:sentiment", "--layers", "2-1", "--out", "{tmp}/t", *T], "--layers", False),
    ("tune-out-is-file", ["tune", "--dataset", "builtin:sentiment", "--layers", "1", "--out", "{afile}", *T],
     ("--out", "existing file"), False),
    ("scan-dataset-twice", ["scan", "--dataset", "builtin:sentiment", "--dataset", "builtin:sentiment", "--out", "{tmp}/s", *T],
     "more than once", False),
    ("compare-ridge-nan", ["compare", "--dataset", "builtin:sentiment", "--ridge", "nan", "--out", "{tmp}/c", *T], "--ridge", False),
    # --- arguments: layer specs ---------------------------------------------------------------------------------
    ("extract-layers-empty", ["extract", "--dataset", "builtin:sentiment", "--layers", "", "--out", "{tmp}/v.safetensors", *T],
     "--layers", False),
    ("extract-layers-comma", ["extract", "--dataset", "builtin:sentiment", "--layers", ",", "--out", "{tmp}/v.safetensors", *T],
     "--layers", False),
    ("extract-layers-reversed", ["extract", "--dataset", "builtin:sentiment", "--layers", "2-0", "--out", "{tmp}/v.safetensors", *T],
     ("--layers", "reversed"), False),
    ("extract-layers-duplicated", ["extract", "--dataset", "builtin:sentiment", "--layers", "1,1", "--out", "{tmp}/v.safetensors", *T],
     ("--layers", "more than once"), False),
    ("extract-layers-overlap", ["extract", "--dataset", "builtin:sentiment", "--layers", "0-2,1", "--out", "{tmp}/v.safetensors", *T],
     ("--layers", "more than once"), False),
    ("extract-layers-out-of-range", ["extract", "--dataset", "builtin:sentiment", "--layers", "7", "--out", "{tmp}/v.safetensors", *T],
     "--layers: layer(s) [7] out of range", True),
    ("scan-layers-reversed", ["scan", "--dataset", "builtin:sentiment", "--layers", "2-1", "--out", "{tmp}/s", *T], "--layers", False),
    ("scan-layers-duplicated", ["scan", "--dataset", "builtin:sentiment", "--layers", "0,2,0", "--out", "{tmp}/s", *T], "--layers", False),
    ("demo-layers-duplicated", ["demo", "--layers", "1,1", "--eval-layer", "1", "--out", "{tmp}/d", *T], "--layers", False),
    ("demo-eval-layer-missing", ["demo", "--layers", "0,1", "--eval-layer", "2", "--out", "{tmp}/d", *T], "--eval-layer", False),
    ("evaluate-layer-negative", ["evaluate", "--vector", "{vec2}", "--dataset", "builtin:sentiment", "--layer", "-1",
                                 "--out", "{tmp}/e", *T], "--layer", False),
    ("explain-multi-hook-no-layer", ["explain", "--vector", "{vec2}", "--dataset", "builtin:sentiment", "--out", "{tmp}/x", *T],
     ("--layer", "2 hooks"), False),
    ("explain-layer-missing", ["explain", "--vector", "{vec2}", "--dataset", "builtin:sentiment", "--layer", "1",
                               "--out", "{tmp}/x", *T], "--layer 1", False),
    ("evaluate-multi-hook-no-layer", ["evaluate", "--vector", "{vec2}", "--dataset", "builtin:sentiment", "--out", "{tmp}/e", *T],
     "--layer", False),
    # --- arguments: batch sizes and counts ----------------------------------------------------------------------
    ("evaluate-batch-zero", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--batch-size", "0",
                             "--out", "{tmp}/e", *T], "--batch-size", False),
    ("scan-batch-zero", ["scan", "--dataset", "builtin:sentiment", "--batch-size", "0", "--out", "{tmp}/s", *T], "--batch-size", False),
    ("evaluate-n-negative", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--n", "-1",
                             "--out", "{tmp}/e", *T], "--n", False),
    ("evaluate-random-baselines-negative", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment",
                                            "--random-baselines", "-2", "--out", "{tmp}/e", *T], "--random-baselines", False),
    ("evaluate-test-fraction-one", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--test-fraction", "1",
                                    "--out", "{tmp}/e", *T], "--test-fraction", False),
    ("evaluate-test-fraction-nan", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--test-fraction", "nan",
                                    "--out", "{tmp}/e", *T], "--test-fraction", False),
    ("extract-n-train-negative", ["extract", "--dataset", "builtin:sentiment", "--layers", "1", "--n-train", "-3",
                                  "--out", "{tmp}/v.safetensors", *T], "--n-train", False),
    ("scan-n-train-negative", ["scan", "--dataset", "builtin:sentiment", "--n-train", "-1", "--out", "{tmp}/s", *T], "--n-train", False),
    ("scan-n-test-negative", ["scan", "--dataset", "builtin:sentiment", "--n-test", "-1", "--out", "{tmp}/s", *T], "--n-test", False),
    ("demo-n-test-zero", ["demo", "--n-test", "0", "--out", "{tmp}/d", *T], "--n-test", False),
    ("explain-n-zero", ["explain", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--n", "0", "--out", "{tmp}/x", *T],
     "--n", False),
    ("compare-n-probe-zero", ["compare", "--dataset", "builtin:sentiment", "--n-probe", "0", "--out", "{tmp}/c", *T],
     "--n-probe", False),
    ("compare-max-new-tokens-zero", ["compare", "--dataset", "builtin:sentiment", "--max-new-tokens", "0", "--out", "{tmp}/c", *T],
     "--max-new-tokens", False),
    ("compare-n-generations-negative", ["compare", "--dataset", "builtin:sentiment", "--n-generations", "-1", "--out", "{tmp}/c", *T],
     "--n-generations", False),
    ("sae-features-top-zero", ["sae-features", "--vector", "{vec1}", "--top", "0"], "--top", False),
    ("train-sae-d-sae-zero", ["train-sae", "--d-sae", "0", "--out", "{tmp}/sae", *T], "--d-sae", False),
    ("train-sae-k-negative", ["train-sae", "--k", "-4", "--out", "{tmp}/sae", *T], "--k", False),
    ("train-sae-tokens-zero", ["train-sae", "--training-tokens", "0", "--out", "{tmp}/sae", *T], "--training-tokens", False),
    ("train-sae-lr-nan", ["train-sae", "--lr", "nan", "--out", "{tmp}/sae", *T], "--lr", False),
    ("train-sae-threads-zero", ["train-sae", "--threads", "0", "--out", "{tmp}/sae", *T], "--threads", False),
    # --- arguments: devices, generation length, prompts ---------------------------------------------------------
    ("generate-device-unknown", ["generate", "--vector", "{vec1}", "--prompt", "hi", "--device", "gpu", *T], "--device", False),
    ("generate-device-absent", ["generate", "--vector", "{vec1}", "--prompt", "hi", "--device", "cuda:99", *T], "--device", False),
    ("extract-device-unknown", ["extract", "--dataset", "builtin:sentiment", "--layers", "1", "--device", "tpu",
                                "--out", "{tmp}/v.safetensors", *T], "--device", False),
    ("evaluate-device-unknown", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--device", "gpu0",
                                 "--out", "{tmp}/e", *T], "--device", False),
    ("scan-device-unknown", ["scan", "--dataset", "builtin:sentiment", "--device", "banana", "--out", "{tmp}/s", *T], "--device", False),
    ("demo-device-unknown", ["demo", "--device", "banana", "--out", "{tmp}/d", *T], "--device", False),
    ("explain-device-unknown", ["explain", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--device", "banana",
                                "--out", "{tmp}/x", *T], "--device", False),
    ("compare-device-unknown", ["compare", "--dataset", "builtin:sentiment", "--device", "banana", "--out", "{tmp}/c", *T],
     "--device", False),
    ("generate-max-new-tokens-zero", ["generate", "--vector", "{vec1}", "--prompt", "hi", "--max-new-tokens", "0", *T],
     "--max-new-tokens", False),
    ("generate-max-new-tokens-negative", ["generate", "--vector", "{vec1}", "--prompt", "hi", "--max-new-tokens", "-5", *T],
     "--max-new-tokens", False),
    ("generate-prompt-empty", ["generate", "--vector", "{vec1}", "--prompt", "", *T], "--prompt", False),
    ("generate-prompt-blank", ["generate", "--vector", "{vec1}", "--prompt", "  \n ", *T], "--prompt", False),
    ("generate-prompt-too-long", ["generate", "--vector", "{vec1}", "--prompt", LONG_TEXT, "--max-new-tokens", "4", *T],
     ("--prompt", "512"), True),
    ("generate-prompt-plus-tokens-too-long", ["generate", "--vector", "{vec1}", "--prompt", "hi", "--max-new-tokens", "600", *T],
     ("--max-new-tokens", "512"), True),
    ("generate-vector-other-model", ["generate", "--vector", "{vec_gpt2}", "--prompt", "hi", *T], "d_model", True),
    # --- outputs: checked before anything is computed -----------------------------------------------------------
    ("extract-out-exists", ["extract", "--dataset", "builtin:sentiment", "--layers", "1", "--out", "{vec1}", *T],
     ("--out", "--force"), False),
    ("extract-out-sidecar-exists", ["extract", "--dataset", "builtin:sentiment", "--layers", "1", "--out", "{sidecar_only}", *T],
     ("--out", "--force"), False),
    ("extract-out-is-dir", ["extract", "--dataset", "builtin:sentiment", "--layers", "1", "--out", "{tmp}", *T],
     ("--out", "directory"), False),
    ("extract-out-parent-is-file", ["extract", "--dataset", "builtin:sentiment", "--layers", "1", "--out", "{afile}/v.safetensors", *T],
     ("--out", "afile"), False),
    ("evaluate-out-is-file", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--out", "{afile}", *T],
     ("--out", "existing file"), False),
    ("evaluate-out-unwritable", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--out", "{afile}/sub", *T],
     ("--out", "cannot create"), False),
    ("scan-out-is-file", ["scan", "--dataset", "builtin:sentiment", "--out", "{afile}", *T], ("--out", "existing file"), False),
    ("demo-out-is-file", ["demo", "--out", "{afile}", *T], ("--out", "existing file"), False),
    ("explain-out-is-file", ["explain", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--out", "{afile}", *T],
     ("--out", "existing file"), False),
    ("compare-out-unwritable", ["compare", "--dataset", "builtin:sentiment", "--out", "{afile}/sub", *T], ("--out", "cannot create"), False),
    ("train-sae-out-is-file", ["train-sae", "--out", "{afile}", *T], ("--out", "existing file"), False),
    # --- data files ---------------------------------------------------------------------------------------------
    ("data-non-utf8", ["extract", "--dataset", "persona:badbytes", *D, "--layers", "1", "--out", "{tmp}/v.safetensors", *T],
     ("badbytes.jsonl:2", "UTF-8"), False),
    ("data-empty-file", ["extract", "--dataset", "persona:empty", *D, "--layers", "1", "--out", "{tmp}/v.safetensors", *T],
     ("empty.jsonl", "no rows"), False),
    ("data-blank-file", ["extract", "--dataset", "xrisk:blank", *D, "--layers", "1", "--out", "{tmp}/v.safetensors", *T],
     ("blank.jsonl", "no rows"), False),
    ("data-all-same-answer", ["extract", "--dataset", "xrisk:same", *D, "--layers", "1", "--out", "{tmp}/v.safetensors", *T],
     ("same.jsonl", "3 rows", "3 same_answer"), False),
    ("data-all-unknown-letter", ["extract", "--dataset", "xrisk:letters", *D, "--layers", "1", "--out", "{tmp}/v.safetensors", *T],
     ("letters.jsonl", "2 unknown_letter"), False),
    ("data-mixed-rejections", ["evaluate", "--vector", "{vec1}", "--dataset", "caa:mixed", *D, "--out", "{tmp}/e", *T],
     ("generate_dataset.json", "1 blank", "1 same_answer", "1 unknown_letter"), False),
    ("data-empty-json-list", ["evaluate", "--vector", "{vec1}", "--dataset", "caa:nothing", *D, "--out", "{tmp}/e", *T],
     ("generate_dataset.json", "no rows"), False),
    ("data-persona-no-free-text-pairs", ["extract", "--dataset", "persona:onlyyes@free_text", *D, "--layers", "1",
                                         "--out", "{tmp}/v.safetensors", *T], ("onlyyes.jsonl", "non-matching"), False),
    ("data-persona-same-answer", ["extract", "--dataset", "persona:sameanswer", *D, "--layers", "1",
                                  "--out", "{tmp}/v.safetensors", *T], "sameanswer.jsonl:1", False),
    ("data-line-longer-than-context", ["extract", "--dataset", "persona:long", *D, "--layers", "1",
                                       "--out", "{tmp}/v.safetensors", *T], ("persona:long#2", "512"), True),
    ("data-line-longer-than-context-evaluate", ["evaluate", "--vector", "{vec1}", "--dataset", "persona:long", *D, "--split", "all",
                                                "--out", "{tmp}/e", *T], ("persona:long#2", "512"), True),
    # --- issue 29: checks moved to the front, each naming the option or file ------------------------------------
    ("why-n-folds-zero", ["why", "--n-folds", "0", "--out", "{tmp}/w", *T], "--n-folds must be an integer ≥ 2 (got 0)", False),
    ("why-sae-of-another-model", ["why", "--cases", "builtin:sentiment@1", "--n-train", "4", "--n-test", "4", "--n-folds", "2",
                                  "--n-boot", "100", "--out", "{tmp}/w", *T], ("--sae smollm2-135m-l12", "not a hook of the model", "'tiny-llama'"), True),
    ("why-data-dir-empty", ["why", "--cases", "persona:narcissism@free_text@1", "--data-dir", "{empty}", "--out", "{tmp}/w", *T],
     ("{empty}", "holds no data sets"), False),
    ("scan-time-budget-nan", ["scan", "--dataset", "builtin:sentiment", "--time-budget", "nan", "--out", "{tmp}/s", *T],
     "--time-budget nan", False),
    ("scan-data-dir-empty", ["scan", "--dataset", "persona:narcissism", "--data-dir", "{empty}", "--out", "{tmp}/s", *T],
     ("persona:narcissism", "{empty}", "holds no data sets"), False),
    ("scan-data-dir-broken", ["scan", "--dataset", "persona:narcissism", *D, "--out", "{tmp}/s", *T],
     ("persona:narcissism", "in the data directory {data}"), False),
    ("study-data-dir-empty", ["study", "tan2024", "--data-dir", "{empty}", "--out", "{tmp}/st", *T],
     ("{empty}", "holds no data sets"), False),
    ("extract-spec-two-framings", ["extract", "--dataset", "builtin:sentiment@ab@free_text", "--layers", "1",
                                   "--out", "{tmp}/v.safetensors", *T], "'builtin:sentiment@ab@free_text'", False),
    ("import-gguf-nan", ["import", "--input", "{nan_gguf}", "--out", "{tmp}/i.safetensors"], ("nan.gguf", "direction.1", "non-finite"),
     False),
    ("import-steering-vectors-nan", ["import", "--input", "{nan_sv}", "--format", "steering-vectors", "--out", "{tmp}/i.safetensors"],
     ("nan_sv.pt", "layer 1", "non-finite"), False),
    # --- a NaN vector: refused, never summarised as slope 0 (the metrics' own refusal: test_bad_inputs_api) -----
    ("evaluate-nan-vector", ["evaluate", "--vector", "{vec_nan}", "--dataset", "builtin:sentiment", "--n", "2",
                             "--out", "{tmp}/e", *T], "NaN", False),
]

USAGE_ROWS = [
    ("evaluate-n-not-integer", ["evaluate", "--vector", "{vec1}", "--dataset", "builtin:sentiment", "--n", "abc"], "--n"),
    ("extract-n-train-float", ["extract", "--dataset", "builtin:sentiment", "--out", "{tmp}/v", "--n-train", "1.5"], "--n-train"),
    ("generate-missing-vector", ["generate", "--prompt", "hi"], "--vector"),
    ("extract-missing-out", ["extract", "--dataset", "builtin:sentiment"], "--out"),
    ("scan-unknown-option", ["scan", "--dataset", "builtin:sentiment", "--out", "{tmp}/s", "--layer", "3"], "--layer"),
    ("demo-option-without-value", ["demo", "--layers"], "--layers"),
    ("unknown-command", ["extrakt"], "extrakt"),
]


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny, tiny_gpt2):
    """Vector files for the tiny models and a data root of broken data sets."""
    from interp_steer.data import load_dataset
    from interp_steer.methods import extract_caa

    root = tmp_path_factory.mktemp("bad_inputs")
    pairs = load_dataset("builtin:sentiment")[:4]
    found = {
        "vec1": extract_caa(tiny, pairs, [1], progress=False).save(root / "one.safetensors"),
        "vec2": extract_caa(tiny, pairs, [0, 2], progress=False).save(root / "two.safetensors"),
        "vec_gpt2": extract_caa(tiny_gpt2, pairs, [1], progress=False).save(root / "gpt2.safetensors"),
    }
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(found["vec1"]), "pt") as handle:  # a valid header, a NaN entry (not writable via save())
        metadata, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    for tensor in tensors.values():
        tensor[3] = float("nan")
    save_file(tensors, str(root / "nan.safetensors"), metadata=metadata)
    found["vec_nan"] = root / "nan.safetensors"
    (root / "sidecar_only.json").write_text("{}")
    found["sidecar_only"] = root / "sidecar_only.safetensors"
    found["afile"] = root / "afile"
    found["afile"].write_text("not a directory")

    found["data"] = write_broken_data_root(root)
    found["empty"] = root / "empty_data"
    found["empty"].mkdir()
    found.update(write_nan_vector_files(root, SteeringVector.load(found["vec1"])))
    return found


@pytest.fixture
def no_model_loading(monkeypatch):
    """Make any model load fail loudly: rows marked ``needs_model=False`` must be rejected before one."""
    import interp_steer.models.loading as loading

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was rejected")

    monkeypatch.setattr(loading, "_load", refuse)


def _argv(argv, paths, tmp_path) -> list[str]:
    return [a.format(**paths, tmp=tmp_path) for a in argv]


@pytest.mark.parametrize("argv,fragments,needs_model", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_exit_2(argv, fragments, needs_model, paths, tmp_path, request):
    if not needs_model:
        request.getfixturevalue("no_model_loading")
    result = CliRunner().invoke(app, _argv(argv, paths, tmp_path))
    output = result.output.strip()
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1 and output.startswith("error: "), output
    for fragment in (fragments,) if isinstance(fragments, str) else fragments:
        fragment = _argv([fragment], paths, tmp_path)[0] if "{" in fragment else fragment  # e.g. "{empty}": a path
        assert fragment in output, output


@pytest.mark.parametrize("argv,fragment", [r[1:] for r in USAGE_ROWS], ids=[r[0] for r in USAGE_ROWS])
def test_usage_error_is_short_message_exit_2(argv, fragment, paths, tmp_path, no_model_loading):
    result = CliRunner().invoke(app, _argv(argv, paths, tmp_path))
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output and "Error" in output
    assert fragment in output
    assert len(output.strip().splitlines()) <= 8  # usage line, help hint, the error box


def test_entry_point_prints_usage_errors_without_traceback(paths):
    """The installed entry point (``cli.main``), not only CliRunner: a usage error (package errors take the same
    path through the command group as under CliRunner, see test_cli_core)."""
    import subprocess
    import sys

    argv = ["evaluate", "--vector", str(paths["vec1"]), "--dataset", "x", "--n", "abc"]
    proc = subprocess.run([sys.executable, "-c", "from interp_steer.cli import main; main()", *argv],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Invalid value for '--n'" in proc.stderr


def test_existing_vector_is_overwritten_only_with_force(paths, tmp_path):
    out = tmp_path / "v.safetensors"
    args = ["extract", "--dataset", "builtin:sentiment", "--layers", "1", "--n-train", "2", "--out", str(out), *T]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = out.read_bytes()
    refused = CliRunner().invoke(app, args[:-2] + ["--layers", "2", *T])
    assert refused.exit_code == 2 and out.read_bytes() == before
    forced = CliRunner().invoke(app, [*args[:-2], "--layers", "2", "--force", *T])
    assert forced.exit_code == 0, forced.output
    from interp_steer.steering import SteeringVector

    assert SteeringVector.load(out).hook_names == ["blocks.2.hook_resid_post"]
