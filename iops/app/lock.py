"""The run lock: one command at a time per config (cron runs, --restore, the helpers); its mtime is the last run."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock for this config; yields False if another command still holds it."""
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


def last_run_of(lock_path: Path) -> float | None:
    """Every scheduler run touches its lock file: its time is the last run (for --status)."""
    try:
        return lock_path.stat().st_mtime
    except OSError:
        return None
