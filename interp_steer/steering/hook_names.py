"""Hook-name helpers: layer shorthands resolve to TransformerLens hook names, never a second addressing scheme."""

from __future__ import annotations

import re

from interp_steer.errors import ConfigError

DEFAULT_SITE = "hook_resid_post"
_BLOCK_HOOK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def resid_hook_name(layer: int, site: str = DEFAULT_SITE) -> str:
    """``blocks.{layer}.{site}``: the hook name a bare layer int stands for."""
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ConfigError(f"layer must be a non-negative int, got {layer!r}")
    return f"blocks.{layer}.{site}"


def as_hook_name(layer_or_name: int | str, site: str = DEFAULT_SITE) -> str:
    """Accept ``13`` or ``"blocks.13.hook_resid_post"``; return the hook name."""
    if isinstance(layer_or_name, str):
        if layer_or_name.isdigit():
            return resid_hook_name(int(layer_or_name), site)
        return layer_or_name
    return resid_hook_name(layer_or_name, site)


def layer_of(hook_name: str) -> int:
    """The block index in ``blocks.L.…``; ConfigError for hooks outside the blocks."""
    match = _BLOCK_HOOK.match(hook_name)
    if not match:
        raise ConfigError(f"hook {hook_name!r} is not inside a transformer block (expected 'blocks.L.…')")
    return int(match.group(1))


def steering_hook_name(hook_name: str) -> str:
    """Name of the HookPoint that carries the steering delta added at ``hook_name``.

    ``blocks.13.hook_resid_post`` → ``blocks.13.hook_steering``; any other site ``blocks.13.hook_X`` →
    ``blocks.13.hook_steering_X``.
    """
    match = _BLOCK_HOOK.match(hook_name)
    if not match:
        raise ConfigError(f"cannot steer at {hook_name!r}: steering sites must be block hooks 'blocks.L.hook_…'")
    layer, site = match.groups()
    if site == DEFAULT_SITE:
        return f"blocks.{layer}.hook_steering"
    if "." in site or not site.startswith("hook_"):
        raise ConfigError(f"cannot steer at {hook_name!r}: only block-level hooks 'blocks.L.hook_…' are steerable")
    return f"blocks.{layer}.hook_steering_{site[len('hook_'):]}"
