"""Exit codes of every command, and how an error maps to one: 0 done, 1 a service failed (try again
later), 2 the config must change."""

from __future__ import annotations

import io
import logging
import os
import sys
import traceback
from collections.abc import Callable

from iops.core.errors import ConfigError, CredentialsRejected, SchedulerError

EXIT_OK, EXIT_SERVICE, EXIT_CONFIG = 0, 1, 2


def cli_failure(err: SchedulerError, config_path: object) -> tuple[int, str]:
    """Exit code and message for a command that failed: 2 when the config must change, else 1."""
    if isinstance(err, CredentialsRejected):
        return EXIT_CONFIG, f"{err}: check {err.key} in {config_path}"
    if isinstance(err, ConfigError):
        return EXIT_CONFIG, "\n".join(err.problems)
    return EXIT_SERVICE, str(err)


def guarded(main: Callable[[], int]) -> int:
    """Every command's last line of defence: 0, 1 or 2 whatever happens. A reader that stops early
    (``| head``, ``| grep -q``) closes our output: its choice, so we end quietly. Anything else
    unforeseen is a bug: one line on stderr, the traceback in the log file, exit 1."""
    try:
        return main()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except Exception:
        log = logging.getLogger("iops")
        if logging.getLogger().handlers:
            log.exception("Unexpected error (a bug; please report it). Nothing more was posted this run")
        else:
            print("Unexpected error (a bug; please report it):", file=sys.stderr)
            traceback.print_exc(limit=-3)
        return EXIT_SERVICE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # not a real file (an embedding program's stream): nothing to silence
