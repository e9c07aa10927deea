"""Every registered propensity engine gives the same table as a hand-written steered forward, by name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from interp_steer.data import ContrastivePair, encode_pair
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.evaluation import ENGINES, get_engine, resolve_engine
from interp_steer.evaluation.propensity import PROPENSITY_COLUMNS
from interp_steer.steering import SteeringVector

MULTIPLIERS = [-2.0, 0.0, 1.5]
KEY = ["sample_id", "multiplier"]
LAYER = 1


def _pairs(kind: str) -> list[ContrastivePair]:
    if kind == "ab":
        return [ContrastivePair(f"Question {i}: {'would you really ' * i}like power?\n(A) Yes\n(B) No",
                                "(A)" if i % 2 else "(B)", "(B)" if i % 2 else "(A)", id=f"ab{i}", dataset="toy-ab")
                for i in range(5)]
    return [ContrastivePair(f"Tell me about {'the weather ' * (i + 1)}", " I love it" + "!" * i, " I hate it.",
                            kind="free_text", id=f"ft{i}", dataset="toy-ft") for i in range(4)]


def _vector(d_model: int) -> SteeringVector:
    return SteeringVector({f"blocks.{LAYER}.hook_resid_post": 2.0 * torch.randn(d_model, generator=torch.Generator().manual_seed(5))})


def _reference(model, pairs, vector, multipliers) -> pd.DataFrame:
    """One unpadded forward per (sample, side, multiplier), the vector added by a hand-written hook from the last
    prompt token on."""
    direction = vector.directions[f"blocks.{LAYER}.hook_resid_post"]
    records = []
    for pair in pairs:
        enc = encode_pair(model.tokenizer, pair)
        prompt = list(enc.prompt_ids)
        for m in multipliers:
            def hook(resid, hook, m=m, start=len(prompt) - 1):
                resid[:, start:] += m * direction.to(resid.dtype)
                return resid

            def logprobs(ids):
                with torch.no_grad(), model.hooks(fwd_hooks=[(f"blocks.{LAYER}.hook_resid_post", hook)]):
                    return torch.log_softmax(model(torch.tensor([ids]))[0].double(), -1)
            if pair.kind == "ab":
                lp = logprobs(prompt + [enc.positive_ids[0]])[-1]
                value = float(lp[enc.positive_ids[1]] - lp[enc.negative_ids[1]])
            else:
                sums = []
                for completion in (enc.positive_ids, enc.negative_ids):
                    ids = prompt + list(completion)
                    lp = logprobs(ids)
                    sums.append(sum(float(lp[t - 1, ids[t]]) for t in range(len(prompt), len(ids))))
                value = sums[0] - sums[1]
            records.append({"sample_id": pair.id, "multiplier": m, "propensity": value})
    return pd.DataFrame.from_records(records).sort_values(KEY).reset_index(drop=True)


@pytest.mark.parametrize("kind", ["ab", "free_text"])
def test_every_engine_equals_the_hand_written_forward(tiny, kind):
    pairs, vector = _pairs(kind), _vector(tiny.cfg.d_model)
    ref = _reference(tiny, pairs, vector, MULTIPLIERS)
    assert ref["propensity"].std() > 0.1  # steering moves the scores, so agreeing on them is a real check
    names = [name for name in ENGINES if kind == "ab" or name != "answers"]
    assert {"fast", "batched", "naive", "answers"} <= set(ENGINES)
    for name in names:
        table = get_engine(name)(tiny, pairs, vector, MULTIPLIERS, batch_size=4, vector_name="v")
        assert list(table.columns) == PROPENSITY_COLUMNS, name
        assert (table["vector"] == "v").all() and (table["layer"] == LAYER).all(), name
        table = table.sort_values(KEY).reset_index(drop=True)
        assert (table[KEY].to_numpy() == ref[KEY].to_numpy()).all(), name
        got, wanted = table["propensity"].to_numpy(float), ref["propensity"].to_numpy(float)
        assert abs(got - wanted).max() < 1e-4 + 1e-5 * abs(wanted).max(), name
        if kind == "ab":
            sigmoid = 1 / (1 + np.exp(-table["propensity"].to_numpy(float)))
            assert abs(table["pos_prob"].to_numpy(float) - sigmoid).max() < 1e-6, name


def test_names_objects_and_bad_names():
    assert resolve_engine(None) is ENGINES["batched"] and resolve_engine("fast") is ENGINES["fast"]
    custom = ENGINES["naive"]
    assert resolve_engine(custom) is custom
    with pytest.raises(ConfigError) as info:
        get_engine("turbo", "--engine")
    message = str(info.value)
    assert "\n" not in message and "--engine 'turbo'" in message and "fast, batched, naive, answers" in message


def test_answers_engine_refuses_free_text(tiny):
    with pytest.raises(DataFormatError, match="A/B pairs only"):
        get_engine("answers")(tiny, _pairs("free_text"), _vector(tiny.cfg.d_model), [0.0, 1.0])
