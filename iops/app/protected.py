"""The protected path of every user command (--restore, --resume, --status, --check, the helpers).

The same protections as the cron run: the config checked, a logger that redacts every secret, the
run lock, the overall deadline, the odd-answer net, the cache and the durable records, and one
mapping of failures to exit codes (0, 1, 2) whose text passes through the redactor.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from iops.app import cache
from iops.app.config import load_config
from iops.app.exits import EXIT_CONFIG, EXIT_SERVICE, cli_failure
from iops.app.guard import ODD_SHAPES, run_deadline
from iops.app.lock import run_lock
from iops.app.logs import RedactSecrets, setup_logging
from iops.app.records import Records
from iops.core.errors import BadResponse, ConfigError, SchedulerError, StateUnwritable
from iops.core.settings import Config

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What a command works with; it replaces ``state`` when it changes the cache."""

    config: Config
    redactor: RedactSecrets
    records: Records
    state: cache.State
    now: datetime

    def say(self, text: str) -> None:
        """A line for the user, on stdout, with every secret redacted."""
        print(self.redactor.redact(text), flush=True)

    def warn(self, text: str) -> None:
        """A line for the user beside the output (stderr: ``--json`` keeps stdout parseable), redacted."""
        print(self.redactor.redact(text), file=sys.stderr, flush=True)

    def save(self) -> None:
        """Save the cache now: before a Tesla write whose record must be kept."""
        try:
            cache.save(self.config.state_path, self.records.finish(self.state))
        except OSError as err:
            raise StateUnwritable(self.config.state_path, err) from err


def run_command(
    path: Path,
    work: Callable[[Job], int],
    *,
    now: datetime | None = None,
    need_octopus: bool = True,
    need_tesla: bool = True,
    lock: bool = True,
    log_to_file: bool = True,
) -> int:
    """Run ``work`` under every protection; its failures become exit codes and redacted messages."""
    try:
        config = load_config(path, need_octopus=need_octopus, need_tesla=need_tesla)
    except ConfigError as err:
        print("\n".join(err.problems), file=sys.stderr)
        return EXIT_CONFIG
    log_file = config.debug.log_file if log_to_file else None
    redactor = setup_logging(log_file, config.secrets(), debug=config.debug.debug)
    when = now or datetime.now(UTC)
    try:
        with _maybe_lock(config, lock) as acquired:
            if not acquired:
                print(f"A run for {path} is under way; try again in a moment", file=sys.stderr)
                return EXIT_SERVICE
            with run_deadline():
                state = cache.load(config.state_path, time.time() if now is None else when.timestamp())
                with Records(config.store_path, state, redactor) as records:
                    job = Job(config, redactor, records, state, when)
                    try:
                        return _odd_answers_are_theirs(work, job)
                    finally:
                        _save(config, job, state, lock=lock)
    except SchedulerError as err:
        code, text = cli_failure(err, path)
        print(redactor.redact(text), file=sys.stderr)
        return code


def _odd_answers_are_theirs(work: Callable[[Job], int], job: Job) -> int:
    try:
        return work(job)
    except ODD_SHAPES as err:  # an answer of a shape no parser foresaw: their data, not a crash
        log.debug("Unexpected answer", exc_info=True)  # the traceback, in the log file, in case it is ours
        raise BadResponse("A service", f"answer of an unexpected shape ({type(err).__name__})") from err


def _save(config: Config, job: Job, loaded: cache.State, *, lock: bool) -> None:
    """Keep what the command changed (never without the lock: a cron run may be saving too)."""
    state = job.records.finish(job.state)
    if lock and cache.dumps(state) != cache.dumps(loaded):
        try:
            cache.save(config.state_path, state)
        except OSError as err:
            raise StateUnwritable(config.state_path, err) from err


@contextlib.contextmanager
def _maybe_lock(config: Config, lock: bool) -> Iterator[bool]:
    if not lock:
        yield True
        return
    with run_lock(config.lock_path) as acquired:
        yield acquired
