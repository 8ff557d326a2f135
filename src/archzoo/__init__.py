"""archzoo: the classic deep-learning architectures, each as a readable reference and a fast path,
trained and evaluated end to end on real data.

The Python API (archzoo.api) loads on first use, so ``import archzoo`` stays instant:
``archzoo.create_model``, ``list_models``, ``list_presets``, ``train``, ``load`` and ``Run``;
``archzoo.errors.UserError`` is the one error a user's mistake raises.
"""

__version__ = "0.1.0"
__all__ = ["Run", "UserError", "create_model", "list_models", "list_presets", "load", "train"]


def __getattr__(name: str) -> object:
    if name == "UserError":
        from archzoo.errors import UserError

        return UserError
    if name in __all__:
        from archzoo import api

        return getattr(api, name)
    raise AttributeError(f"module 'archzoo' has no attribute {name!r}")
