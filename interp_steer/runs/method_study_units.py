"""The computations of the method study's units (:mod:`interp_steer.runs.method_study`): one function per part,
each taking the model, the config, the dataset's train / test pairs, and returning the unit's payloads."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.evaluation.engines import fast_engine
from interp_steer.steering.vector import SteeringVector


def matched_norm_vector(model, config, method: str, dataset: str, pairs: Sequence[ContrastivePair],
                        caa_norm: float | None = None) -> tuple[SteeringVector, float, float]:
    """``method``'s vector on ``pairs`` at the study's layer, rescaled to ``caa_norm`` (default: the norm of the CAA
    vector of the same pairs); returns ``(vector, own norm, CAA norm)``."""
    from interp_steer.methods import extract, extract_caa

    caa = None
    if caa_norm is None or method == "caa":
        caa = extract_caa(model, pairs, [config.layer], progress=False, dataset=dataset)
        caa_norm = caa_norm if caa_norm is not None else caa.norms()[caa.hook_names[0]]
    own = caa if method == "caa" else extract(method, model, pairs, [config.layer],
                                              config.method_config(method, caa_norm), progress=False, dataset=dataset)
    assert own is not None
    own_norm = own.norms()[own.hook_names[0]]
    return own.normalize(caa_norm), own_norm, caa_norm


def steer_unit(model, config, method: str, dataset: str, train, test) -> tuple[SteeringVector, pd.DataFrame, pd.DataFrame]:
    """The matched-norm vector, its neutral-corpus KL per passage at ``kl_multipliers`` and the held-out pairs'
    propensities at ``multipliers``."""
    from interp_steer.evaluation.side_effects import neutral_side_effects, prepare_neutral

    if not train or not test:
        raise ConfigError(f"dataset {dataset!r}: needs non-empty train and test splits")
    vector, own_norm, caa_norm = matched_norm_vector(model, config, method, dataset, train)
    table = fast_engine(model, test, vector, config.multipliers, vector_name=method)
    table = table.assign(method=method, spec=dataset, own_norm=own_norm, vector_norm=caa_norm, n_train=len(train))
    neutral = prepare_neutral(model, n=config.n_neutral, continuation_tokens=0)
    kl = neutral_side_effects(model, neutral, vector, config.kl_multipliers)
    kl = kl[["passage_id", "multiplier", "kl", "n_kl_tokens"]].assign(method=method, spec=dataset)
    return vector, kl, table


def prompting_unit(model, config, dataset: str, train, test) -> pd.DataFrame:
    """:func:`~interp_steer.evaluation.baseline.prompting_baseline` of the dataset: the CAA vector at
    ``±reference_multiplier`` (matched norm is CAA's own norm) beside the SYS_POS / SYS_NEG persona prompts, with
    neutral-corpus KL (``n_neutral`` passages) for every arm."""
    from interp_steer.evaluation.baseline import baseline_sentences, prompting_baseline
    from interp_steer.evaluation.side_effects import prepare_neutral

    if not train or not test:
        raise ConfigError(f"dataset {dataset!r}: needs non-empty train and test splits")
    vector, _, _ = matched_norm_vector(model, config, "caa", dataset, train)
    neutral = prepare_neutral(model, n=config.n_neutral, continuation_tokens=0)
    return prompting_baseline(model, test, vector, config.reference_multiplier,
                              sentences=baseline_sentences(dataset, train), neutral=neutral, engine="fast",
                              n_boot=config.n_boot, seed=config.seed)


def variants_unit(model, config, method: str, dataset: str, train, test) -> pd.DataFrame:
    """``method``'s vector extracted on each prompt variant of ``train`` (each rescaled to the norm of the BASE CAA
    vector), the BASE vector evaluated on every variant of ``test`` and each variant's vector on its own prompts:
    propensities with ``train_variant`` (the vector's) and ``variant`` (the prompts') columns."""
    from interp_steer.evaluation.baseline import baseline_sentences
    from interp_steer.evaluation.variants import VARIANTS, apply_variant

    if not train or not test:
        raise ConfigError(f"dataset {dataset!r}: needs non-empty train and test splits")
    sentences = baseline_sentences(dataset, train)
    base = apply_variant(train, "BASE", sentences)
    _, _, caa_norm = matched_norm_vector(model, config, "caa", dataset, base)
    vectors = {v: matched_norm_vector(model, config, method, dataset, apply_variant(train, v, sentences), caa_norm)[0]
               for v in VARIANTS}
    evals = {"BASE": [p.with_(id=f"{p.id}|{v}") for v in VARIANTS for p in apply_variant(test, v, sentences)]}
    evals.update({v: apply_variant(test, v, sentences) for v in VARIANTS if v != "BASE"})
    frames = [fast_engine(model, pairs, vectors[tv], config.multipliers, vector_name=f"{method}:{tv}").assign(train_variant=tv)
              for tv, pairs in evals.items()]
    table = pd.concat(frames, ignore_index=True)
    return table.assign(sample_id=table["sample_id"].str.split("|").str[0], method=method, spec=dataset)
