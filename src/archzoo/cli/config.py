"""``archzoo config PRESET [--set KEY=VALUE]...``: the resolved run config, every field with its type,
as TOML that ``archzoo train FILE`` reads back."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print a preset's resolved config with every field and its type",
                       description="e.g. `archzoo config mnist-simple_cnn --set train.lr=1e-3 > my.toml`, then "
                       "`archzoo train my.toml`. Model arguments that the data decides (input size, classes, "
                       "vocabulary) are set when a run starts.")
    p.add_argument("preset", nargs="?", help="preset name (see `archzoo list presets`) or a TOML file; default: defaults")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. train.lr=3e-4 (repeatable)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.training.config import load_preset, resolve_config

    cfg = resolve_config(args.preset, args.overrides)
    description = load_preset(args.preset).get("description", "") if args.preset else ""
    print("\n".join(config_toml(cfg, str(description))))
    return 0


def type_name(annotation: object) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace("typing.", "")


def config_toml(cfg: object, description: str = "") -> list[str]:
    """The config as TOML lines, each field followed by a comment with its type; model arguments list
    the builder's every argument (the preset's value, else the builder's default)."""
    import dataclasses
    import inspect

    from archzoo.api import toml_literal as toml_value
    from archzoo.config import field_types, to_dict
    from archzoo.models import MODELS, model_arg_types

    lines = [f"description = {toml_value(description)}"] if description else []
    lines += [f"preset = {toml_value(cfg.preset)}  # str, where the run came from"] if cfg.preset else []
    lines += [f"task = {toml_value(cfg.task)}  # str", "", "[model]", f"name = {toml_value(cfg.model.name)}  # str",
              "", "[model.args]  # the builder's arguments; those the data decides are set when a run starts"]
    defaults = {k: p.default for k, p in inspect.signature(MODELS.get(cfg.model.name)).parameters.items()}
    for key, annotation in model_arg_types(cfg.model.name).items():
        value = cfg.model.args.get(key, defaults.get(key))
        origin = "" if key in cfg.model.args else ", default"
        if value is None or value is inspect.Parameter.empty:
            lines.append(f"# {key}: {type_name(annotation)} (set from the data)")
        else:
            lines.append(f"{key} = {toml_value(to_dict(value))}  # {type_name(annotation)}{origin}")
    for section in ("data", "train"):
        obj = getattr(cfg, section)
        types = field_types(type(obj))
        lines += ["", f"[{section}]"]
        for f in dataclasses.fields(obj):
            value = to_dict(getattr(obj, f.name))
            lines.append(f"{f.name} = {toml_value(value)}  # {type_name(types[f.name])}")
    return lines
