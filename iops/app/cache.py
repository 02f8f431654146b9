"""The cache beside each config (``<config>.state.json``): token and answer caches, the call policy's
memory, failure streaks. Everything here can be rebuilt; what cannot lives in the durable store
(iops.app.store).

Each section is a frozen dataclass owned by the module that uses it. This module alone reads,
checks and writes them:
- a section is decoded on first use, so a quiet minute decodes (and imports) only what it needs;
- a field of the wrong type falls back to its default, a section of the wrong type is dropped,
  each with one warning; a damaged file is dropped with a warning;
- times are bounded by the clock (iops.core.memory): one in the future is treated as now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import math
import os
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, Union

log = logging.getLogger(__name__)

# JSON key -> the section's type, "module:Class": imported only when the section is used.
SECTIONS: Mapping[str, str] = {
    "octopus": "iops.services.kraken_cache:KrakenCache",
    "octopus_calls": "iops.core.call_policy:OctopusCalls",
    "tesla": "iops.core.call_policy:TeslaCalls",
    "failing": "iops.app.failures:Failure",
    "dispatch": "iops.app.gather:DispatchMemory",
    "mqtt": "iops.app.publish:MqttMemory",
    "notes": "iops.app.notes:Notes",
    "settle": "iops.app.settle:SettleMemory",
    "battery": "iops.app.battery:BatteryMemory",
}
# Before 1.2 the durable records lived here too; the store takes them over (iops.app.store.migrate).
LEGACY_DURABLE = ("tesla_auth", "originals", "paused")
# Before 1.2 two MQTT memories sat at the top level; they now belong to the "mqtt" section.
LEGACY_MQTT = {"restored_when_off": "restored_when_off", "mqtt_discovery": "legacy_discovery"}
MAX_BYTES = 4 * 1024 * 1024  # far above any cache this program writes
MAX_TIME = 4e9  # 2096: later timestamps are not ours

S = TypeVar("S")


@dataclasses.dataclass(frozen=True)
class State:
    """The cache as loaded: each section's JSON until it is first used, then its typed value."""

    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    now: float = 0.0  # the run's clock: times beyond it are bounded on decoding
    where: str = ""  # the file, for warnings
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # sections set by this run
    # Sections decoded from ``raw`` so far (a memo: decoding twice would warn twice).
    memo: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    corrected: set[str] = dataclasses.field(default_factory=set, compare=False, repr=False)

    def get(self, kind: type[S]) -> S:
        """This section, decoded on first use; its defaults when absent or unusable. A section that
        decoding had to correct (a time bounded by the clock, a field dropped) is written back
        corrected: otherwise every later run would correct it again (and warn again)."""
        key = _key_of(kind)
        if key in self.values:
            return typing.cast("S", self.values[key])
        if key not in self.memo:
            value, corrected = decode_section(kind, key, self.raw.get(key), self.now, self.where)
            self.memo[key] = value
            if corrected:
                self.corrected.add(key)
        return typing.cast("S", self.memo[key])

    def put(self, value: object) -> State:
        """A new state with this section replaced (the same state when nothing changed)."""
        key = _key_of(type(value))
        if self.get(type(value)) == value:
            return self
        return dataclasses.replace(
            self, values={**self.values, key: value}, memo=dict(self.memo), corrected=set(self.corrected)
        )

    def legacy(self, key: str) -> Any:
        """A section of an older version's making, as JSON (None when absent)."""
        return self.raw.get(key)

    def without_legacy(self) -> State:
        raw = {k: v for k, v in self.raw.items() if k not in LEGACY_DURABLE}
        return dataclasses.replace(self, raw=raw, memo=dict(self.memo), corrected=set(self.corrected))


def _key_of(kind: type[Any]) -> str:
    name = f"{kind.__module__}:{kind.__qualname__}"
    for key, owner in SECTIONS.items():
        if owner == name:
            return key
    raise KeyError(f"{name} is not a section of the state")


# ---- the file ----------------------------------------------------------------------------------


def load(path: Path, now: float) -> State:
    """The cache, or an empty one when missing; a damaged file or section is dropped with a warning."""
    try:
        with path.open("rb") as handle:
            text = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return State(now=now, where=str(path))
    except OSError as err:
        log.warning("State file %s cannot be read (%s); starting afresh", path, err.strerror or err)
        return State(now=now, where=str(path))
    try:
        if len(text) > MAX_BYTES:
            raise ValueError("it is implausibly large")
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        log.warning("State file %s is damaged (%s); starting afresh (it holds only caches)", path, err)
        return State(now=now, where=str(path))
    if not isinstance(data, dict):
        log.warning("State file %s is not a JSON object; starting afresh", path)
        return State(now=now, where=str(path))
    mqtt: dict[str, Any] = data["mqtt"] if isinstance(data.get("mqtt"), dict) else {}
    for old, new in LEGACY_MQTT.items():
        if old in data:
            mqtt = {new: data.pop(old), **mqtt}
            data["mqtt"] = mqtt
    for key in list(data):
        if key not in SECTIONS and key not in LEGACY_DURABLE:
            log.warning("State file %s: dropped section %r (unknown)", path, key)
            del data[key]
    return State(raw=data, now=now, where=str(path))


def dumps(state: State, *, pretty: bool = False) -> str:
    """The state as canonical JSON: sections in a fixed order, defaults left out, so a quiet state
    stays small. Compact for the run's comparisons (json's C encoder: 10x faster than an indented
    dump, which is pure Python); ``pretty`` for the file a user may open."""
    out: dict[str, Any] = {}
    for key in (*SECTIONS, *LEGACY_DURABLE):
        if key in state.values or key in state.corrected:
            encoded = encode(state.values[key] if key in state.values else state.memo[key])
            if encoded not in ({}, None):
                out[key] = encoded
        elif key in state.raw:
            out[key] = state.raw[key]
    if pretty:
        return json.dumps(out, sort_keys=True, indent=1)
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def save(path: Path, state: State) -> None:
    """Replace the file atomically: a crash leaves the old file or the new one, never half."""
    write_atomically(path, dumps(state, pretty=True))


def write_atomically(path: Path, text: str) -> None:
    import tempfile  # only when something changed: a quiet minute does not load it

    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(0o600)  # holds the Kraken token
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


# ---- decoding and encoding ----------------------------------------------------------------------


class _Unusable(Exception):
    pass


def decode_section(kind: type[S], key: str, raw: Any, now: float, where: str) -> tuple[S, bool]:
    """A section's typed value from its JSON, and whether anything had to be corrected: unusable
    fields take their defaults (with a warning), times beyond their bounds become now."""
    if raw is None:
        return kind(), False
    if not isinstance(raw, dict) or not _plain(raw):
        log.warning("State file %s: dropped section %r (of an unexpected type)", where, key)
        return kind(), True
    problems: list[str] = []
    bounded: list[str] = []
    value = _dataclass(kind, raw, key, problems, now, bounded)
    for problem in problems:
        log.warning("State file %s: dropped %s: unusable value", where, problem)
    if bounded:
        log.info("State file %s: %s lay in the future; taken as now", where, ", ".join(bounded))
    return typing.cast("S", value), bool(problems or bounded)


def _plain(section: dict[str, Any]) -> bool:
    """Keys are text, as JSON objects always are; a section nested absurdly deep is not ours."""
    try:
        return all(isinstance(k, str) for k in section) and len(json.dumps(section)) < MAX_BYTES
    except (ValueError, RecursionError):
        return False


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(kind: type[Any]) -> dict[str, Any]:
    if kind not in _HINTS:
        module = importlib.import_module(kind.__module__)
        _HINTS[kind] = typing.get_type_hints(kind, vars(module))
    return _HINTS[kind]


def _dataclass(
    kind: type[Any], raw: Mapping[str, Any], where: str, problems: list[str], now: float, bounded: list[str]
) -> Any:
    """A dataclass from a JSON object, field by field; a field's own problems do not sink the others."""
    values: dict[str, Any] = {}
    hints = _hints(kind)
    for f in dataclasses.fields(kind):
        if f.name not in raw or (raw[f.name] is None and _optional(hints[f.name])):
            continue
        seen = len(bounded)
        try:
            values[f.name] = _decode(hints[f.name], raw[f.name], now, f.metadata.get("bound"), bounded)
        except _Unusable:
            problems.append(f"{where}.{f.name}")
        if len(bounded) > seen:  # name the field, once, whatever inside it was bounded
            del bounded[seen:]
            bounded.append(f"{where}.{f.name}")
    return kind(**values)


def _optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _decode(tp: Any, value: Any, now: float, bound: float | None, bounded: list[str]) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            with contextlib.suppress(_Unusable):
                return _decode(option, value, now, bound, bounded)
        raise _Unusable
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise _Unusable
        problems: list[str] = []
        decoded = _dataclass(tp, value, "", problems, now, bounded)
        if problems:
            raise _Unusable
        return decoded
    if tp is bool:
        if not isinstance(value, bool):
            raise _Unusable
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool) or not -1 <= value < 10**9:
            raise _Unusable
        return value
    if tp is float:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise _Unusable
        if not 0 <= value < MAX_TIME:
            raise _Unusable
        if bound is not None and now and value > now + bound:
            bounded.append("")  # a time beyond anything its owner sets: taken as now
            return float(now)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _Unusable
        return value
    if tp is datetime:
        try:
            moment = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise _Unusable from None
        if moment.tzinfo is None:  # a naive time would not compare with now
            raise _Unusable
        if bound is not None and now and moment.timestamp() > now + bound:
            raise _Unusable  # a moment recorded as seen, yet still to come: not ours to trust
        return moment
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _Unusable
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, now, bound, bounded) for v in value)
        if len(args) != len(value):
            raise _Unusable
        return tuple(_decode(a, v, now, bound, bounded) for a, v in zip(args, value, strict=True))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise _Unusable
        item = args[1] if args else Any
        return {str(k): _decode(item, v, now, bound, bounded) for k, v in value.items()}
    raise TypeError(f"a state section uses a type the cache cannot decode: {tp!r}")


def encode(value: Any) -> Any:
    """JSON for a section or field: dataclasses as objects with their defaults left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            default = f.default if f.default is not dataclasses.MISSING else _factory_default(f)
            if item != default:
                out[f.name] = encode(item)
        return out
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def _factory_default(f: dataclasses.Field[Any]) -> Any:
    factory = f.default_factory
    return factory() if factory is not dataclasses.MISSING else dataclasses.MISSING
