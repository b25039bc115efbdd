"""Typed configuration: dataclasses are the schema, YAML files are instances.

A YAML file names its schema with a top-level ``kind`` key (``kind: prepare``) and may
inherit from another file with ``base: other.yaml`` (a path relative to the file).
Command-line overrides use dotted ``key=value`` pairs whose values are parsed as YAML
scalars and checked against the dataclass field types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from talkinghead.errors import TalkingHeadError

T = TypeVar("T")

CONFIG_KINDS: dict[str, type] = {}


class ConfigError(TalkingHeadError, ValueError):
    """A configuration file or override that does not fit its schema."""


def register_config(kind: str):
    """Class decorator registering a config dataclass under a ``kind`` name."""

    def wrap(cls):
        CONFIG_KINDS[kind] = cls
        cls.config_kind = kind
        return cls

    return wrap


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type ``tp``, or raise ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} fits none of {[_type_name(a) for a in args]}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_tp, val_tp = args if args else (Any, Any)
        return {_coerce(k, key_tp, where): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(fields)}"
        )
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err
    return obj


def to_dict(obj: Any) -> Any:
    """Plain-Python (YAML/JSON-serialisable) view of a config dataclass."""
    if dataclasses.is_dataclass(obj):
        out = {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        kind = getattr(type(obj), "config_kind", None)
        return {"kind": kind, **out} if kind else out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Turn ``{"a": {"b": 1}}`` into ``{"a.b": 1}`` (the inverse of :func:`nest`)."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def nest(flat: Mapping[str, Any], what: str = "override") -> dict[str, Any]:
    """Turn ``{"a.b": 1}`` into ``{"a": {"b": 1}}``."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{what} {key!r} conflicts with another {what}")
        node[parts[-1]] = value
    return nested


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1, 2]"]`` into a nested mapping with YAML-parsed values."""
    flat: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            flat[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({err})") from err
    return nest(flat)


def _merge_list(base: list, update: Mapping[Any, Any], key: str) -> list:
    """Apply ``{"0": {...}}``-style overrides (``stages.0.steps=4``) to the items of a list."""
    out = list(base)
    for index, value in update.items():
        i = int(index)
        if not 0 <= i < len(out):
            raise ConfigError(f"override {key}.{index}: {key} has {len(out)} item(s) (indices 0..{len(out) - 1})")
        out[i] = deep_merge(out[i], value) if isinstance(value, Mapping) and isinstance(out[i], Mapping) else value
    return out


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base`` (mappings merge, other values replace).

    A mapping with integer keys merged into a list updates the list's items by index, so
    ``stages.1.steps=500`` changes one stage and keeps the others.
    """
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        elif (
            isinstance(value, Mapping)
            and isinstance(out.get(key), list)
            and value
            and all(str(k).isdigit() for k in value)
        ):
            out[key] = _merge_list(out[key], value, key)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a config YAML file, following its ``base:`` chain."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular 'base:' chain {[str(p) for p in _seen]}")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    base = data.pop("base", None)
    if base is not None:
        parent = read_yaml(path.parent / base, _seen + (path,))
        if "kind" in data and "kind" in parent and data["kind"] != parent["kind"]:
            raise ConfigError(f"{path}: kind {data['kind']!r} differs from its base's {parent['kind']!r}")
        data = deep_merge(parent, data)
    return data


def load_config(
    path: str | Path | None,
    overrides: list[str] | None = None,
    *,
    kind: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> Any:
    """Load a config file (or the schema defaults) and apply ``key=value`` overrides.

    Args:
        path: YAML file, or None to start from the schema's defaults (needs ``kind``).
        overrides: dotted ``key=value`` strings applied last.
        kind: the expected schema name; a file of another kind is refused.
        values: dotted keys with already-typed values (e.g. from command-line flags),
            applied after the file and before ``overrides``.
    """
    data = read_yaml(path) if path is not None else {}
    file_kind = data.pop("kind", None)
    if kind is not None and file_kind is not None and file_kind != kind:
        raise ConfigError(f"{path}: is a {file_kind!r} config, but a {kind!r} config is needed here")
    chosen = kind or file_kind
    if chosen is None:
        raise ConfigError(f"{path}: missing top-level 'kind:' (one of {sorted(CONFIG_KINDS)})")
    if chosen not in CONFIG_KINDS:
        raise ConfigError(f"{path}: unknown kind {chosen!r}; known kinds: {sorted(CONFIG_KINDS)}")
    if values:
        data = deep_merge(data, nest(values, "option"))
    if overrides:
        data = deep_merge(data, parse_overrides(overrides))
    return from_dict(CONFIG_KINDS[chosen], data, where=str(path) if path else chosen)


def dump_yaml(obj: Any) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def default_of(owner: Any, name: str) -> Any:
    """The default of ``name``: a field of dataclass ``owner``, or a parameter of function ``owner``.

    Command-line defaults come from here, one way, so each default is written only where the
    library defines it.
    """
    label = getattr(owner, "__name__", repr(owner))
    if not dataclasses.is_dataclass(owner):
        import inspect

        parameter = inspect.signature(owner).parameters.get(name)
        if parameter is None:
            raise AttributeError(f"{label} has no parameter {name!r}")
        if parameter.default is inspect.Parameter.empty:
            raise ValueError(f"{label}({name}) has no default")
        return parameter.default
    for f in dataclasses.fields(owner):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise ValueError(f"{label}.{name} has no default")
    raise AttributeError(f"{label} has no field {name!r}")
