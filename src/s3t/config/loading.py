"""Configs from files: the defaults, then YAML files in order, then `--set section.key=value`
overrides; an unknown key or a value of the wrong type is an error that names the key. The resolved
config is saved with every run and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import fields
from importlib import resources
from pathlib import Path

import yaml

from s3t.config.schema import Config


class ConfigError(ValueError):
    """A config file or override that does not fit the schema; the message names the key."""


def _coerce(key: str, value, kind):
    """Check `value` against the annotated type `kind`; ints are accepted for floats."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(typing.get_args(kind)):
            raise ConfigError(f"{key}: expected a list of {len(typing.get_args(kind))} values, got {value!r}")
        return tuple(_coerce(key, v, t) for v, t in zip(value, typing.get_args(kind)))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (int, float, str, bool) and (type(value) is not kind):
        raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _merge(cfg: Config, data: dict, origin: str) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of sections, got {type(data).__name__}")
    sections = {f.name: f for f in fields(Config)}
    updates = {}
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(f"{origin}: unknown section {name!r}; sections are {sorted(sections)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: section {name!r} must be a mapping, got {values!r}")
        section = getattr(cfg, name)
        types_ = typing.get_type_hints(type(section))
        changed = {}
        for key, value in values.items():
            if key not in types_:
                raise ConfigError(f"{origin}: unknown key {name}.{key}; {name} has {sorted(types_)}")
            changed[key] = _coerce(f"{origin}: {name}.{key}", value, types_[key])
        try:
            updates[name] = dataclasses.replace(section, **changed)
        except ValueError as e:
            raise ConfigError(f"{origin}: {e}") from None
    return dataclasses.replace(cfg, **updates)


def parse_override(text: str) -> dict:
    """'optim.lr=1e-3' -> {'optim': {'lr': 0.001}}; the value is read as YAML (no tags)."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. optim.lr=1e-3")
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str) and raw.strip():
        try:  # YAML 1.1 reads 1e-3 as a string; numbers written that way are meant as numbers
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        except ValueError:
            pass
    return {parts[0]: {parts[1]: value}}


def presets() -> list[str]:
    """Names of the configs shipped in the package (`--config cpu-small` works from anywhere)."""
    return sorted(p.name[:-5] for p in resources.files("s3t").joinpath("configs").iterdir() if p.name.endswith(".yaml"))


def config_path(name: str | Path) -> Path:
    """A YAML file's path, or the packaged preset of that name."""
    path = Path(name)
    if path.is_file() or path.suffix in (".yaml", ".yml"):  # not a folder: `demo/` is the demo's output
        return path
    packaged = resources.files("s3t").joinpath("configs", f"{name}.yaml")
    if not packaged.is_file():
        raise ConfigError(f"{name}: no such config file, nor a preset; presets are {', '.join(presets())}")
    return Path(str(packaged))


def load_config(files: typing.Sequence[str | Path] = (), overrides: typing.Sequence[str] = (),
                base: Config | dict | None = None) -> Config:
    """Defaults (or `base`), then each YAML file in order, then each override."""
    cfg = Config()
    if isinstance(base, dict):
        cfg = _merge(cfg, base, "checkpoint config")
    elif base is not None:
        cfg = base
    for path in map(config_path, files):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: cannot read the config: {e}") from None
        cfg = _merge(cfg, data, str(path))
    for text in overrides:
        cfg = _merge(cfg, parse_override(text), f"--set {text}")
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(_plain(cfg.to_dict()), sort_keys=False))


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
