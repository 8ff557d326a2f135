"""The model registry: ``register_model`` for family modules, ``create_model(name, **overrides)`` and
``list_models(pattern)`` for everyone else (STYLE.md convention 3), and ``ModelConfig``, the model
section of a run config.

Family modules import ``register_model`` from here, a module that imports no family, and
``archzoo.models`` imports every family explicitly: registration has one direction and no cycle.
A model's arguments are type-checked in one place, when its ``ModelConfig`` is made; ``build_model``
builds from a checked config, and ``create_model`` is the two in one.
"""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from archzoo.config import check_type
from archzoo.errors import UserError, unknown
from archzoo.layers.impl import check_impl, set_impl
from archzoo.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
register_model = MODELS.register


def model_arg_types(name: str) -> dict[str, Any]:
    """Keyword arguments a model builder accepts, with their annotated types."""
    builder = MODELS.get(name)
    hints = typing.get_type_hints(builder)
    return {p: hints.get(p, Any) for p in inspect.signature(builder).parameters}


def check_model_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Type-check ``args`` against the builder's signature; unknown keys raise with close matches."""
    types_ = model_arg_types(name)
    checked = {}
    for key, value in args.items():
        if key not in types_:
            raise unknown(f"argument for model {name!r}:", key, types_)
        checked[key] = check_type(f"model.args.{key}", value, types_[key])
    return checked


# 4 GB of float32 weights (16 GB to train with Adam), 60x the largest preset: a config asking for more
# is a typo or a crafted checkpoint, refused before any memory is taken. ARCHZOO_MAX_PARAMETERS raises it.
MAX_PARAMETERS = 1_000_000_000


def max_parameters() -> int:
    value = os.environ.get("ARCHZOO_MAX_PARAMETERS", "")
    return int(value) if value.isdigit() else MAX_PARAMETERS


@dataclass(frozen=True)
class ModelConfig:
    """Which registered model, its builder's arguments (type-checked here, once) and the compute path of
    its layers: ``impl`` = auto | reference | fused, so a run can train on the readable reference layers."""

    name: str = "simple_cnn"
    args: dict = field(default_factory=dict)
    impl: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", check_model_args(self.name, self.args))
        check_impl(self.impl)


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build a model from its (checked) config.

    The model is first built on the meta device (shapes, no memory) and refused in one line if it
    holds more than ``max_parameters()`` parameters and buffers.
    """
    builder = MODELS.get(cfg.name)
    with torch.device("meta"):
        shapes = builder(**cfg.args)
    size = sum(t.numel() for t in (*shapes.parameters(), *shapes.buffers()))
    if size > max_parameters():
        raise UserError(f"model {cfg.name!r} with these arguments would hold {size:,} parameters "
                        f"({size * 4 / 2**30:,.0f} GiB in float32), over archzoo's bound of {max_parameters():,}; check "
                        "model.args in the config (or the checkpoint's metadata), or raise the bound with "
                        "ARCHZOO_MAX_PARAMETERS")
    model = builder(**cfg.args)
    if cfg.impl != "auto":
        set_impl(model, cfg.impl)
    return model


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword overrides of its builder's defaults."""
    return build_model(ModelConfig(name, overrides))


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


