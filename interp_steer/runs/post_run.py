"""The post-run phase shared by the ``evaluate`` and ``tune`` jobs: recommend → baseline → generations → card inputs.

After a job's units are combined into a per-(layer, multiplier) summary, both jobs

1. **recommend** a setting within the KL budget (:func:`recommendation`) and fall back to the largest positive shift
   when none qualifies (:func:`~interp_steer.evaluation.settings.chosen_setting`);
2. compare steering at that setting with the SYS_POS / SYS_NEG **persona prompts** (:func:`persona_baseline`);
3. **generate** side by side at multipliers ``-m, 0, +m`` (:func:`steered_generations`; ``evaluate`` generates in
   its units instead);
4. draw the card's model-dependent part, the **projection view** of one prompt (:func:`projection_or_note`), and
   hand everything to the job's card writer in :mod:`interp_steer.report`.

Every step that cannot run appends a one-line note to ``notes`` (shown in the report and card) instead of failing.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import InterpSteerError
from interp_steer.evaluation.settings import recommend
from interp_steer.steering.vector import SteeringVector


def recommendation(summary: pd.DataFrame | None, kl_budget: float, units: str, *, has_neutral: bool = True) -> dict:
    """:func:`~interp_steer.evaluation.settings.recommend` on ``summary``; without neutral side effects (or without a
    summary) a ``{"found": False, ...}`` record saying that no setting can be checked against the KL budget."""
    if summary is not None and has_neutral:
        return recommend(summary, kl_budget)
    return {"found": False, "kl_budget": kl_budget, "units": units,
            "reason": "no neutral side effects were computed (--neutral-n 0), so no setting can be checked "
                      "against the KL budget"}


def persona_baseline(model, dataset: str, train: Sequence[ContrastivePair] | None, test: Sequence[ContrastivePair],
                     vector: SteeringVector, multiplier: float, *, notes: list[str],
                     **options: Any) -> pd.DataFrame | None:
    """:func:`~interp_steer.evaluation.baseline.prompting_baseline` of ``vector`` at ``multiplier`` on ``test``, with
    the persona sentences of ``dataset`` (derived from ``train``); ``None`` and a note when the dataset has none.
    ``options`` go to ``prompting_baseline`` (neutral set, generation messages, units, batch size, bootstrap)."""
    from interp_steer.evaluation.baseline import baseline_sentences, prompting_baseline

    try:
        sentences = baseline_sentences(dataset, train)
    except InterpSteerError as exc:
        notes.append(f"No prompting baseline: {exc}")
        return None
    return prompting_baseline(model, test, vector, multiplier, sentences=sentences, **options)


def steered_generations(model, pairs: Sequence[ContrastivePair], vector: SteeringVector, layer: int,
                        multiplier: float, *, n: int, max_new_tokens: int, batch_size: int) -> pd.DataFrame | None:
    """Greedy generations from the first ``n`` distinct user prompts of ``pairs`` at multipliers ``-m, 0, +m`` with
    their side-effect metrics (:func:`~interp_steer.evaluation.side_effects.generation_side_effects`); columns also
    ``layer`` and ``user_prompt``. ``None`` when there is no prompt."""
    from interp_steer.data.templates import render_prompt
    from interp_steer.evaluation.side_effects import generation_side_effects

    distinct = generation_prompts(pairs, n)
    prompts = [render_prompt(model.tokenizer, p) for p in distinct]
    if not prompts:
        return None
    m = float(multiplier)
    gens = generation_side_effects(model, prompts, vector, [-m, 0.0, m], max_new_tokens=max_new_tokens,
                                   batch_size=batch_size)
    gens.insert(0, "layer", layer)
    gens["user_prompt"] = [distinct[i].prompt for i in gens["prompt_index"]]
    return gens


def generation_prompts(pairs: Sequence[ContrastivePair], n: int) -> list[ContrastivePair]:
    """The first ``n`` pairs with distinct prompts (persona free text repeats one prompt)."""
    return list({p.prompt: p for p in pairs}.values())[:n]


def projection_or_note(model, vector: SteeringVector, pair: ContrastivePair, layers: Sequence[int], multiplier: float,
                       notes: list[str]) -> Any:
    """The card's projection view of ``pair`` (computed by :func:`~interp_steer.analysis.view_data.projection_view`,
    drawn by :func:`~interp_steer.viz.views.draw_view`), or ``None`` and a note when it cannot be drawn."""
    try:
        from interp_steer.analysis.view_data import projection_view
        from interp_steer.viz.views import draw_view

        return draw_view(*projection_view(model, vector, pair, list(layers), multiplier=multiplier))
    except (InterpSteerError, ImportError) as exc:
        notes.append(f"No projection view: {exc}")
        return None
