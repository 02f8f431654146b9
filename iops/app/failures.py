"""Failure streaks (the "failing" section): logged when they start, hourly while they last, and
when they end; shown by --status and the MQTT status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from iops.core.errors import CredentialsRejected, ServiceError
from iops.core.memory import PAST, ahead
from iops.core.settings import Config

log = logging.getLogger(__name__)
STILL_FAILING_EVERY = timedelta(hours=1)
# A refused key or token is tried again after these waits (then hourly), or at once when the config changes.
REFUSAL_DELAYS = (300.0, 900.0, 3600.0)
Redact = Callable[[str], str]


@dataclass(frozen=True)
class Failure:
    """The failure under way: what fails, since when, and when it was last logged."""

    reason: str = ""
    service: str = ""
    since: float = field(default=0.0, metadata=PAST)
    logged: float = field(default=0.0, metadata=PAST)
    runs: int = 0
    last_success: float | None = field(default=None, metadata=PAST)  # the run before the streak began
    # A refused credential: which key, a fingerprint of the config's credentials, and when to try again.
    key: str = ""
    credentials: str = ""
    retry_at: float = field(default=0.0, metadata=ahead(REFUSAL_DELAYS[-1]))


def credentials_of(config: Config) -> str:
    """A fingerprint of everything a service could refuse: a change to any of it is worth a try at once."""
    import hashlib

    parts = [
        *config.secrets(),
        config.octopus.account_number,
        config.tesla.site_id,
        config.tesla.client_id,
        config.tesla.api_base_url,
        config.octopus.graphql_url,
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def note_refusal(
    failure: Failure,
    err: CredentialsRejected,
    now: datetime,
    credentials: str,
    config_path: object,
    redact: Redact = str,
) -> Failure:
    """A service refused a credential: say so once (then hourly), and wait before trying it again."""
    t = now.timestamp()
    reason = redact(str(err))
    again = failure.credentials == credentials and failure.reason == reason
    if not again:
        log.error("%s: check %s in %s", err, err.key, config_path)
    elif t - failure.logged >= STILL_FAILING_EVERY.total_seconds():
        log.warning("Still refused after %d tries: %s: check %s in %s", failure.runs + 1, err, err.key, config_path)
    runs = failure.runs + 1 if again else 1
    return Failure(
        reason=reason,
        service=err.service,
        since=failure.since if failure.runs else t,
        logged=t if not again or t - failure.logged >= STILL_FAILING_EVERY.total_seconds() else failure.logged,
        runs=runs,
        last_success=failure.last_success if failure.runs else None,
        key=err.key,
        credentials=credentials,
        retry_at=t + REFUSAL_DELAYS[min(runs - 1, len(REFUSAL_DELAYS) - 1)],
    )


def note_failure(
    failure: Failure, err: ServiceError, now: datetime, previous_run: float | None, redact: Redact = str
) -> Failure:
    """Log a failure once, then hourly while it lasts (a cron job must not flood its log). The reason
    is kept redacted: --status prints it, and the cache is a file too."""
    reason = redact(str(err))
    t = now.timestamp()
    if not failure.runs:  # a new streak: the run before this one was the last to succeed
        log.error("%s; keeping the current tariff", reason)
        return Failure(reason, err.service, since=t, logged=t, runs=1, last_success=previous_run)
    if failure.reason != reason:  # the same streak, failing another way: said at once, counted on
        log.error("%s; keeping the current tariff", reason)
        return Failure(
            reason, err.service, failure.since, logged=t, runs=failure.runs + 1, last_success=failure.last_success
        )
    if t - failure.logged >= STILL_FAILING_EVERY.total_seconds():
        log.warning("Still failing after %d runs: %s", failure.runs + 1, reason)
        return Failure(
            reason, err.service, failure.since, logged=t, runs=failure.runs + 1, last_success=failure.last_success
        )
    log.debug("Still failing: %s", reason)
    return Failure(reason, err.service, failure.since, failure.logged, failure.runs + 1, failure.last_success)


def note_success(failure: Failure, answered: frozenset[str]) -> Failure:
    """A failure streak ends when the service that failed answers again (not just any service)."""
    if not failure.runs or not answered:
        return failure
    if failure.service in answered or not failure.service:
        log.info("Services back after %s failed run(s)", failure.runs)
        return Failure()
    return failure
