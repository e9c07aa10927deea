"""A local text corpus for SAE training: statements and questions from the data sets in the data root.

Sources (all optional, each capped): persona statements (``anthropic-evals/persona/*.jsonl``, field
``statement``), CAA questions with their matching answer (``caa/generate/*/generate_dataset.json``), and
advanced-ai-risk questions. Questions can be wrapped in the model's chat template so the SAE sees the
same token distribution that steering prompts have. Model-generated continuations can be appended.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from interp_steer.errors import DataFormatError

DATA_ENV = "INTERP_STEER_DATA"


def default_data_root() -> Path:
    """``interp_steer.data.paths.data_root()`` if it exists, else ``$INTERP_STEER_DATA``, else ``../shared/data``."""
    try:
        from interp_steer.data.paths import data_root  # type: ignore[import-not-found]

        return Path(data_root())
    except ImportError:
        pass
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
    return rows


def persona_statements(root: Path, per_file: int, rng: random.Random) -> list[str]:
    """Up to ``per_file`` ``statement`` strings from each persona file."""
    texts: list[str] = []
    for path in sorted((root / "anthropic-evals" / "persona").glob("*.jsonl")):
        statements = [row["statement"] for row in _read_jsonl(path) if row.get("statement")]
        texts.extend(rng.sample(statements, min(per_file, len(statements))))
    return texts


def caa_questions(root: Path, per_file: int, rng: random.Random) -> list[tuple[str, str]]:
    """Up to ``per_file`` (question, matching answer) pairs from each CAA generate file."""
    pairs: list[tuple[str, str]] = []
    for path in sorted((root / "caa" / "generate").glob("*/generate_dataset.json")):
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        rows = [r for r in rows if r.get("question")]
        for row in rng.sample(rows, min(per_file, len(rows))):
            answer = row.get("answer_matching_behavior") if rng.random() < 0.5 else row.get("answer_not_matching_behavior")
            pairs.append((row["question"], str(answer or "").strip()))
    return pairs


def ai_risk_questions(root: Path, per_file: int, rng: random.Random) -> list[tuple[str, str]]:
    """Up to ``per_file`` (question, answer) pairs from each advanced-ai-risk human-generated file."""
    pairs: list[tuple[str, str]] = []
    for path in sorted((root / "anthropic-evals" / "advanced-ai-risk" / "human_generated_evals").glob("*.jsonl")):
        rows = [r for r in _read_jsonl(path) if r.get("question")]
        for row in rng.sample(rows, min(per_file, len(rows))):
            pairs.append((row["question"], str(row.get("answer_matching_behavior", "")).strip()))
    return pairs


def as_chat(tokenizer, question: str, answer: str) -> str:
    """The question as a user turn and the answer as the assistant turn, in the tokenizer's chat template (a base
    model without one gets the plain layout ``question\n\nanswer``)."""
    if not getattr(tokenizer, "chat_template", None):
        return f"{question}\n\n{answer}"
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return tokenizer.apply_chat_template(messages, tokenize=False)


def build_corpus(
    tokenizer,
    data_root: Path | None = None,
    persona_per_file: int = 60,
    questions_per_file: int = 150,
    chat_fraction: float = 0.5,
    seed: int = 0,
) -> list[str]:
    """Shuffled training texts from the data root; ``chat_fraction`` of the questions are chat-formatted."""
    root = Path(data_root) if data_root is not None else default_data_root()
    if not root.exists():
        raise DataFormatError(f"data root {root} not found; set ${DATA_ENV} or pass --data-dir")
    rng = random.Random(seed)
    texts = persona_statements(root, persona_per_file, rng)
    for question, answer in caa_questions(root, questions_per_file, rng) + ai_risk_questions(root, questions_per_file, rng):
        if rng.random() < chat_fraction:
            texts.append(as_chat(tokenizer, question, answer))
        else:
            texts.append(f"{question}\n\nAnswer: {answer}")
    if not texts:
        raise DataFormatError(f"no texts found under {root} (expected anthropic-evals/persona and caa/generate)")
    rng.shuffle(texts)
    return texts


def generate_texts(model, prompts: list[str], max_new_tokens: int = 48, seed: int = 0) -> list[str]:
    """Sampled continuations (prompt + completion text) of the model on ``prompts``, one per prompt."""
    import torch

    from interp_steer.data.tokenization import encode_sequence

    torch.manual_seed(seed)
    outputs = []
    for prompt in prompts:
        tokens = torch.tensor([encode_sequence(model.tokenizer, prompt)], device=model.cfg.device)
        out = model.generate(tokens, max_new_tokens=max_new_tokens, temperature=1.0, top_p=0.95, verbose=False)
        outputs.append(model.tokenizer.decode(out[0], skip_special_tokens=False))
    return outputs
