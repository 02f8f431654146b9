"""The per-config state file (token cache, last posted hash, caches) and the run lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# Each section of the state and the JSON type it must have; anything else is dropped on load.
SECTIONS: Mapping[str, type | tuple[type, ...]] = {
    "octopus": dict,  # Kraken token and caches (checked field by field in octopus.py)
    "octopus_calls": dict,  # the call policy (checked field by field in call_policy.py)
    "tesla": dict,
    "tesla_auth": dict,
    "failing": dict,
    "dispatch": dict,
    "mqtt": dict,
    "originals": dict,
    "paused": dict,
    "notes": dict,
    "restored_when_off": bool,
    "mqtt_discovery": str,
}
log = logging.getLogger(__name__)


def load_state(path: Path) -> dict[str, Any]:
    """The saved state, or an empty one when missing or unreadable (it is only a cache). A section of
    the wrong type (hand-edited, or from another version) is dropped with one warning, never a crash."""
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        log.warning("State file %s is not a JSON object; starting afresh", path)
        return {}
    for key in list(data):
        wanted = SECTIONS.get(key)
        if wanted is None or not isinstance(data[key], wanted) or (wanted is dict and not _plain(data[key])):
            log.warning(
                "State file %s: dropped section %r (%s)",
                path,
                key,
                "unknown" if wanted is None else "of an unexpected type",
            )
            del data[key]
    return data


def _plain(section: dict[str, Any]) -> bool:
    """Keys are text, as JSON objects always are; a section nested absurdly deep is not ours."""
    return all(isinstance(k, str) for k in section) and len(json.dumps(section)) < 1_000_000


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically: a crash leaves the old file or the new one, never half."""
    import tempfile  # only when something changed: a quiet minute does not load it

    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, sort_keys=True, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(0o600)  # holds the Kraken token
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


TESLA_AUTH = "tesla_auth"  # the section holding Fleet API tokens


def tokens_in(state: Mapping[str, Any]) -> list[str]:
    """Tokens kept in the state, so that the log can redact them too."""
    memory = state.get(TESLA_AUTH)
    if not isinstance(memory, dict):
        return []
    return [str(memory[k]) for k in ("access_token", "refresh_token") if isinstance(memory.get(k), str)]


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock for this config; yields False if another run still holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
