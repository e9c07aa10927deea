"""Steering vectors and how they are applied: hook names, positions, operators, hooks, generation."""

from interp_steer.steering.apply import ForwardOffset, steer, steering_hook, steering_points
from interp_steer.steering.generation import chat_prompt, generate, generate_batch
from interp_steer.steering.hook_names import as_hook_name, layer_of, resid_hook_name, steering_hook_name
from interp_steer.steering.operators import OPERATORS, Operator, check_multiplier, check_operator, steering_delta
from interp_steer.steering.positions import SteeringPositions, resolve_positions
from interp_steer.steering.reference import reference_point, with_reference_points
from interp_steer.steering.vector import Provenance, SteeringVector, from_mapping

__all__ = [
    "OPERATORS", "ForwardOffset", "Operator", "Provenance", "SteeringPositions", "SteeringVector", "as_hook_name",
    "chat_prompt", "check_multiplier", "check_operator", "from_mapping", "generate", "generate_batch", "layer_of",
    "reference_point", "resid_hook_name", "resolve_positions", "steer", "steering_delta", "steering_hook", "steering_hook_name",
    "steering_points", "with_reference_points",
]
