"""The A/B task check: p(A) + p(B) of every A/B test sample, unsteered, joined onto the study's propensity rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from interp_steer.data import encode_pair, load_dataset, train_test_split
from interp_steer.runs.ab_task import AbTaskConfig, AbTaskJob, read_ab_task
from interp_steer.runs.runner import run_job
from interp_steer.runs.study_report_ab import with_format_mass


def test_format_mass_equals_the_softmax_mass_of_the_two_letters(tiny, tmp_path, data_root):
    spec = "persona:narcissism"
    config = AbTaskConfig(datasets=[spec], n_test=4, model="tiny-llama")
    report = run_job(AbTaskJob(config, data_root), tmp_path / "ab_task", model=tiny, progress=False)
    table = report.tables["per_sample"]
    _, test = train_test_split(load_dataset(spec, data_dir=data_root), test_fraction=0.5, seed=0)
    assert list(table["sample_id"]) == [p.id for p in test[:4]]
    for pair, mass in zip(test[:4], table["format_mass"]):
        enc = encode_pair(tiny.tokenizer, pair)
        letter_at = len(enc.positive_ids) - 2  # "(A)": the letter sits before the closing bracket
        ids = torch.tensor([enc.prompt_ids + enc.positive_ids[:letter_at]])
        with torch.no_grad():
            probs = torch.softmax(tiny(ids)[0, -1].double(), dim=-1)
        letters = [enc.positive_ids[letter_at], enc.negative_ids[len(enc.negative_ids) - 2]]
        assert np.isclose(mass, float(probs[letters].sum()), rtol=1e-5)
    assert read_ab_task(tmp_path)["format_mass"].tolist() == table["format_mass"].tolist()


def test_format_mass_joins_only_the_unsteered_rows(tmp_path):
    (tmp_path / "ab_task").mkdir()
    pd.DataFrame({"dataset": ["d", "d"], "sample_id": ["1", "2"], "format_mass": [0.9, 0.2], "pos_prob": [0.5, 0.5],
                  "logit_diff": [0.0, 0.0], "is_A": [True, False]}).to_csv(tmp_path / "ab_task" / "per_sample.csv",
                                                                            index=False)
    props = pd.DataFrame({"dataset": ["d"] * 4, "sample_id": ["1", "1", "2", "3"], "multiplier": [0.0, 1.0, 0.0, 0.0]})
    joined = with_format_mass(props, tmp_path)
    np.testing.assert_array_equal(joined["format_mass"].to_numpy(), [0.9, np.nan, 0.2, np.nan])
    assert "format_mass" not in with_format_mass(props, tmp_path / "nowhere").columns
