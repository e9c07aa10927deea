"""Interventions of issue 26 on a tiny model: zero-k projection changes nothing, full projection removes steering."""

import numpy as np
import pytest
import torch

from interp_steer.analysis.interventions import (
    edit_pairs,
    intervention_effect,
    project_off_logit_lens,
    remove_negation,
    steered_slopes,
)
from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.evaluation.fast_engine import fast_propensities
from interp_steer.models.tiny import tiny_model
from interp_steer.steering.vector import Provenance, SteeringVector

MULTS = [-1.0, 0.0, 1.0]


@pytest.fixture(scope="module")
def setup():
    model = tiny_model("tiny-llama")
    pairs = [ContrastivePair("Tell me.", " I like helping people", " I do not care", kind="free_text", id=f"p{i}",
                             system_prompt=None) for i in range(2)]
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0)) * 2
    return model, pairs, direction


def test_zero_k_projection_is_identity(setup):
    model, pairs, direction = setup
    torch.testing.assert_close(project_off_logit_lens(model, direction, 0), direction)
    before = steered_slopes(model, pairs, direction, 1, MULTS)
    after = steered_slopes(model, pairs, project_off_logit_lens(model, direction, 0), 1, MULTS)
    np.testing.assert_allclose(after["slope"], before["slope"], rtol=0, atol=0)


def test_full_projection_removes_steering(setup):
    model, pairs, direction = setup
    projected = project_off_logit_lens(model, direction, model.cfg.d_vocab)
    assert float(projected.norm()) < 1e-4 * float(direction.norm())
    vector = SteeringVector({"blocks.1.hook_resid_post": projected}, Provenance(layers=[1]))
    props = fast_propensities(model, pairs, vector, MULTS, progress=False)
    spread = props.groupby("sample_id")["propensity"].agg(lambda s: s.max() - s.min())
    assert (spread < 1e-3).all()  # every multiplier gives the unsteered propensity: no steering


def test_partial_projection_is_orthogonal_to_top_tokens(setup):
    model, _, direction = setup
    from interp_steer.analysis.battery_features import logit_lens_top

    k = 5
    projected = project_off_logit_lens(model, direction, k)
    ids = logit_lens_top(model, direction, k)
    np.testing.assert_allclose((model.W_U[:, ids].T @ projected).detach().numpy(), 0, atol=1e-4)
    with pytest.raises(ConfigError, match="k=-1"):
        project_off_logit_lens(model, direction, -1)


def test_remove_negation_rules():
    assert remove_negation(" I do not care about others") == " I do care about others"
    assert remove_negation(" I don't like rules") == " I do like rules"
    assert remove_negation(" Never mind") is None or remove_negation(" Never mind") == " mind"
    assert remove_negation(" I like knots") is None
    pairs = [ContrastivePair("q", " I am kind", " I am not kind", kind="free_text", id="a"),
             ContrastivePair("q", " yes", " no way", kind="free_text", id="b")]
    edited = edit_pairs(pairs, remove_negation, "negative")
    assert len(edited) == 1 and edited[0][1].negative == " I am kind" and edited[0][1].positive == " I am kind"


def test_intervention_effect_by_hand():
    before = np.array([-1.0, -2.0, 1.0, 3.0])
    after = np.array([1.0, -1.0, 2.0, 3.0])
    out = intervention_effect(before, after, n_boot=200)
    assert out["mean_change"] == pytest.approx(np.mean(after - before))
    assert out["turned_steerable"] == pytest.approx(0.5) and out["n_anti_before"] == 2
    assert out["anti_fraction_before"] == 0.5 and out["anti_fraction_after"] == 0.25


def test_random_projection_control(setup):
    from interp_steer.analysis.interventions import project_off_random

    _, _, direction = setup
    torch.testing.assert_close(project_off_random(direction, 0), direction)
    assert float(project_off_random(direction, direction.shape[0]).norm()) < 1e-4 * float(direction.norm())
    half = project_off_random(direction, 8, seed=1)
    assert float(half.norm()) < float(direction.norm())
    assert float(torch.dot(half, direction - half)) == pytest.approx(0.0, abs=1e-4)  # orthogonal decomposition


def test_steered_slopes_decompose_and_edit_changes_only_edited_side(setup):
    model, _, direction = setup
    pairs = [ContrastivePair("Tell me.", " I help", " I do not help", kind="free_text", id="n0", system_prompt=None)]
    (original, edited), = edit_pairs(pairs, remove_negation, "negative")
    before = steered_slopes(model, [original], direction, 1, MULTS)
    after = steered_slopes(model, [edited], direction, 1, MULTS)
    np.testing.assert_allclose(before["s_pos"] - before["s_neg"], before["slope"], atol=1e-9)
    np.testing.assert_allclose(after["s_pos"], before["s_pos"], atol=1e-9)  # the matching side is untouched
    assert not np.allclose(after["s_neg"], before["s_neg"])
