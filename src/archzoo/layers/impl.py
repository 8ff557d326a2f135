"""The impl switch every layer family shares: run a layer's reference or its fused path.

Each layer owns one parameter set and two compute paths. ``impl`` picks the path per call:

- ``"reference"``: the pure function written from the paper's equations (readable, slow);
- ``"fused"``: PyTorch's kernels (fast);
- ``"auto"``: defer — an instance setting other than auto wins, else the innermost
  ``use_impl`` block's setting if it is not auto, else ``"fused"``.

The context default lives in a ``contextvars.ContextVar``, so it is per thread and per asyncio
task, nests, and is restored on exit even when the block raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from torch import nn

from archzoo.errors import UserError, close_matches

IMPLS = ("auto", "reference", "fused")

Impl = Literal["auto", "reference", "fused"]

_DEFAULT: ContextVar[str] = ContextVar("archzoo_impl", default="auto")


def check_impl(name: object) -> str:
    """Return ``name`` if it is one of ``IMPLS``, else raise a one-line UserError listing them."""
    if not isinstance(name, str) or name not in IMPLS:
        hint = close_matches(name, IMPLS) if isinstance(name, str) else ""
        raise UserError(f"unknown impl {name!r}{hint}; choose one of: {', '.join(IMPLS)}")
    return name


@contextmanager
def use_impl(name: str) -> Iterator[None]:
    """Within the block, layers whose own ``impl`` is ``"auto"`` use ``name``.

    ``use_impl("auto")`` inside another block restores the library default (``"fused"``) for
    its extent; an instance's explicit setting always wins over any block.
    """
    token = _DEFAULT.set(check_impl(name))
    try:
        yield
    finally:
        _DEFAULT.reset(token)


def current_impl() -> str:
    """The innermost ``use_impl`` setting (``"auto"`` outside any block)."""
    return _DEFAULT.get()


def resolve_impl(instance_impl: str = "auto") -> Literal["reference", "fused"]:
    """The path to run now: the instance's setting unless auto, else the context's unless auto, else fused."""
    for choice in (check_impl(instance_impl), _DEFAULT.get()):
        if choice != "auto":
            return choice  # type: ignore[return-value]
    return "fused"


class ImplSwitch:
    """Mixin giving a layer a validated ``impl`` attribute and ``resolved_impl()``.

    Use with ``nn.Module`` (``class LSTM(ImplSwitch, nn.Module)``) and set ``self.impl`` after
    ``super().__init__()``. Assigning an unknown name raises UserError at once.
    """

    _impl: str = "auto"

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, name: str) -> None:
        self._impl = check_impl(name)

    def resolved_impl(self) -> Literal["reference", "fused"]:
        """The path this instance runs for a call made now."""
        return resolve_impl(self._impl)


def set_impl(module: nn.Module, name: str) -> None:
    """Set ``impl`` on every layer inside ``module`` that has the switch (a whole model at once)."""
    check_impl(name)
    for layer in module.modules():
        if isinstance(layer, ImplSwitch):
            layer.impl = name
