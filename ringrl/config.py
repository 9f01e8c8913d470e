"""Typed configs: dataclasses read from YAML plus dotted ``key=value`` overrides.

Each stage defines its config as a (frozen) dataclass next to the code it configures,
with a one-line doc per field (:func:`doc`), bounds declared on the field where a number
has a range (``doc(..., gt=0)``), and, for rules that span fields, a ``validate()`` method
that raises :class:`ConfigError` naming the key relative to its section. This module
builds such dataclasses from plain data, checks keys, types and bounds, and writes them
back; every error names the full dotted key (:func:`validate_all` adds the section
prefix), and no number is NaN or infinite.

    cfg = load_config(SFTConfig, path="sft.yaml", overrides=["optim.lr=1e-4"])
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from ringrl.errors import ConfigError, UserError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def doc(
    text: str,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with a one-line description (shown by ``--help`` listings) and optional
    bounds on its value (each element of a tuple or list of numbers), checked by :func:`validate_all`."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    kwargs: dict[str, Any] = {"metadata": {"doc": text, **({"bounds": bounds} if bounds else {})}}
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    if default_factory is not dataclasses.MISSING:
        kwargs["default_factory"] = default_factory
    return dataclasses.field(**kwargs)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> nested dict ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"override '{item}': expected key=value (e.g. rl.budget_tokens=4096)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise UserError(f"override '{item}': empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override '{item}': '{part}' is both a value and a section")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of ``extra`` into a copy of ``base``."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {e.start + 1}); convert the file to UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise UserError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: a config file must be a mapping of keys to values")
    return data


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(key, f"must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a section (mapping), got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(key, f"expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        seq = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if origin is tuple else seq
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        vt = args[1] if args else Any
        return {k: _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(key, f"expected a number, got {value!r}")
        number: float | None = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None:
            raise ConfigError(key, f"expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(key, f"must be a finite number, got {number}")
        return number
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return str(value)
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for k in data:
        if k not in names:
            close = [n for n in names if n.startswith(str(k)[:3])]
            hint = f" (did you mean {', '.join(sorted(close))}?)" if close else ""
            raise ConfigError(prefix + str(k), f"unknown key{hint}")
    data = dict(data)
    for f in dataclasses.fields(cls):
        # a partial section merges into that field's own default (e.g. RL's optimizer defaults)
        if (
            f.name in data
            and isinstance(data[f.name], dict)
            and dataclasses.is_dataclass(hints[f.name])
            and f.default_factory is not dataclasses.MISSING
        ):
            data[f.name] = merge(to_dict(f.default_factory()), data[f.name])
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(prefix.rstrip(".") or cls.__name__, str(e)) from None


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict (tuples as lists), suitable for YAML."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def validate_all(obj: Any, prefix: str = "") -> None:
    """Check the declared bounds of every field, then call ``validate()`` on a config and every
    nested section; a key a section names is completed with the section's dotted prefix."""
    if not dataclasses.is_dataclass(obj):
        return
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("bounds"):
            check_bounds(prefix + f.name, value, f.metadata["bounds"])
        validate_all(value, prefix + f.name + ".")
    check = getattr(obj, "validate", None)
    if callable(check):
        try:
            check()
        except ConfigError as e:
            raise ConfigError(qualify(prefix, e.key), e.message) from None


def qualify(prefix: str, key: str) -> str:
    """The full dotted key of ``key`` raised in the section at ``prefix``: ``("former.", "budget_tokens")``
    -> ``former.budget_tokens``; a key that already starts with the section's name is left as it is
    (``("data.", "data.train_size")``, ``("model.tiny.", "tiny.layers")`` -> ``model.tiny.layers``)."""
    outer = [p for p in prefix.split(".") if p]
    inner = key.split(".")
    for n in range(min(len(outer), len(inner)), 0, -1):
        if outer[-n:] == inner[:n]:
            return ".".join(outer[:-n] + inner)
    return ".".join(outer + inner)


_BOUND_TEXT = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def check_bounds(key: str, value: Any, bounds: dict[str, float]) -> None:
    """``value`` (or each number of a tuple/list) finite and within ``bounds`` (ge/gt/le/lt), else ConfigError."""
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_bounds(f"{key}[{i}]", v, bounds)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    ok = math.isfinite(value) and all(
        {"ge": value >= b, "gt": value > b, "le": value <= b, "lt": value < b}[k] for k, b in bounds.items()
    )
    if not ok:
        lo = next(((k, b) for k, b in bounds.items() if k in ("ge", "gt")), None)
        hi = next(((k, b) for k, b in bounds.items() if k in ("le", "lt")), None)
        if lo and hi:
            rng = f"in {'[' if lo[0] == 'ge' else '('}{lo[1]:g}, {hi[1]:g}{']' if hi[0] == 'le' else ')'}"
        else:
            bound = lo or hi
            assert bound is not None  # not ok, so some bound failed
            k, b = bound
            rng = f"{_BOUND_TEXT[k]} {b:g}"
        raise ConfigError(key, f"must be {rng}, got {value!r}")


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> T:
    """Defaults <- ``base`` <- YAML file <- dotted overrides, then validated."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data = merge(data, read_yaml(path))
    if overrides:
        data = merge(data, parse_overrides(overrides))
    cfg = from_dict(cls, data)
    validate_all(cfg)
    return cfg


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config, every field, as YAML."""
    from ringrl.utils.io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))


def describe(cls: type[DataclassInstance], prefix: str = "", defaults: Any = None) -> list[tuple[str, str, str]]:
    """(dotted key, default, doc) for every field, for ``--help`` listings. A section's defaults are
    those of the instance its field's factory builds (e.g. RL's own optimizer defaults)."""
    rows: list[tuple[str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if defaults is not None:
            value = getattr(defaults, f.name)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = dataclasses.MISSING
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, prefix + f.name + ".", None if value is dataclasses.MISSING else value))
            continue
        default = "(required)" if value is dataclasses.MISSING else repr(value)
        rows.append((prefix + f.name, default, f.metadata.get("doc", "")))
    return rows
