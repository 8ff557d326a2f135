"""The impl switch: defaults, nesting, precedence, validation, isolation."""

from __future__ import annotations

import threading

import pytest
from torch import nn

from archzoo.errors import UserError
from archzoo.layers.impl import IMPLS, ImplSwitch, check_impl, current_impl, resolve_impl, use_impl


class Layer(ImplSwitch, nn.Module):
    def __init__(self, impl: str = "auto"):
        super().__init__()
        self.impl = impl


def test_names():
    assert IMPLS == ("auto", "reference", "fused")
    assert all(check_impl(name) == name for name in IMPLS)


def test_auto_everywhere_means_fused():
    assert current_impl() == "auto"
    assert resolve_impl("auto") == "fused"
    assert resolve_impl() == "fused"


def test_instance_setting_wins_outside_any_block():
    assert resolve_impl("reference") == "reference"
    assert resolve_impl("fused") == "fused"


def test_context_manager_nests_and_restores():
    with use_impl("reference"):
        assert current_impl() == "reference"
        assert resolve_impl("auto") == "reference"
        with use_impl("fused"):
            assert resolve_impl("auto") == "fused"
            with use_impl("auto"):  # back to the library default for its extent
                assert resolve_impl("auto") == "fused"
            assert resolve_impl("auto") == "fused"
        assert resolve_impl("auto") == "reference"
    assert current_impl() == "auto"
    assert resolve_impl("auto") == "fused"


def test_context_restored_when_block_raises():
    with pytest.raises(RuntimeError), use_impl("reference"):
        raise RuntimeError("boom")
    assert current_impl() == "auto"


def test_instance_overrides_context():
    with use_impl("reference"):
        assert resolve_impl("fused") == "fused"
    with use_impl("fused"):
        assert resolve_impl("reference") == "reference"


@pytest.mark.parametrize("bad", ["fast", "Fused", "", None, 1])
def test_invalid_names_raise_user_error_listing_choices(bad):
    for call in (lambda: check_impl(bad), lambda: resolve_impl(bad), lambda: use_impl(bad).__enter__()):
        with pytest.raises(UserError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and all(name in message for name in IMPLS)
    assert current_impl() == "auto"


def test_close_match_suggested():
    with pytest.raises(UserError, match="did you mean: fused"):
        check_impl("fusd")


def test_mixin_attribute_validates_and_resolves():
    layer = Layer()
    assert layer.impl == "auto" and layer.resolved_impl() == "fused"
    layer.impl = "reference"
    assert layer.resolved_impl() == "reference"
    with use_impl("fused"):
        assert layer.resolved_impl() == "reference"
        layer.impl = "auto"
        assert layer.resolved_impl() == "fused"
    with pytest.raises(UserError):
        layer.impl = "cuda"
    assert layer.impl == "auto"
    with pytest.raises(UserError):
        Layer("nope")
    assert "impl" not in Layer().state_dict()


def test_context_is_per_thread():
    seen = []
    with use_impl("reference"):
        thread = threading.Thread(target=lambda: seen.append(resolve_impl("auto")))
        thread.start()
        thread.join()
        assert resolve_impl("auto") == "reference"
    assert seen == ["fused"]
