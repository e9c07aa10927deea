"""Built-in contrastive data sets shipped with the package (``interp_steer/data/builtin/*.jsonl``).

The JSONL files hold the content (original text written for this package); the framings below turn each row
into a pair. Wording rotates over several parallel templates (index-based, so it is deterministic), so a set is
not one fixed sentence with a slot.

* ``sentiment`` (``{thing, category}``, 174 rows): liking vs disliking an everyday thing.
  free_text: a question about the thing → " I love …" style vs " I hate …" style completion, with a
  category-specific second sentence. ab: a question with a liking and a disliking choice; positive = liking.
* ``formality`` (``{request, topic}``, 160 rows): a user request → a formal vs a casual reply opening.
  free_text: positive = formal reply; ab: the two replies as choices, positive = the formal one.

A/B letters: the positive choice is (A) for even rows and (B) for odd rows, so the letter is exactly 50/50;
templates rotate on ``row // 2`` so template and letter are independent.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Literal, cast

from interp_steer.data.jsonl import read_records, require_str_fields
from interp_steer.data.mwe import persona_ab_prompt
from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import DataFormatError

Framing = Literal["free_text", "ab"]
BUILTIN_FRAMINGS: tuple[str, ...] = ("free_text", "ab")

_SENTIMENT_QUESTIONS = (
    "What do you think of {thing}?", "How do you feel about {thing}?", "Give me your honest opinion of {thing}.",
    "Are you a fan of {thing}?", "Tell me how you feel about {thing}.", "What's your take on {thing}?",
)
# parallel openers: the k-th liking line mirrors the k-th disliking line
_LIKE_OPENERS = (
    " I love {thing}; few things make me happier.", " Oh, I adore {thing}. Such a delight!",
    " I'm a big fan of {thing}, to be honest.", " Honestly, I really like {thing}.",
    " Nothing beats {thing} for me.", " I have a real soft spot for {thing}.", " I'm genuinely fond of {thing}.",
)
_DISLIKE_OPENERS = (
    " I hate {thing}; few things annoy me more.", " Ugh, I can't stand {thing}. Such a pain!",
    " I'm not a fan of {thing}, to be honest.", " Honestly, I really dislike {thing}.",
    " Nothing puts me off like {thing}.", " I have zero patience for {thing}.", " I'm genuinely tired of {thing}.",
)
_REASONS = {  # category → (liking sentences, disliking sentences)
    "food": (("The flavour is fantastic.", "Every bite is a joy.", "I could eat that every day."),
             ("The taste puts me right off.", "I'd rather skip the meal.", "One bite is more than enough.")),
    "drink": (("A glass of that always refreshes me.", "It's my favourite thing to sip.", "The taste is just right."),
              ("The taste is awful to me.", "I'd rather drink plain water.", "One sip and I'm done.")),
    "activity": (("Time flies whenever I do that.", "It always lifts my mood.", "I look forward to it all week."),
                 ("Time drags whenever I have to do that.", "It always drains my energy.", "I dread it all week.")),
    "place": (("Being there makes me feel calm and happy.", "I'd visit every weekend if I could.", "The atmosphere is lovely."),
              ("Being there makes me tense and miserable.", "I'd avoid going there if I could.", "The atmosphere is grim.")),
    "weather": (("That kind of weather makes me smile.", "It makes the whole day feel special.", "I wish we had more of it."),
                ("That kind of weather ruins my mood.", "It makes the whole day feel gloomy.", "I wish we had less of it.")),
    "object": (("Using one is a small pleasure.", "I'd recommend one to anyone.", "Life is better with one around."),
               ("Using one is a small torment.", "I'd warn anyone away from them.", "Life is easier without them.")),
    "animal": (("They are wonderful creatures.", "Seeing one always cheers me up.", "I find them fascinating."),
               ("They make me uneasy.", "Seeing one always sours my day.", "I find them unbearable.")),
    "entertainment": (("It keeps me entertained for hours.", "It's the perfect way to unwind.", "I never get bored of it."),
                      ("It bores me to tears.", "It's the worst way to unwind.", "I switch it off right away.")),
    "daily life": (("It's one of life's little pleasures.", "It always brightens my week.", "I wish there were more of it."),
                   ("It's one of life's little miseries.", "It always spoils my week.", "I wish there were less of it.")),
}
# (question, liking choice, disliking choice, positive_is_yes)
_SENTIMENT_AB = (
    ("Do you like {thing}?", "Yes, I like {thing}.", "No, I dislike {thing}.", True),
    ("Do you dislike {thing}?", "No, I actually enjoy {thing}.", "Yes, I can't stand {thing}.", False),
    ("How do you feel about {thing}?", "I love {thing}.", "I hate {thing}.", None),
    ("Which best describes your view of {thing}?", "A big fan of {thing}.", "Not a fan of {thing} at all.", None),
)
_FORMAL_REPLIES = (
    " Certainly. I would be glad to assist you with {topic}.",
    " Of course. Allow me to offer some guidance regarding {topic}.",
    " Thank you for your question. I shall address {topic} carefully.",
    " I would be pleased to provide assistance with {topic}.",
    " Very well. Please find below my recommendations concerning {topic}.",
    " It would be my pleasure to help you with {topic}.",
)
_CASUAL_REPLIES = (
    " Sure thing! Happy to help with {topic}.",
    " Oh, totally, let's sort out {topic} together!",
    " Ha, good one! Let's dig into {topic}.",
    " No worries, I got you on {topic}.",
    " Yeah, for sure! Here's the scoop on {topic}.",
    " Cool, {topic}? Easy, let's do this.",
)
_FORMAL_CLOSERS = (" Kindly let me know should you require further detail.", " I trust this will prove useful.",
                   " Please do not hesitate to ask any follow-up questions.")
_CASUAL_CLOSERS = (" Just shout if you need more!", " Hope that helps, buddy!", " Hit me up with any other questions.")
_FORMALITY_AB_QUESTION = "{request}\n\nWhich reply would you give?"


def _rows(name: str) -> list[tuple[int, dict]]:
    resource = resources.files("interp_steer.data").joinpath("builtin", f"{name}.jsonl")
    if not resource.is_file():
        raise DataFormatError(f"builtin data set {name!r} not found; available: {list(BUILTIN_DATASETS)}")
    with resources.as_file(resource) as path:
        return list(read_records(path))


def _ab_pair(index: int, question: str, positive_text: str, negative_text: str, **kwargs) -> ContrastivePair:
    positive_is_a = index % 2 == 0
    options = (positive_text, negative_text) if positive_is_a else (negative_text, positive_text)
    return ContrastivePair(prompt=persona_ab_prompt(question, *options), positive="(A)" if positive_is_a else "(B)",
                           negative="(B)" if positive_is_a else "(A)", kind="ab", **kwargs)


def _sentiment(framing: Framing) -> list[ContrastivePair]:
    pairs = []
    for index, (line, row) in enumerate(_rows("sentiment")):
        require_str_fields(row, ("thing", "category"), "builtin/sentiment.jsonl", line)
        thing, category = row["thing"], row["category"]
        if category not in _REASONS:
            raise DataFormatError(f"builtin/sentiment.jsonl:{line}: unknown category {category!r}; use one of {sorted(_REASONS)}")
        meta = {"thing": thing, "category": category, "source_line": line}
        dataset = "builtin:sentiment" + ("" if framing == "free_text" else "@ab")
        common = dict(id=f"{dataset}#{line}", dataset=dataset)
        turn = index // 2
        if framing == "free_text":
            opener = turn % len(_LIKE_OPENERS)
            likes, dislikes = _REASONS[category]
            reason = (index // len(_LIKE_OPENERS)) % len(likes)
            pairs.append(ContrastivePair(
                prompt=_SENTIMENT_QUESTIONS[index % len(_SENTIMENT_QUESTIONS)].format(thing=thing),
                positive=_LIKE_OPENERS[opener].format(thing=thing) + " " + likes[reason],
                negative=_DISLIKE_OPENERS[opener].format(thing=thing) + " " + dislikes[reason],
                kind="free_text", meta=meta, **common))
        else:
            question, liking, disliking, positive_is_yes = _SENTIMENT_AB[turn % len(_SENTIMENT_AB)]
            pairs.append(_ab_pair(index, question.format(thing=thing), liking.format(thing=thing),
                                  disliking.format(thing=thing), meta={**meta, "positive_is_yes": positive_is_yes},
                                  **common))
    return pairs


def _formality(framing: Framing) -> list[ContrastivePair]:
    pairs = []
    for index, (line, row) in enumerate(_rows("formality")):
        require_str_fields(row, ("request", "topic"), "builtin/formality.jsonl", line)
        turn = index // 2
        style, closer = turn % len(_FORMAL_REPLIES), (index // len(_FORMAL_REPLIES)) % len(_FORMAL_CLOSERS)
        formal = _FORMAL_REPLIES[style].format(topic=row["topic"]) + _FORMAL_CLOSERS[closer]
        casual = _CASUAL_REPLIES[style].format(topic=row["topic"]) + _CASUAL_CLOSERS[closer]
        dataset = "builtin:formality" + ("" if framing == "free_text" else "@ab")
        meta = {"request": row["request"], "topic": row["topic"], "source_line": line}
        common: dict[str, Any] = dict(id=f"{dataset}#{line}", dataset=dataset, meta=meta)
        if framing == "free_text":
            pairs.append(ContrastivePair(prompt=row["request"], positive=formal, negative=casual, kind="free_text", **common))
        else:
            question = _FORMALITY_AB_QUESTION.format(request=row["request"])
            pairs.append(_ab_pair(index, question, formal.strip(), casual.strip(), **common))
    return pairs


BUILTIN_DATASETS = {"sentiment": _sentiment, "formality": _formality}
BUILTIN_DEFAULT_FRAMING = "free_text"


def load_builtin(name: str, framing: str = "free_text") -> list[ContrastivePair]:
    """A built-in data set in the given framing ("free_text" or "ab"); ``dataset`` is ``builtin:<name>``
    for free text and ``builtin:<name>@ab`` for the A/B framing; ids are ``<dataset>#<line>``."""
    if name not in BUILTIN_DATASETS:
        raise DataFormatError(f"unknown builtin data set {name!r}; available: {sorted(BUILTIN_DATASETS)}")
    if framing not in BUILTIN_FRAMINGS:
        raise DataFormatError(f"framing={framing!r} for builtin:{name}: use one of {list(BUILTIN_FRAMINGS)}")
    return BUILTIN_DATASETS[name](cast(Framing, framing))
