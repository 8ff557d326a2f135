"""The strict registry (registry.py, errors.py) and the model registry built on it (models/__init__.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from archzoo.errors import UserError, close_matches, unknown
from archzoo.models import MODELS, check_model_args, create_model, model_arg_types, register_model
from archzoo.registry import Registry
from helpers import REGISTERED_MODELS


def one_line(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def test_register_get_names_and_glob() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register()
    def alpha() -> None: ...

    reg.add("beta_2", 42)
    assert reg.get("alpha") is alpha and reg.get("beta_2") == 42
    assert reg.names() == ["alpha", "beta_2"] and list(reg) == ["alpha", "beta_2"]
    assert reg.names("b*") == ["beta_2"]
    assert "alpha" in reg and "gamma" not in reg


def test_duplicate_name_raises_and_keeps_the_first() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="duplicate widget name 'a'"):
        reg.add("a", 2)
    assert reg.get("a") == 1


def test_duplicate_model_registration_raises() -> None:
    before = MODELS.get("simple_cnn")
    with pytest.raises(ValueError, match="duplicate model name 'simple_cnn'"):
        register_model("simple_cnn")(lambda: None)
    assert MODELS.get("simple_cnn") is before


@pytest.mark.parametrize("lookup", [MODELS.get, create_model, model_arg_types])
def test_unknown_model_names_close_matches(lookup) -> None:  # noqa: ANN001
    with pytest.raises(UserError) as excinfo:
        lookup("simple_cn")
    message = one_line(excinfo)
    assert message.startswith("unknown model 'simple_cn'") and "did you mean: simple_cnn" in message


def test_unknown_name_without_close_match_lists_known_names() -> None:
    with pytest.raises(UserError) as excinfo:
        MODELS.get("qqq_xl_zzz")
    message = one_line(excinfo)
    shown = ", ".join(REGISTERED_MODELS[:12]) + (" ..." if len(REGISTERED_MODELS) > 12 else "")
    assert f"(known: {shown})" in message


def test_unknown_helper_truncates_long_lists() -> None:
    message = str(unknown("thing", "zzzz", [f"name{i:02d}" for i in range(20)]))
    assert "name00" in message and "name11" in message and "name12" not in message and message.endswith("...)")
    assert close_matches("lenet", ["lenet5", "mlp"]) == " (did you mean: lenet5?)"
    assert close_matches("qqqq", ["lenet5", "mlp"]) == ""


def test_unknown_model_argument_is_named_with_close_matches() -> None:
    with pytest.raises(UserError) as excinfo:
        create_model("simple_cnn", hiden=64)
    message = one_line(excinfo)
    assert "'hiden'" in message and "simple_cnn" in message and "did you mean: hidden" in message


@pytest.mark.parametrize(("name", "kwargs", "needle"), [
    ("simple_cnn", {"image_size": "28"}, "model.args.image_size"),
    ("simple_cnn", {"image_size": 28.0}, "expects int"),
    ("simple_cnn", {"dropout": True}, "expects float"),
    ("simple_cnn", {"channels": (32,)}, "expects 2 values"),
    ("simple_cnn", {"channels": 32}, "expects a list"),
    ("mlp", {"hidden_sizes": ["800"]}, "expects int"),
    ("lenet5", {"activation": 1}, "expects str"),
])
def test_wrong_argument_type_refused(name: str, kwargs: dict, needle: str) -> None:
    with pytest.raises(UserError) as excinfo:
        create_model(name, **kwargs)
    assert needle in one_line(excinfo)


def test_argument_types_are_converted() -> None:
    # TOML gives lists and ints; builders get tuples and floats
    assert check_model_args("mlp", {"hidden_sizes": [10, 20], "dropout": 0}) == {"hidden_sizes": (10, 20), "dropout": 0.0}
    model = create_model("mlp", hidden_sizes=[10, 20], dropout=0)
    assert [m.out_features for m in model.modules() if hasattr(m, "out_features")] == [10, 20, 10]
    assert set(model_arg_types("lenet5")) == {"in_channels", "image_size", "num_classes", "activation", "pool"}


@pytest.mark.parametrize(("name", "kwargs", "needle"), [
    ("simple_cnn", {"dropout": 1.5}, "dropout must be in [0, 1)"),
    ("mlp", {"dropout": -0.1}, "dropout must be in [0, 1)"),
    ("mlp", {"hidden_sizes": (800, 0)}, "hidden_sizes must be >= 1"),
    ("simple_cnn", {"channels": (32, 0)}, "must be >= 1"),
    ("simple_cnn", {"image_size": 30}, "divisible by 4"),
    ("simple_cnn", {"num_classes": 1}, "classes >= 2"),
    ("lenet5", {"in_channels": 0}, "channels >= 1"),
    ("lenet5", {"activation": "gelu"}, "activation in ['relu', 'tanh']"),
    ("lenet5", {"pool": "median"}, "pool in ['avg', 'max']"),
])
def test_invalid_model_arguments_are_user_errors(name: str, kwargs: dict, needle: str) -> None:
    with pytest.raises(UserError) as excinfo:
        create_model(name, **kwargs)
    assert needle in one_line(excinfo)


def test_a_model_beyond_the_size_bound_is_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from archzoo.models import MAX_PARAMETERS

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # a crafted config: a 1.25 TB GPT (the embedding alone is 2**38 parameters)
    with pytest.raises(UserError, match=r"would hold [\d,]+ parameters \(\d[\d,]* GiB.*bound of 1,000,000,000") as info:
        create_model("gpt", vocab_size=2**20, d_model=2**18, num_heads=8)
    assert "\n" not in str(info.value) and "ARCHZOO_MAX_PARAMETERS" in str(info.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing was allocated
    assert sum(p.numel() for p in create_model("resnet18").parameters()) < MAX_PARAMETERS
    monkeypatch.setenv("ARCHZOO_MAX_PARAMETERS", "1000")
    with pytest.raises(UserError, match="bound of 1,000;"):
        create_model("lenet5")


def test_a_crafted_checkpoint_config_cannot_allocate_a_huge_model(tmp_path: Path) -> None:
    import json

    from safetensors.torch import save_file

    from archzoo.training.checkpoint import FORMAT, load_model

    config = {"task": "language_model", "model": {"name": "gpt", "args": {"vocab_size": 2**20, "d_model": 2**18, "num_heads": 8}},
              "data": {}, "train": {}}
    save_file({}, tmp_path / "model.safetensors", metadata={"format": FORMAT, "step": "1", "config": json.dumps(config)})
    with pytest.raises(UserError, match="over archzoo's bound"):
        load_model(tmp_path / "model.safetensors")
