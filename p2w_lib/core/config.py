"""Typed configuration: every knob lives in a frozen dataclass, never in a global or an args bag.

`from_dict` turns a plain mapping (a section of params.yaml, a checkpoint's saved config) into
one of these, refusing unknown keys and wrong types with a message that names where they came from.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class ClipConfig:
    """Which frozen CLIP to use.

    model: an open_clip model name (`ViT-L-14`), or `local-dir:PATH` for a folder holding
        `open_clip_config.json` (+ optional weights), or the name of a config shipped in
        `p2w_lib/clip/model_configs/` (e.g. `p2w-tiny`), which resolves to that folder.
    pretrained: an open_clip pretrained tag (`openai`) or a path to a weights file; None = random.
    init_seed: seeds the random initialisation when no weights are loaded (tests, demo).
    """

    model: str = "ViT-L-14"
    pretrained: str | None = "openai"
    init_seed: int = 0
    precision: str = "fp32"
    device: str = "cpu"
    cache_dir: str | None = None


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Validate `value` against a (simple) type hint; tuples/lists become tuples."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any length
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}: expected a list, got {value!r}")
            return tuple(_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "config") -> T:
    """Build dataclass `cls` from `data`, naming `where` in every error."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {unknown}; known settings of {cls.__name__}: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return validate(cls(**kwargs), where)


def positive(v) -> bool:
    return v > 0


def non_negative(v) -> bool:
    return v >= 0


def fraction(v) -> bool:
    return 0 <= v <= 1


def validate(cfg: T, where: str | None = None) -> T:
    """`cfg` itself, or ConfigError naming `where`.key and the allowed range of every bad value."""
    where = where or type(cfg).__name__
    problems = [
        f"{where}.{key}: must be {need}, got {getattr(cfg, key)!r}"
        for key, (ok, need) in getattr(type(cfg), "RANGES", {}).items()
        if not ok(getattr(cfg, key))
    ]
    if problems:
        raise ConfigError("; ".join(problems))
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, JSON-friendly dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


@dataclass(frozen=True)
class LaunchConfig:
    """How the pipeline runs mapper training: in the notebook's own process (1), or under torchrun
    with this many processes, one per GPU, and an all-gathered loss (see train.py)."""

    # Checked by core.config.validate when read from params.yaml or called directly: key -> (test, what it must be).
    RANGES: ClassVar[dict] = {"nproc_per_node": (positive, "at least 1")}

    nproc_per_node: int = 1
