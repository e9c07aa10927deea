"""Data-set specs → contrastive pairs: ``load_dataset("persona:narcissism")`` and ``list_datasets()``.

A spec is ``<source>:<name>`` with an optional ``@<framing>`` suffix (``persona:narcissism@free_text``):

=================  ===========================================================  ================  ==========
source             file                                                          framings          default
=================  ===========================================================  ================  ==========
``builtin``        ``interp_steer/data/builtin/<name>.jsonl``                   free_text, ab     free_text
``persona``        ``anthropic-evals/persona/<name>.jsonl``                      ab, free_text     ab
``xrisk``          ``anthropic-evals/advanced-ai-risk/lm_generated_evals/``     ab                ab
``xrisk-human``    ``anthropic-evals/advanced-ai-risk/human_generated_evals/``  ab                ab
``caa``            ``caa/generate/<name>/generate_dataset.json``                ab                ab
``caa-test``       ``caa/test/<name>/test_dataset_ab.json``                      ab                ab
=================  ===========================================================  ================  ==========

Every pair's ``dataset`` is the canonical spec (the ``@framing`` suffix only when it is not the source's
default), so ``load_dataset(pair.dataset)`` reloads the same set; ``id`` is ``<dataset>#<source line>``.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path

from interp_steer.data.builtin_sets import BUILTIN_DATASETS, load_builtin
from interp_steer.data.caa_sets import caa_behaviors, load_caa
from interp_steer.data.capability_sets import CAPABILITY_FILES, capability_sets, load_capability_set
from interp_steer.data.mwe import PERSONA_DIR, XRISK_DIRS, load_persona_ab, load_persona_free_text, load_xrisk
from interp_steer.data.pairs import ContrastivePair, check_unique_ids
from interp_steer.data.paths import data_root
from interp_steer.errors import ConfigError, DataFormatError

DEFAULT_FRAMING = {"builtin": "free_text", "persona": "ab", "xrisk": "ab", "xrisk-human": "ab", "caa": "ab", "caa-test": "ab"}
FRAMINGS = {"builtin": ("free_text", "ab"), "persona": ("ab", "free_text"), "xrisk": ("ab",), "xrisk-human": ("ab",),
            "caa": ("ab",), "caa-test": ("ab",)}


def _jsonl_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []


def list_datasets(data_dir: str | Path | None = None) -> list[str]:
    """All loadable specs (default framing): built-in sets always; the data-dir sets when the data root exists."""
    names = [f"builtin:{name}" for name in sorted(BUILTIN_DATASETS)]
    try:
        root = data_root(data_dir)
    except DataFormatError:
        return names
    names += [f"persona:{n}" for n in _jsonl_names(root / PERSONA_DIR)]
    names += [f"xrisk:{n}" for n in _jsonl_names(root / XRISK_DIRS["lm"])]
    names += [f"xrisk-human:{n}" for n in _jsonl_names(root / XRISK_DIRS["human"])]
    names += [f"caa:{n}" for n in caa_behaviors(root, "generate")]
    names += [f"caa-test:{n}" for n in caa_behaviors(root, "test")]
    names += [f"caa-test:{n}" for n in capability_sets(root)]  # MMLU / TruthfulQA (capability side-effects)
    return names


def parse_spec(spec: str, framing: str | None = None) -> tuple[str, str, str]:
    """``"persona:narcissism@free_text"`` → ``("persona", "narcissism", "free_text")``; the ``framing``
    argument, when given, must agree with a suffix; without either the source's default framing is used."""
    base, _, suffix = spec.partition("@")
    if "@" in suffix:
        raise DataFormatError(f"dataset spec {spec!r}: more than one '@framing' suffix; use at most one")
    source, sep, name = base.partition(":")
    if not sep or not name:
        raise DataFormatError(f"dataset spec {spec!r}: expected '<source>:<name>' with source in {sorted(FRAMINGS)}")
    if source not in FRAMINGS:
        close = difflib.get_close_matches(source, list(FRAMINGS), n=3)
        raise DataFormatError(f"dataset spec {spec!r}: unknown source {source!r}; use one of {sorted(FRAMINGS)}"
                              + (f" (did you mean {close}?)" if close else ""))
    if suffix and framing and suffix != framing:
        raise ConfigError(f"dataset spec {spec!r} says framing {suffix!r} but framing={framing!r} was passed")
    chosen = suffix or framing or DEFAULT_FRAMING[source]
    if chosen not in FRAMINGS[source]:
        raise ConfigError(f"dataset spec {spec!r}: framing {chosen!r} is not available for {source}; use one of "
                          f"{list(FRAMINGS[source])}")
    return source, name, chosen


def canonical_spec(source: str, name: str, framing: str) -> str:
    """``source:name``, plus ``@framing`` when it is not the source's default."""
    return f"{source}:{name}" + ("" if framing == DEFAULT_FRAMING[source] else f"@{framing}")


def _unknown(source: str, name: str, data_dir: str | Path | None) -> DataFormatError:
    wanted = f"{source}:{name}"
    available = list_datasets(data_dir)
    close = difflib.get_close_matches(wanted, available, n=5, cutoff=0.5)
    hint = f"close matches: {close}" if close else f"{len(available)} sets available, see list_datasets()"
    if source == "builtin":
        return DataFormatError(f"unknown dataset {wanted!r}; {hint}")
    root = data_root(data_dir)
    if len(available) == len(BUILTIN_DATASETS):
        return DataFormatError(f"unknown dataset {wanted!r}: the data directory {root} holds no data sets (empty, or "
                               f"not a data directory?); pass --data-dir / data_dir= or set $INTERP_STEER_DATA")
    return DataFormatError(f"unknown dataset {wanted!r} in the data directory {root}; {hint}")


def check_datasets(specs: list[str], data_dir: str | Path | None = None) -> None:
    """Check that every spec parses and names a set that exists (without loading it): a one-line error naming
    the spec, and the data directory for sets that live there. Jobs call it before loading a model."""
    available = None
    for spec in specs:
        source, name, _ = parse_spec(spec)
        if source == "builtin":
            if name not in BUILTIN_DATASETS:
                raise _unknown(source, name, data_dir)
            continue
        if available is None:
            data_root(data_dir)
            available = set(list_datasets(data_dir))
        if f"{source}:{name}" not in available:
            raise _unknown(source, name, data_dir)


def _load(source: str, name: str, framing: str, data_dir: str | Path | None) -> list[ContrastivePair]:
    if source == "builtin":
        if name not in BUILTIN_DATASETS:
            raise _unknown(source, name, data_dir)
        return load_builtin(name, framing)  # type: ignore[arg-type]  # checked by the caller
    if f"{source}:{name}" not in list_datasets(data_dir):
        data_root(data_dir)  # a missing data root is reported as such, not as an unknown name
        raise _unknown(source, name, data_dir)
    if source == "persona":
        return load_persona_ab(name, data_dir) if framing == "ab" else load_persona_free_text(name, data_dir)
    if source in ("xrisk", "xrisk-human"):
        return load_xrisk(name, data_dir, source="lm" if source == "xrisk" else "human")
    if source == "caa-test" and name in CAPABILITY_FILES:
        return load_capability_set(name, data_dir)
    return load_caa(name, "generate" if source == "caa" else "test", data_dir)


def load_dataset(spec: str, data_dir: str | Path | None = None, framing: str | None = None,
                 limit: int | None = None) -> list[ContrastivePair]:
    """Load the pairs of a data-set spec (see the module docstring for the spec forms).

    ``framing`` selects "ab" or "free_text" where a source offers both (or use an ``@framing`` suffix);
    ``limit`` keeps the first ``limit`` pairs in file order. Every pair gets ``dataset`` = the canonical spec
    and ``id`` = ``<dataset>#<line>``. Unknown names raise ``DataFormatError`` listing close matches; so does a
    set in which two pairs end up with the same id.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"limit={limit}: must be a positive integer or None")
    source, name, chosen = parse_spec(spec, framing)
    dataset = canonical_spec(source, name, chosen)
    pairs = _load(source, name, chosen, data_dir)
    if limit is not None:
        pairs = pairs[:limit]
    relabelled: list[ContrastivePair] = []
    for pair in pairs:
        suffix = pair.id.rpartition("#")[2] if "#" in pair.id else str(pair.meta.get("source_line", len(relabelled)))
        relabelled.append(replace(pair, dataset=dataset, id=f"{dataset}#{suffix}"))
    check_unique_ids(relabelled, f"dataset {dataset!r}")
    return relabelled
