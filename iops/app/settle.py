"""The daily settlement read of the bill check: what Octopus billed for each half-hour, read once a day
for every allowance day that ended at least 36 hours ago and is not yet final, and again about 3 and
7 days later (Octopus revises).

It runs after the tariff work, on a quiet poll (never while a slot is under way or near), within the
hourly Octopus budget, and never stops the tariff work: a failure is logged once and tried again an
hour later. (--report reads what it still needs the same way.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from iops.app.guard import ODD_SHAPES
from iops.core.call_policy import OCTOPUS_BUDGET, OctopusCalls, recent
from iops.core.errors import BadResponse, ServiceError
from iops.core.memory import PAST, ahead
from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.app.protected import Job
    from iops.app.store import Store
    from iops.core.bill_check import Settled
    from iops.services.octopus import Kraken

log = logging.getLogger(__name__)
FIRST_READ_AFTER = timedelta(hours=36)  # settlement lags about two days
LOOKBACK = timedelta(hours=6)  # read from 06:00 for the dispatch context legacy IOG labels depend on
DAILY_AT = time(14, 0)  # local: well clear of the night's charging and the evening peak
RETRY_AFTER = timedelta(hours=1)
READ_BACK = 15  # allowance days looked at: the last read comes 14 days after a day ends
MAX_READS_PER_RUN = 2  # each read is one request (a day fits one page)
# A full budget stretches the polls to one every poll_minutes + 1 (15 an hour at the default 3), which
# leaves room for 2 reads an hour beside a token refresh and a saving-session read: so a read may take
# the budget's last request, and the polls after it make way. More would crowd the polls out (a
# backlog after a gap could otherwise take a dozen requests in an hour on top of them).
MAX_READS_PER_HOUR = 2


@dataclass(frozen=True)
class SettleMemory:
    """The bill check's schedule (the "settle" section), and its last final day for the MQTT sensors."""

    next_at: float = field(default=0.0, metadata=ahead(86400.0 + 3600.0))
    failing: str = ""  # the failure last logged (logged once, not every try)
    suggested: str = ""  # the dispatch_trust last suggested in the log (said once when it differs)
    final_day: str = ""  # the newest final day, and how it agreed with the bill
    agreement: float | None = None
    phantom: int = 0
    phantom_gbp: float = 0.0
    checked_at: float = field(default=0.0, metadata=PAST)
    read_times: tuple[float, ...] = field(default=(), metadata=PAST)  # settlement requests in the last hour


def days_due(store: Store, config: Config, now: datetime) -> list[date]:
    """The allowance days whose settlement is due now, since the history began, oldest first: after a
    gap (the machine was off) a backlog takes a few hours of budget, and the reads that make a day
    final, or check it after, should not wait behind the newest."""
    from iops.core.bill_check import allowance_day_bounds, due_for_settlement, ended_days

    tz = ZoneInfo(config.tariff.time_zone)
    began = store.history_began()
    if began is None:
        return []
    out = []
    for day in ended_days(now, tz, READ_BACK):
        if allowance_day_bounds(day, tz)[1].timestamp() <= began:
            continue  # ended before the scheduler told the Powerwall anything: nothing to compare
        read = store.settled_day(day.isoformat())
        reads = [datetime.fromtimestamp(r, tz) for r in read[0]] if read else []
        if due_for_settlement(day, tz, now, reads, first_after=FIRST_READ_AFTER):
            out.append(day)
    return sorted(out)


def read_day(kraken: Kraken, store: Store, config: Config, day: date, now: datetime) -> str:
    """Read one allowance day's settlement and keep it; its status (complete, partial, empty)."""
    from iops.app.ledger import window
    from iops.core.bill_check import ENERGY_FLOOR_KWH, allowance_day_bounds, half_hours
    from iops.services.kraken_answers import import_agreement

    tz = ZoneInfo(config.tariff.time_zone)
    start, end = allowance_day_bounds(day, tz)
    agreement = import_agreement(kraken.agreements(), start)
    if agreement is None:
        store.record_settlement(
            day.isoformat(), [], now.timestamp(), "empty", "no import meter on the account that day"
        )
        return "empty"
    lo, hi = window(day, tz, LOOKBACK)
    rows, found = kraken.measurements(agreement.mpan, lo, hi)
    rows = [r for r in rows if start <= r.start < end]
    expected = half_hours(start, end)
    unpriced = [r for r in rows if r.kwh > ENERGY_FLOOR_KWH and not any(line.pence_per_kwh for line in r.lines)]
    if not found:
        status, note = "empty", f"no property of the account holds meter {agreement.mpan}"
    elif not rows:
        status, note = "empty", "no billing data yet for this day (Octopus's smart-meter data often lags 2 days)"
    elif len(rows) < len(expected) or unpriced:
        status = "partial"
        note = f"{len(expected) - len(rows)} half-hour(s) not settled yet, {len(unpriced)} not priced yet"
    else:
        status, note = "complete", ""
    note = _revised(store, config, day, rows, note)
    store.record_settlement(day.isoformat(), rows, now.timestamp(), status, note)
    return status


def _revised(store: Store, config: Config, day: date, rows: list[Settled], note: str) -> str:
    """Say so when Octopus changed what it had settled (the report uses the newest read)."""
    from iops.core.bill_check import is_final

    if not rows:
        return note
    before = store.settled_between(rows[0].start.isoformat(), (rows[-1].start + timedelta(minutes=30)).isoformat())
    changed = [r for r in rows if r.start.isoformat() in before and before[r.start.isoformat()] != r]
    if not changed:
        return note
    tz = ZoneInfo(config.tariff.time_zone)
    read = store.settled_day(day.isoformat())
    final = read is not None and is_final(day, tz, [datetime.fromtimestamp(r, tz) for r in read[0]])
    what = f"Octopus revised {len(changed)} half-hour(s) since the last read"
    what += " after the day was final" if final else ""
    log.info("Bill check %s: %s", day.isoformat(), what)
    return "; ".join(part for part in (note, what) if part)


def settle_if_due(job: Job, calls: OctopusCalls, *, quiet: bool, trust: str) -> OctopusCalls:
    """The daily read, when due, on a quiet poll with room in the hourly budget; the requests it cost
    count in ``calls``. A failure is logged once and tried again an hour later; the run goes on.
    ``trust``: the dispatch_trust in force (the suggestion is logged when it differs)."""
    config, now = job.config, job.now
    if not config.history.bill_check or not quiet:
        return calls
    memory = job.state.get(SettleMemory)
    if now.timestamp() < memory.next_at:
        return calls
    room = min(
        OCTOPUS_BUDGET - len(recent(calls.requests, now.timestamp())),
        MAX_READS_PER_HOUR - len(recent(memory.read_times, now.timestamp())),
    )
    if room < 1:
        return calls
    store = job.records.store()
    due = days_due(store, config, now)[: min(room, MAX_READS_PER_RUN)]
    spent = 0
    if due:
        import requests

        from iops.services.kraken_cache import KrakenCache
        from iops.services.octopus import Kraken

        with requests.Session() as session:
            kraken = Kraken(
                session,
                config.octopus,
                job.state.get(KrakenCache),
                timeout=config.debug.timeout_seconds,
                clock=now.timestamp,
            )
            try:
                for day in due:
                    read_day(kraken, store, config, day, now)
            except (ServiceError, *ODD_SHAPES) as err:
                reason = (
                    str(err)
                    if isinstance(err, ServiceError)
                    else str(BadResponse("Octopus", f"odd settlement ({type(err).__name__})"))
                )
                if memory.failing != reason:
                    log.warning("Bill check: could not read what Octopus billed (%s); trying again in an hour", reason)
                made = (now.timestamp(),) * kraken.requests_made
                job.state = job.state.put(
                    replace(
                        memory,
                        failing=reason,
                        next_at=(now + RETRY_AFTER).timestamp(),
                        read_times=(*recent(memory.read_times, now.timestamp()), *made),
                    )
                )
                return replace(calls, requests=(*calls.requests, *made))
            finally:
                job.state = job.state.put(kraken.cache)
                job.redactor.add(kraken.cache.token)
                spent = kraken.requests_made
    if memory.failing:
        log.info("Bill check: Octopus answers again")
    more = bool(days_due(store, config, now))  # left for the next quiet poll (the budget, or two a run)
    read_times = (*recent(memory.read_times, now.timestamp()), *(now.timestamp(),) * spent)
    memory = replace(memory, failing="", read_times=read_times)
    job.state = job.state.put(_after_reads(job, store, memory, now, more, trust))
    return replace(calls, requests=(*calls.requests, *(now.timestamp(),) * spent))


def _after_reads(
    job: Job, store: Store, memory: SettleMemory, now: datetime, more: bool, in_force: str
) -> SettleMemory:
    """The newest final day's agreement (for MQTT), the trust suggestion (logged once when it differs),
    the history pruned, and when to read next."""
    from iops.app.ledger import recent_final_days
    from iops.core.bill_check import suggest

    config = job.config
    tz = ZoneInfo(config.tariff.time_zone)
    finals = recent_final_days(store, config, now)
    if finals:
        newest = finals[0]
        summary = newest.summary
        memory = replace(
            memory,
            final_day=newest.day.isoformat(),
            agreement=summary.agreement,
            phantom=summary.phantom,
            phantom_gbp=summary.phantom_gbp,
        )
    suggestion = suggest([day.rows for day in finals])
    if suggestion is not None and suggestion.dispatch_trust not in (in_force, memory.suggested):
        log.warning(
            "Bill check: over %d final day(s), dispatch_trust = %s would have agreed with your bill more often "
            "(£%.2f better); it is %s now. Nothing is changed for you: see --report",
            suggestion.days,
            suggestion.dispatch_trust,
            suggestion.gbp,
            in_force,
        )
        memory = replace(memory, suggested=suggestion.dispatch_trust)
    store.prune((now - timedelta(days=config.history.keep_days)).timestamp())
    tomorrow = datetime.combine(now.astimezone(tz).date() + timedelta(days=1), DAILY_AT, tz)
    return replace(memory, next_at=now.timestamp() if more else tomorrow.timestamp(), checked_at=now.timestamp())
