"""Run configuration (config.py, training/config.py): presets plus dotted overrides, type-checked,
with one-line errors naming close matches; the resolved config round-trips through config.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from archzoo.config import check_type, parse_override, parse_value, to_dict
from archzoo.errors import UserError
from archzoo.training.config import (
    RunConfig,
    TrainConfig,
    list_presets,
    load_preset,
    load_run_config,
    resolve_config,
    run_config_from_dict,
    save_config,
)


def refused(overrides: list[str], *words: str, preset: str | None = "quickstart") -> str:
    """The one-line message of a refused config, checked to contain ``words``."""
    with pytest.raises(UserError) as info:
        resolve_config(preset, overrides)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message
    return message


# -------------------------------------------------------------------------------- type checks


@pytest.mark.parametrize("override", ["train.lr='abc'", "train.lr=abc", "train.lr=true", "train.lr=[1]"])
def test_a_float_key_refuses_other_types(override: str) -> None:
    refused([override], "train.lr", "float")


@pytest.mark.parametrize("override", ["train.batch_size=1.5", "train.batch_size='64'", "train.batch_size=true"])
def test_an_int_key_refuses_other_types(override: str) -> None:
    refused([override], "train.batch_size", "int")


def test_conversions_that_lose_nothing_are_accepted() -> None:
    cfg = resolve_config("quickstart", ["train.lr=1", "train.betas=[0, 0]",
                                        "train.deterministic=true", "model.args.channels=[8, 16]"])
    assert cfg.train.lr == 1.0 and type(cfg.train.lr) is float
    assert cfg.train.betas == (0.0, 0.0) and all(type(b) is float for b in cfg.train.betas)
    assert cfg.train.deterministic is True
    assert cfg.model.args["channels"] == (8, 16)  # a model argument typed tuple[int, int]


@pytest.mark.parametrize(("override", "words"), [
    ("train.betas=0.9", ["train.betas", "list"]),
    ("train.betas=[0.9]", ["train.betas", "2 values"]),
    ("train.betas=[0.9, 'x']", ["train.betas"]),
    ("train.betas=[0.9, 1.5]", ["train.betas", "[0, 1)"]),
    ("train.deterministic=1", ["train.deterministic", "bool"]),
    ("model.args.hidden=1.5", ["model.args.hidden", "int"]),
    ("model.args.channels=[8, 16, 32]", ["model.args.channels", "2 values"]),
    ("train=3", ["train", "table"]),
    ("train.lr.x=3", ["train.lr", "not a table"]),
])
def test_malformed_values_are_refused(override: str, words: list[str]) -> None:
    refused([override], *words)


# ------------------------------------------------------------------------- unknown names


@pytest.mark.parametrize(("override", "suggestion"), [
    ("train.lrr=1", "train.lr"),
    ("train.batchsize=1", "train.batch_size"),
    ("trian.lr=1", "train.lr"),
    ("lr=1", "train.lr"),  # a bare key: the section that has it
    ("augment='none'", "data.augment"),
    ("data.augmnt='none'", "data.augment"),
    ("model.nam='mlp'", "hidden"),  # model.X is a model argument: the builder's arguments are listed
])
def test_unknown_keys_name_close_matches(override: str, suggestion: str) -> None:
    refused([override], "unknown", suggestion)


def test_unknown_model_argument_is_named() -> None:
    message = refused(["model.name='mlp'", "model.args.hiden_sizes=[3]"], "'mlp'", "hiden_sizes", "hidden_sizes")
    assert message.startswith("unknown argument for model")
    # the model.X shortcut is a model argument too
    assert resolve_config("quickstart", ["model.name='mlp'", "model.dropout=0.1"]).model.args["dropout"] == 0.1
    refused(["model.name='mlp'", "model.dropot=0.1"], "dropot", "dropout")


def test_unknown_model_task_and_preset() -> None:
    refused(["model.name='mpl'"], "mpl", "mlp")
    refused(["task='clasification'"], "clasification", "classification")
    refused([], "quikstart", "quickstart", preset="quikstart")
    refused([], "does not exist", preset="nowhere/run.toml")


@pytest.mark.parametrize("text", ["train.lr", "=3", "train.lr 3"])
def test_malformed_override_syntax(text: str) -> None:
    with pytest.raises(UserError, match="section.key=value"):
        parse_override(text)


def test_override_values_are_toml_literals() -> None:
    assert parse_value("3e-4") == 3e-4 and parse_value("true") is True and parse_value("[1, 2]") == [1, 2]
    assert parse_value("'mlp'") == "mlp" and parse_value("mlp") == "mlp"  # a bare word is a string
    assert check_type("k", 3, float | None) == 3.0 and check_type("k", None, int | None) is None
    with pytest.raises(UserError):
        check_type("k", "x", int | None)


# ------------------------------------------------------------------------ invalid values


@pytest.mark.parametrize(("override", "key"), [
    ("train.lr=0", "train.lr"),
    ("train.lr=-1e-3", "train.lr"),
    ("train.lr=nan", "train.lr"),
    ("train.lr=inf", "train.lr"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.batch_size=-8", "train.batch_size"),
    ("train.eval_batch_size=0", "train.eval_batch_size"),
    ("train.epochs=0", "train.epochs"),
    ("train.max_steps=-1", "train.max_steps"),
    ("train.accum_steps=3", "train.accum_steps"),  # 128 is not divisible by 3
    ("train.accum_steps=0", "train.accum_steps"),
    ("train.optimizer='lion'", "train.optimizer"),
    ("train.schedule='linear'", "train.schedule"),
    ("train.precision='fp16'", "train.precision"),
    ("train.pct_start=1.0", "train.pct_start"),
    ("train.weight_decay=-0.1", "train.weight_decay"),
    ("train.log_every_steps=0", "train.log_every_steps"),
    ("train.eval_every_epochs=0", "train.eval_every_epochs"),
    ("data.val_size=-1", "data.val_size"),
    ("data.augment='rotate'", "data.augment"),
])
def test_invalid_hyperparameters_are_user_errors(override: str, key: str) -> None:
    refused([override], key)


def test_train_config_checks_apply_to_direct_construction() -> None:
    with pytest.raises(UserError, match="train.lr"):
        TrainConfig(lr=0.0)
    with pytest.raises(UserError, match="train.batch_size"):
        TrainConfig(batch_size=0)


# --------------------------------------------------------------------- presets and round trip


def test_every_preset_resolves() -> None:
    assert "quickstart" in list_presets()
    for name in list_presets():
        cfg = resolve_config(name, [])
        assert isinstance(cfg, RunConfig) and cfg.train.lr > 0
        assert "description" in load_preset(name)


def test_preset_file_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[model]\nname = "mlp"\n[train]\nlr = 0.5\n')
    cfg = resolve_config(str(path), ["train.epochs=2"])
    assert (cfg.model.name, cfg.train.lr, cfg.train.epochs) == ("mlp", 0.5, 2)
    assert resolve_config(None, []).train == TrainConfig()
    path.write_text("[train\n")
    refused([], "not valid TOML", preset=str(path))


def test_resolved_config_round_trips_through_json(tmp_path: Path) -> None:
    cfg = resolve_config("quickstart", ["model.name='mlp'", "model.args.hidden_sizes=[32, 16]", "train.betas=[0.8, 0.9]",
                                        "data.augment='none'", "train.max_steps=7"])
    cfg = cfg.with_model_args({"in_channels": 1, "image_size": 28, "num_classes": 10})
    save_config(cfg, tmp_path / "config.json")
    assert load_run_config(tmp_path) == cfg
    assert run_config_from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg
    assert json.loads((tmp_path / "config.json").read_text())["train"]["betas"] == [0.8, 0.9]


def test_broken_run_folders(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not an archzoo run folder"):
        load_run_config(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(UserError, match="corrupt"):
        load_run_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"task": "classification", "optimiser": {}}))
    with pytest.raises(UserError, match="optimiser"):
        load_run_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="table"):
        load_run_config(tmp_path)


def test_to_dict_is_plain_data() -> None:
    cfg = resolve_config("quickstart", [])
    data = to_dict(cfg)
    assert json.loads(json.dumps(data)) == data
    assert not math.isnan(data["train"]["lr"])


def test_hostile_values_are_user_errors(tmp_path: Path) -> None:
    """Found by tests/test_fuzz_parsers.py: each used to escape as OverflowError or RecursionError."""
    message = refused(["train.lr=1" + "0" * 400], "train.lr", "too large")
    assert len(message) < 200
    with pytest.raises(UserError, match="too large"):
        run_config_from_dict({"train": {"time_budget": 10**400}})
    refused(["train.lr=" + "[" * 5000], "nested too deeply")
    (tmp_path / "deep.toml").write_text("v = " + "[" * 5000)
    refused([], "nested too deeply", preset=str(tmp_path / "deep.toml"))
    (tmp_path / "config.json").write_text("[" * 100_000)
    with pytest.raises(UserError, match="corrupt"):
        load_run_config(tmp_path)
    assert len(refused(["train.batch_size='" + "x" * 1000 + "'"], "train.batch_size")) < 200


def test_impl_is_a_model_setting_from_presets_and_overrides(tmp_path: Path) -> None:
    """`--set model.impl="reference"` trains on the reference layers; the run saves it and reloads with it,
    and it computes what the fused layers compute."""
    from archzoo.layers import ImplSwitch
    from archzoo.training.checkpoint import load_model
    from archzoo.training.trainer import Trainer
    from helpers import small_run_overrides

    sets = small_run_overrides(**{"model.name": "lenet5", "train.max_steps": 4, "data.val_size": 9800,
                                  "train.eval_every_steps": 100})

    def stop_before_the_test_report(trainer: Trainer) -> None:  # the reference im2col on 10,000 images is slow
        if trainer.step == 3:
            trainer.stop_reason = "interrupted"

    results = {}
    for impl in ("reference", "fused"):
        cfg = resolve_config("quickstart", [*sets, f"model.impl={impl!r}"])
        assert cfg.model.impl == impl and "impl" not in cfg.model.args
        trainer = Trainer(cfg, tmp_path / impl, progress=False, verbose=False, on_step=stop_before_the_test_report)
        layers = [m for m in trainer.model.modules() if isinstance(m, ImplSwitch)]
        assert layers and all(m.resolved_impl() == impl for m in layers)
        trainer.fit()
        model, saved = load_model(tmp_path / impl, "last")
        assert saved.model.impl == impl and all(m.impl == impl for m in model.modules() if isinstance(m, ImplSwitch))
        results[impl] = model.state_dict()
    for key, value in results["fused"].items():
        torch.testing.assert_close(results["reference"][key], value, atol=1e-4, rtol=1e-4, msg=key)
    with pytest.raises(UserError, match="unknown impl 'refrence'.*did you mean: reference"):
        resolve_config("quickstart", ["model.impl='refrence'"])
