"""Typed settings: dataclasses built from mappings, the one mechanism of run settings, architectures, dataset
cards, suites and gate policies (:func:`build`).

Run settings come from a YAML file plus ``key=value`` overrides; nested dataclasses are addressed with dots
(``optim.lr=3e-4``). Values are parsed as YAML scalars and then checked against the field's type annotation, so
a typo in a key or a wrong type fails with a message naming the key. The resolved settings are written next to
every run (:func:`save_config`) and logged to MLflow.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from medvl.errors import MedvlError

T = TypeVar("T")
Number = int | float
"""A number kept as given (an int stays an int), for schemas whose resolved values are saved verbatim."""


class ConfigError(MedvlError, ValueError):
    """A settings file, override or schema value that does not fit its schema.

    ``key`` is the dotted field concerned ('' when none) and ``reason`` what is wrong with it, so that a module
    can raise the refusal as its own subclass (the ``error`` of :func:`build`).
    """

    def __init__(self, message: str, key: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.reason = reason or message


def field_error(key: str, reason: str) -> ConfigError:
    """The refusal of field ``key``; a schema's ``__post_init__`` raises it with the key relative to itself."""
    return ConfigError(f"{key}: {reason}", key, reason)


def check_range(key: str, value: float, minimum: float | None = None, maximum: float | None = None) -> None:
    """Raise :func:`field_error` naming ``key`` unless ``minimum <= value <= maximum`` (either bound optional)."""
    if minimum is not None and value < minimum:
        raise field_error(key, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise field_error(key, f"must be at most {maximum}, got {value}")


def check_non_empty(key: str, value: str | None) -> None:
    """Raise :func:`field_error` naming ``key`` when the string ``value`` is empty or blank (None passes)."""
    if value is not None and not value.strip():
        raise field_error(key, f"must be a non-empty string, got {value!r}")


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _noun(cls: type) -> str:
    """What a key of ``cls`` is called in messages: its ``config_noun`` class variable, else 'setting'."""
    return getattr(cls, "config_noun", "setting")


def _admits_none(tp: Any) -> bool:
    return tp is Any or (typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp == Number:  # an int stays an int
        return value if isinstance(value, int) and not isinstance(value, bool) else _coerce(value, float, key)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        alternatives = [a for a in args if a is not type(None)]
        if len(alternatives) == 1:
            return _coerce(value, alternatives[0], key)
        for arg in alternatives:
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise field_error(key, f"{value!r} fits none of {tp}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise field_error(key, f"{value!r} is not one of {', '.join(map(str, typing.get_args(tp)))}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [yaml.safe_load(v) for v in value.split(",") if v.strip()]
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            numbers = bool(args) and all(a in (int, float, Number, Ellipsis) for a in args)
            raise field_error(key, f"expected a list{' of numbers' if numbers else ''}, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise field_error(key, f"expected {len(args)} values, got {len(value)}")
            pairs = enumerate(zip(value, args, strict=True), start=1)
            return tuple(_coerce(v, a, f"{key}[{number}]") for number, (v, a) in pairs)
        item = args[0] if args else Any
        seq = [_coerce(v, item, f"{key}[{number}]") for number, v in enumerate(value, start=1)]
        return tuple(seq) if origin is tuple else seq
    if origin is dict:
        if not isinstance(value, Mapping):
            raise field_error(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise field_error(key, f"expected a mapping of {tp.__name__} {_noun(tp)}s, got {value!r}")
        return _build(tp, value, prefix=f"{key}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise field_error(key, f"expected true/false, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise field_error(key, f"expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise field_error(key, f"expected an integer, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise field_error(key, f"expected a string, got {value!r}")
    return value


def _build(cls: type[T], values: Mapping[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    noun = _noun(cls)
    unknown = sorted(str(name) for name in set(values) - set(fields))
    if unknown:
        raise field_error(prefix + unknown[0], f"unknown {noun}(s) {unknown}; known: {', '.join(sorted(fields))}")
    given = {name: value for name, value in values.items() if value is not None or _admits_none(hints[name])}
    for name, spec in fields.items():
        if name not in given and spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix[:-1]}: missing {noun} '{name}'" if prefix else f"missing {noun} '{name}'",
                              prefix + name, "is required")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in given.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a __post_init__ check, keyed relative to cls
        if not prefix:
            raise
        raise field_error(prefix + exc.key if exc.key else prefix[:-1], exc.reason) from None


def build(cls: type[T], values: Any, where: str = "",
          error: Callable[[ConfigError], ConfigError] | None = None) -> T:
    """A ``cls`` dataclass from the mapping ``values``: the one typed mechanism of run settings, architectures,
    dataset cards, suites and gate policies.

    Each value is checked against its field's annotation (and converted: an int to a float, a number to a
    string, a ``"a,b"`` string to a list), nested dataclasses come from nested mappings, a null takes the
    field's default, and ``cls.__post_init__`` does the range and consistency checks (raising
    :func:`field_error`). Every refusal is a :class:`ConfigError` whose ``key`` is the dotted field (list items
    numbered from 1): an unknown key (the known ones listed; a ``config_noun`` class variable names what a key
    is, default 'setting'), a missing required one, a wrong type or value.

    Args:
        where: what ``values`` is (e.g. the file), put before the message.
        error: turns the ConfigError into the caller's own subclass of it (then ``where`` is not used).
    """
    try:
        if not isinstance(values, Mapping):
            raise ConfigError(f"expected a mapping of {cls.__name__} {_noun(cls)}s, got {values!r}")
        return _build(cls, values)
    except ConfigError as exc:
        if error is not None:
            raise error(exc) from None
        if where:
            raise ConfigError(f"{where}: {exc}", exc.key, exc.reason) from None
        raise


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise field_error(dotted, f"'{part}' is not a group of settings")
    node[parts[-1]] = value


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into a nested dict, values parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        _set_dotted(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return tree


def to_dict(config: Any) -> dict[str, Any]:
    """The settings as plain nested dicts/lists (JSON- and YAML-friendly)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a settings YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: settings file not found")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return dict(loaded)


def build_settings(cls: type[T], values: Mapping[str, Any], overrides: Iterable[str] = (), where: str = "") -> T:
    """Settings of type ``cls`` from defaults, then ``values``, then ``key=value`` overrides; errors are
    prefixed with ``where`` (e.g. the file)."""
    return build(cls, merge_settings(values, parse_overrides(overrides)), where)


def merge_settings(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``update`` merged in: mappings merge key by key, other values replace (neither
    input is changed). The one deep merge of settings, run settings and architecture configs alike."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Settings of type ``cls`` from defaults, then the YAML file at ``path``, then ``key=value`` overrides."""
    values = read_settings_file(path) if path is not None else {}
    return build_settings(cls, values, overrides, str(path) if path is not None else "")


def save_config(config: Any, path: str | Path) -> Path:
    """Write the resolved settings as YAML (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    tmp.replace(path)
    return path


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_hash(config: Any) -> str:
    """Short SHA-256 of the resolved settings, for cache keys and lineage."""
    blob = json.dumps(to_dict(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
