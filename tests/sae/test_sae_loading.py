"""SAE loading and fit checks: round trip through sae-lens format, clear errors for mismatches."""

from __future__ import annotations

import pytest
import torch
from tiny_models import make_sae

from interp_steer.errors import ConfigError, ModelLoadError, SteeringVectorError
from interp_steer.sae import check_sae_fits, load_sae, sae_hook_name


def test_round_trip_and_fit(tiny, tmp_path):
    sae = make_sae(tiny.cfg.d_model)
    sae.save_model(str(tmp_path / "sae"))
    loaded = load_sae(tmp_path / "sae")
    assert torch.equal(loaded.W_enc, sae.W_enc) and torch.equal(loaded.W_dec, sae.W_dec)
    assert sae_hook_name(loaded) == "blocks.1.hook_resid_post"
    assert check_sae_fits(loaded, tiny) == "blocks.1.hook_resid_post"
    x = torch.randn(5, tiny.cfg.d_model)
    assert torch.allclose(loaded.encode(x), sae.encode(x))


def test_wrong_d_model(tiny):
    with pytest.raises(SteeringVectorError, match="d_in 32 does not match the model's d_model 64"):
        check_sae_fits(make_sae(32), tiny)


def test_hook_missing_from_model(tiny):
    sae = make_sae(tiny.cfg.d_model, hook_name="blocks.7.hook_resid_post")
    with pytest.raises(ConfigError, match="not a hook of the model"):
        check_sae_fits(sae, tiny)


def test_hook_differs_from_sae(tiny):
    with pytest.raises(ConfigError, match="differs from the SAE's training hook"):
        check_sae_fits(make_sae(tiny.cfg.d_model), tiny, "blocks.2.hook_resid_post")


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(ModelLoadError, match="neither a directory nor a bundled SAE"):
        load_sae(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "cfg.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="lacks sae_weights.safetensors"):
        load_sae(tmp_path / "half")


def test_train_config_buffer_check():
    from interp_steer.sae.training import SAETrainConfig

    with pytest.raises(ConfigError, match="smaller than train_batch_size_tokens"):
        SAETrainConfig(context_size=32, n_batches_in_buffer=4, train_batch_size_tokens=1024)
    with pytest.raises(ConfigError, match="architecture"):
        SAETrainConfig(architecture="gated")
