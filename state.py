"""The per-config state file (token cache, last posted hash, caches) and the run lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


def load_state(path: Path) -> dict[str, Any]:
    """The saved state, or an empty one when missing or unreadable (it is only a cache)."""
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
