"""Prompt text: the model's chat template around a pair's system prompt and user turn."""

from __future__ import annotations

from interp_steer.data.pairs import ContrastivePair


def render_prompt(tokenizer, pair: ContrastivePair, *, use_chat_template: bool = True) -> str:
    """The text before the response: chat-templated system + user turn with the assistant header.

    For A/B pairs the response is the answer, so nothing is appended here; for tokenizers without a chat
    template (or ``use_chat_template=False``) a plain ``system\\n\\nuser\\n`` layout is used.
    """
    template = getattr(tokenizer, "chat_template", None)
    if use_chat_template and template:
        messages = []
        if pair.system_prompt:
            messages.append({"role": "system", "content": pair.system_prompt})
        messages.append({"role": "user", "content": pair.prompt})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    head = f"{pair.system_prompt}\n\n" if pair.system_prompt else ""
    return f"{head}{pair.prompt}\n"
