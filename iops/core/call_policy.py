"""When to call Octopus and Tesla: a designed policy, decided by pure functions. No I/O here.

Cron runs every minute, but the services want far less: Octopus asked the largest peer tool for
at most 20 requests an hour, Tesla's read-back lags a post by minutes and its back ends limit
writes. Each run asks ``plan_octopus`` whether to poll, and, with the tariff it built (or the one
still waiting), ``plan_tesla`` whether to post, verify, wait or do nothing. The shell carries the
answer out and reports back through the ``after_*`` functions, which return the new state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from iops.core.errors import RateLimited, ServiceError
from iops.core.memory import PAST, ahead

HOUR = 3600.0
OCTOPUS_BUDGET = 20  # requests an hour on a quiet day
BUDGET_RESERVE = 1  # kept for the token refresh or saving-session read a poll may bring
POST_SPACING = 4 * 60.0  # Teslemetry reports about one time_of_use_settings call per 4 minutes
VERIFY_AFTER = 5 * 60.0  # site_info lags a new tariff by up to about 5 minutes
MISMATCH_DELAYS = (5 * 60.0, 15 * 60.0, HOUR)  # then hourly
OUTAGE_DELAYS = (60.0, 120.0, 240.0, 480.0, 960.0, 1800.0)  # Tesla 5xx and timeouts: 1, 2, 4 ... 30 min
RATE_LIMIT_FLOOR, RATE_LIMIT_CAP = 60.0, HOUR  # a Retry-After is honoured within these
OCTOPUS_RATE_LIMIT_DELAYS = (300.0, 600.0, 1200.0, 1800.0)  # KT-CT-1199: 5, 10, 20 then 30 minutes


@dataclass(frozen=True)
class OctopusCalls:
    """What the Octopus schedule needs to remember between runs (the "octopus_calls" section)."""

    polled_at: float = field(default=0.0, metadata=PAST)
    requests: tuple[float, ...] = field(default=(), metadata=PAST)  # when requests were made in the last hour
    dispatches: tuple[tuple[float, float], ...] = ()  # known planned dispatches (start, end)
    events: tuple[tuple[float, float], ...] = ()  # known Power Ups and saving sessions (start, end)
    smart_control: bool = False  # the last poll showed a car under smart control
    backoff_until: float = field(default=0.0, metadata=ahead(OCTOPUS_RATE_LIMIT_DELAYS[-1]))
    backoff_step: int = -1


@dataclass(frozen=True)
class TeslaCalls:
    """What the Tesla schedule needs to remember: what was posted, what waits, and when to act
    (the "tesla" section)."""

    site_id: str = ""
    posted_hash: str = ""  # the tariff Tesla accepted last
    posted_tariff: dict[str, Any] | None = None  # kept so that a run between polls can verify or repost it
    posted_at: float = field(default=0.0, metadata=PAST)
    verify_at: float = field(default=0.0, metadata=ahead(VERIFY_AFTER))  # when to read the live tariff back next
    verified_at: float = field(default=0.0, metadata=PAST)
    repost_at: float = field(default=0.0, metadata=ahead(MISMATCH_DELAYS[-1]))  # a mismatch: post ours again then
    mismatch_step: int = -1
    pending_hash: str = ""  # built, not yet posted (spacing or back-off)
    pending_tariff: dict[str, Any] | None = None
    backoff_until: float = field(default=0.0, metadata=ahead(max(RATE_LIMIT_CAP, OUTAGE_DELAYS[-1])))
    backoff_step: int = -1


# ---- Octopus ---------------------------------------------------------------------------------

OctopusAction = Literal["poll", "idle", "wait"]


@dataclass(frozen=True)
class OctopusPlan:
    """What Octopus gets this run."""

    action: OctopusAction
    reason: str
    until: float = 0.0  # with "wait": the end of the back-off


def plan_octopus(calls: OctopusCalls, now: datetime, poll_minutes: float, *, force: bool = False) -> OctopusPlan:
    """Poll every minute only while something is happening; otherwise every ``poll_minutes`` within
    the hourly budget. Octopus's own rate limit (KT-CT-1199) is honoured in any case."""
    t = now.timestamp()
    if t < calls.backoff_until:
        return OctopusPlan("wait", "Octopus asked us to slow down", calls.backoff_until)
    if force:
        return OctopusPlan("poll", "forced")
    happening = busy(calls, now, poll_minutes)
    if happening:
        return OctopusPlan("poll", happening)
    since = t - calls.polled_at
    if since < poll_minutes * 60 - 30:  # 30 s of slack: cron starts a little late or early
        return OctopusPlan("idle", "polled recently")
    # Token refreshes and saving-session reads share the budget: one request is kept in reserve for
    # them, and a full budget stretches a poll by at most a minute, so that a new slot still reaches
    # Tesla within poll_minutes + 4 minutes. (Modelled: 19.3 requests an hour, polls 3-4 minutes apart.)
    full = len(recent(calls.requests, t)) >= OCTOPUS_BUDGET - BUDGET_RESERVE
    if full and since < (poll_minutes + 1) * 60 - 30:
        return OctopusPlan("idle", f"{OCTOPUS_BUDGET - BUDGET_RESERVE} requests in the last hour")
    return OctopusPlan("poll", "due")


def busy(calls: OctopusCalls, now: datetime, poll_minutes: float) -> str:
    """Why Octopus is polled every minute now ("" when nothing is happening): a car under smart
    control, a dispatch under way, or a dispatch or event that starts or ends within poll_minutes."""
    t = now.timestamp()
    soon = t + poll_minutes * 60
    if calls.smart_control:
        return "a car is under smart control"
    if any(start <= t < end for start, end in calls.dispatches):
        return "a dispatch is under way"
    for start, end in (*calls.dispatches, *calls.events):
        if t <= start < soon or t <= end < soon:
            return "a dispatch or event starts or ends soon"
    return ""


def recent(times: Sequence[float], t: float) -> tuple[float, ...]:
    return tuple(x for x in times if t - HOUR < x <= t)


def after_poll(
    calls: OctopusCalls,
    now: datetime,
    requests: int,
    dispatches: Sequence[tuple[float, float]],
    events: Sequence[tuple[float, float]],
    *,
    smart_control: bool,
) -> OctopusCalls:
    """What a poll learnt: the next day's dispatches and events, and the requests it cost."""
    t = now.timestamp()
    horizon = t + 36 * HOUR
    return replace(
        calls,
        polled_at=t,
        requests=recent(calls.requests, t) + (t,) * requests,
        dispatches=tuple(sorted({(s, e) for s, e in dispatches if e > t and s < horizon})),
        events=tuple(sorted({(s, e) for s, e in events if e > t and s < horizon})),
        smart_control=smart_control,
        backoff_until=0.0,
        backoff_step=-1,
    )


def after_octopus_failure(calls: OctopusCalls, now: datetime, requests: int, *, rate_limited: bool) -> OctopusCalls:
    """A failed poll still costs its requests; a rate limit backs off 5, 10, 20 then 30 minutes."""
    t = now.timestamp()
    spent = replace(calls, polled_at=t, requests=recent(calls.requests, t) + (t,) * requests)
    if not rate_limited:
        return spent
    step = min(calls.backoff_step + 1, len(OCTOPUS_RATE_LIMIT_DELAYS) - 1)
    return replace(spent, backoff_step=step, backoff_until=t + OCTOPUS_RATE_LIMIT_DELAYS[step])


# ---- Tesla -----------------------------------------------------------------------------------

TeslaAction = Literal["nothing", "post", "verify", "wait"]


@dataclass(frozen=True)
class TeslaPlan:
    """What Tesla gets this run."""

    action: TeslaAction
    reason: str
    tariff: dict[str, Any] | None = None  # with "post": what to post
    digest: str = ""
    until: float = 0.0  # with "wait": when the next Tesla request may go


def plan_tesla(
    calls: TeslaCalls,
    built: tuple[str, dict[str, Any]] | None,
    now: datetime,
    verify_hours: float,
    *,
    force: bool = False,
) -> TeslaPlan:
    """What Tesla gets this run. ``built`` is this run's (digest, tariff), or None between polls."""
    t = now.timestamp()
    digest, tariff = built if built else (calls.pending_hash, calls.pending_tariff)
    changed = bool(digest) and tariff is not None and (digest != calls.posted_hash or force)
    if t < calls.backoff_until:
        if changed or calls.verify_at or calls.repost_at:
            return TeslaPlan("wait", "Tesla asked us to wait", until=calls.backoff_until)
        return TeslaPlan("nothing", "backing off, nothing to do")
    if changed and tariff is not None:
        ready = calls.posted_at + POST_SPACING
        if t < ready and not force:
            return TeslaPlan("wait", "posts are at least 4 minutes apart", until=ready)
        return TeslaPlan("post", "new schedule" if digest != calls.posted_hash else "forced", tariff, digest)
    if calls.repost_at and t >= calls.repost_at and calls.posted_tariff is not None:
        return TeslaPlan("post", "the live tariff differed from ours", calls.posted_tariff, calls.posted_hash)
    if calls.verify_at and t >= calls.verify_at and calls.posted_tariff is not None:
        return TeslaPlan("verify", "read-back due")
    if calls.posted_tariff is not None and not calls.verify_at and t - calls.verified_at >= verify_hours * HOUR:
        return TeslaPlan("verify", "hourly check")
    return TeslaPlan("nothing", "up to date")


def with_pending(calls: TeslaCalls, built: tuple[str, dict[str, Any]] | None) -> TeslaCalls:
    """Keep a built schedule until Tesla has it, so that a run between polls can still post it
    (after a wait for spacing or back-off, or a failed post). ``after_post`` clears it."""
    if built is None:
        return calls
    if built[0] == calls.posted_hash:
        return replace(calls, pending_hash="", pending_tariff=None)
    return replace(calls, pending_hash=built[0], pending_tariff=built[1])


def after_post(calls: TeslaCalls, now: datetime, digest: str, tariff: dict[str, Any]) -> TeslaCalls:
    """Tesla accepted it: verify no sooner than 5 minutes later."""
    t = now.timestamp()
    return replace(
        calls,
        posted_hash=digest,
        posted_tariff=tariff,
        posted_at=t,
        verify_at=t + VERIFY_AFTER,
        repost_at=0.0,
        pending_hash="",
        pending_tariff=None,
        backoff_until=0.0,
        backoff_step=-1,
    )


def after_verify(calls: TeslaCalls, now: datetime, *, matches: bool) -> TeslaCalls:
    """A match ends the episode; a mismatch reposts after 5, 15, 60 minutes, then hourly."""
    t = now.timestamp()
    if matches:
        return replace(calls, verify_at=0.0, verified_at=t, repost_at=0.0, mismatch_step=-1)
    step = calls.mismatch_step + 1
    delay = MISMATCH_DELAYS[min(step, len(MISMATCH_DELAYS) - 1)]
    return replace(calls, verify_at=0.0, verified_at=t, repost_at=t + delay, mismatch_step=step)


def plan_restore(calls: TeslaCalls, now: datetime) -> TeslaPlan:
    """Whether the user's own tariff (--restore, restore_when_off) may be posted now: the same
    back-off, Retry-After and spacing as any post of ours."""
    t = now.timestamp()
    if t < calls.backoff_until:
        return TeslaPlan("wait", "Tesla asked us to wait", until=calls.backoff_until)
    ready = calls.posted_at + POST_SPACING
    if t < ready:
        return TeslaPlan("wait", "posts are at least 4 minutes apart", until=ready)
    return TeslaPlan("post", "the user's own tariff")


def after_restore(calls: TeslaCalls, now: datetime) -> TeslaCalls:
    """The user's own tariff is live: nothing of ours is, so the next post of ours is a full one."""
    return replace(
        calls,
        posted_hash="",
        posted_tariff=None,
        posted_at=now.timestamp(),
        verify_at=0.0,
        repost_at=0.0,
        mismatch_step=-1,
        backoff_until=0.0,
        backoff_step=-1,
    )


def after_tesla_error(calls: TeslaCalls, now: datetime, err: ServiceError) -> TeslaCalls:
    """A Tesla request failed: no Tesla request until the back-off ends (Octopus is still polled)."""
    if isinstance(err, RateLimited):
        return after_tesla_failure(calls, now, err.retry_after, rate_limited=True)
    return after_tesla_failure(calls, now, None, rate_limited=False)


def after_tesla_failure(
    calls: TeslaCalls, now: datetime, retry_after: float | None, *, rate_limited: bool
) -> TeslaCalls:
    """No Tesla request before the back-off ends: Retry-After (capped at an hour) or 1, 2, 4 ... 30 min."""
    t = now.timestamp()
    if rate_limited and retry_after is not None:
        return replace(calls, backoff_until=t + min(max(retry_after, RATE_LIMIT_FLOOR), RATE_LIMIT_CAP))
    # An outage, or a 429 that said nothing usable about when: waits that grow, never a try a minute.
    step = min(calls.backoff_step + 1, len(OUTAGE_DELAYS) - 1)
    return replace(calls, backoff_step=step, backoff_until=t + OUTAGE_DELAYS[step])


def for_site(calls: TeslaCalls, site_id: str) -> TeslaCalls:
    """What we know is about one site: another site starts afresh."""
    return calls if calls.site_id == site_id else TeslaCalls(site_id=site_id)


def first_difference(ours: Sequence[tuple[str, float, float]], live: Sequence[tuple[str, float, float]] | None) -> str:
    """The first half-hour of the week where the live tariff differs from ours, for the log."""
    if live is None:
        return "no tariff could be read back"
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    for i, (a, b) in enumerate(zip(ours, live, strict=True)):
        if a[0] != b[0] or abs(a[1] - b[1]) >= 1e-4 or abs(a[2] - b[2]) >= 1e-4:
            hh = i % 48
            return f"first at {days[i // 48]} {hh // 2:02d}:{hh % 2 * 30:02d}: ours {a}, live {b}"
    return "none"
