"""Steering vectors and how they are applied: hook names, positions, hooks, generation."""

from interp_steer.steering.apply import ensure_steering_hook_points, steer, steering_hooks
from interp_steer.steering.generation import chat_prompt, generate
from interp_steer.steering.hook_names import as_hook_name, layer_of, resid_hook_name, steering_hook_name
from interp_steer.steering.positions import SteeringPositions, resolve_positions
from interp_steer.steering.vector import Provenance, SteeringVector, from_mapping

__all__ = [
    "Provenance", "SteeringPositions", "SteeringVector", "as_hook_name", "chat_prompt", "ensure_steering_hook_points",
    "from_mapping", "generate", "layer_of", "resid_hook_name", "resolve_positions", "steer", "steering_hook_name",
    "steering_hooks",
]
