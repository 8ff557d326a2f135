"""Model registry: ``create_model(name, **overrides)`` and ``list_models(pattern)``.

Each family module registers its named variants with ``@register_model``; importing this package
imports every family, so the registry is complete (and nothing is registered anywhere else).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

from archzoo.config import check_type
from archzoo.errors import unknown
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


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword overrides of its builder's defaults."""
    return MODELS.get(name)(**check_model_args(name, overrides))


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


# Families register on import; keep this list explicit (STYLE.md convention 3).
from archzoo.models import (  # noqa: E402,F401
    alexnet,
    bert,
    cnn,
    densenet,
    forecast,
    gan,
    googlenet,
    gpt,
    hopfield,
    mlp,
    resnet,
    rnn_lm,
    sentence,
    seq2seq,
    speech,
    vgg,
)
