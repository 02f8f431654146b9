"""The protections every command runs under: an overall deadline, and the net that turns an answer of
an unforeseen shape into the service's fault rather than a crash."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

from iops.core.errors import ServiceUnavailable

RUN_DEADLINE_SECONDS = 50.0
# What parsers raise on an answer of a shape they did not foresee: their data, not our outage or bug.
ODD_SHAPES = (AttributeError, TypeError, ValueError, KeyError, IndexError, OverflowError, RecursionError)


@contextlib.contextmanager
def run_deadline(seconds: float = RUN_DEADLINE_SECONDS) -> Iterator[None]:
    """Whatever a server does, a command ends in time for the next minute's run: past the deadline,
    the request under way is abandoned as an outage. (Requests have their own, shorter deadlines.)"""

    def expire(signum: int, frame: Any) -> None:
        raise ServiceUnavailable("Scheduler", f"the run took over {seconds:g} s; abandoned the request under way")

    try:
        previous = signal.signal(signal.SIGALRM, expire)
    except ValueError:  # not the main thread (an embedding program): no alarm
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
