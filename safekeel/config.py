"""Typed configs for every CLI verb: dataclass defaults < YAML file (--config) < `--key value` overrides.

Each verb declares one dataclass. `add_config_args` turns its fields into `--field` options (help text from the
field's `metadata["help"]`), `resolve_config` merges the three layers with type checks, and `save_config` writes the
resolved config into the output directory so every run can be reproduced from its own folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError
from .io import write_text

T = TypeVar("T")


def field(default: Any = dataclasses.MISSING, help: str = "", required: bool = False, **kw) -> Any:  # noqa: A002
    """A dataclass field with CLI help text; `required` fields must be given (default None until then).

    Mutable defaults are copied per instance.
    """
    meta = {"help": help, "required": required}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_args(parser: argparse.ArgumentParser, cls: type, positional: tuple[str, ...] = ()) -> None:
    """Expose every field of `cls` as an option (strings; typed later so YAML and CLI share one coercion)."""
    parser.add_argument("--config", help="YAML file with values for this verb (overridden by --key value)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in positional:
            parser.add_argument(f.name, nargs="?", default=None, help=f.metadata.get("help", "").replace("%", "%%"))
            continue
        flags = [_flag(f.name)]
        if "_" in f.name:
            flags.append("--" + f.name)
        extra = {"nargs": "?", "const": "true"} if hints.get(f.name) is bool else {}  # `--quick` = `--quick true`
        parser.add_argument(*flags, dest=f.name, default=None, metavar="VALUE",
                            help=f.metadata.get("help", "").replace("%", "%%"), **extra)


def resolve_config(cls: type[T], args: argparse.Namespace | None = None, yaml_path: str | None = None,
                   overrides: dict[str, Any] | None = None) -> T:
    """Build `cls` from defaults, then the YAML file, then CLI values; unknown keys and bad types raise ConfigError."""
    values: dict[str, Any] = {}
    yaml_path = yaml_path or (getattr(args, "config", None) if args is not None else None)
    names = {f.name for f in dataclasses.fields(cls)}
    if yaml_path:
        try:
            loaded = yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"{yaml_path}: config file not found") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{yaml_path}: not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{yaml_path}: expected a mapping of keys to values")
        for key, value in loaded.items():
            key = str(key).replace("-", "_")
            if key not in names:
                raise ConfigError(f"{yaml_path}: unknown key '{key}' (known: {', '.join(sorted(names))})")
            values[key] = value
    if args is not None:
        for name in names:
            value = getattr(args, name, None)
            if value is not None:
                values[name] = value
    for key, value in (overrides or {}).items():
        if key not in names:
            raise ConfigError(f"unknown key '{key}'")
        values[key] = value
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], k) for k, v in values.items()}
    try:
        cfg = cls(**kwargs)
    except TypeError as e:
        raise ConfigError(str(e)) from None
    missing = [f.name for f in dataclasses.fields(cls) if getattr(cfg, f.name) is None and _required(f)]
    if missing:
        raise ConfigError(f"missing value for: {', '.join(_flag(m) for m in missing)}")
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def _required(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("required"))


def _coerce(value: Any, tp: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args):
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _coerce(value, a, name)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is list:
        (item,) = args or (str,)
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{name}' expects a list, got {value!r}")
        return [_coerce(v, item, name) for v in value]
    if origin is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"'{name}' expects a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"'{name}' must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"'{name}' expects true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"'{name}' expects a number, got {value!r}")
        try:
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(float(value)) if tp is int and isinstance(value, str) and "e" in value.lower() else tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"'{name}' expects {tp.__name__}, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"'{name}' expects a string, got {value!r}")
        return str(value)
    return value


def config_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, out_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config (every field, defaults included) into the run's output directory."""
    path = Path(out_dir) / name
    write_text(path, yaml.safe_dump(config_dict(cfg), sort_keys=False, allow_unicode=True))
    return path
