"""Did the Powerwall obey? The daily energy read (Tesla's ``calendar_history`` for the previous local
day) and the live check (one ``live_status`` read 10-15 minutes into each daytime cheap block).

Both run on a poll minute after the tariff work, never on a minute that posts, and never inside a
Tesla back-off or Retry-After; a failure is logged once, backs the Tesla schedule off as any Tesla
failure does, and never fails the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from iops.core.call_policy import TeslaCalls, after_tesla_error
from iops.core.errors import ServiceError
from iops.core.memory import PAST, ahead

if TYPE_CHECKING:
    from iops.app.protected import Job
    from iops.app.store import Store
    from iops.core.battery_check import LiveReading
    from iops.core.settings import Config

log = logging.getLogger(__name__)
READ_AFTER = time(1, 30)  # local: the previous day's last rows have arrived by then
REREAD_AFTER = timedelta(hours=6)  # a day with missing rows is read again, up to
REREAD_UNTIL = timedelta(days=3)  # this long after it ended
LOOK_BACK = 7  # local days looked at (a backlog after a gap, one read a poll)
RETRY_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class BatteryMemory:
    """The battery check's schedule, its newest day for MQTT, and the live check (the "battery" section)."""

    next_at: float = field(default=0.0, metadata=ahead(86400.0 + 3600.0))
    failing: str = ""  # the failure last logged (said once)
    day: str = ""  # the newest local day read, and its kWh discharged while cheap (the MQTT sensor)
    cheap_kwh: float | None = None
    cheap_gbp: float = 0.0
    checked_block: float = field(default=0.0, metadata=PAST)  # the start of the cheap block last live-checked
    problem_since: float = field(default=0.0, metadata=PAST)  # the live check caught a discharge then
    problem_until: float = field(default=0.0, metadata=ahead(86400.0))  # and the block it was in ends then
    problem_detail: str = ""


def days_due(store: Store, config: Config, now: datetime) -> list[date]:
    """Local days whose energy history should be read now, oldest first: each once after 01:30 the
    next day, again while rows are missing (every 6 hours, for 3 days), and only days the scheduler
    told the Powerwall something about."""
    from iops.core.battery_check import local_day_bounds

    tz = ZoneInfo(config.tariff.time_zone)
    began = store.history_began()
    if began is None:
        return []
    local = now.astimezone(tz)
    newest = local.date() - timedelta(days=1)
    if local.time() < READ_AFTER:
        newest -= timedelta(days=1)
    out = []
    for back in range(LOOK_BACK):
        day = newest - timedelta(days=back)
        _, end = local_day_bounds(day, tz)
        if end.timestamp() <= began:
            break
        read = store.battery_day(day.isoformat())
        if read is None or (
            read[1] and now - end < REREAD_UNTIL and now.timestamp() - max(read[0]) >= REREAD_AFTER.total_seconds()
        ):
            out.append(day)
    return sorted(out)


def read_energy_if_due(job: Job, calls: TeslaCalls) -> TeslaCalls:
    """The daily energy read, when due and Tesla has not asked us to wait: one request (one day) a run."""
    config, now = job.config, job.now
    if not config.history.battery_check:
        return calls
    memory = job.state.get(BatteryMemory)
    if now.timestamp() < memory.next_at or now.timestamp() < calls.backoff_until:
        return calls
    store = job.records.store()
    due = days_due(store, config, now)
    if due:
        try:
            _read_day(job, store, due[0])
        except ServiceError as err:
            if memory.failing != str(err):
                log.warning("Battery check: could not read the energy history from Tesla (%s); trying again later", err)
            retry = max(now + RETRY_AFTER, datetime.fromtimestamp(calls.backoff_until, now.tzinfo))
            job.state = job.state.put(replace(memory, failing=str(err), next_at=retry.timestamp()))
            return after_tesla_error(calls, now, err)
        if memory.failing:
            log.info("Battery check: Tesla answers again")
    job.state = job.state.put(_after_read(job, store, replace(memory, failing=""), now))
    return calls


def _read_day(job: Job, store: Store, day: date) -> None:
    import requests

    from iops.app.clients import tesla_site
    from iops.core.battery_check import local_day_bounds, roll_up
    from iops.services.tesla_answers import parse_energy_history

    config, now = job.config, job.now
    tz = ZoneInfo(config.tariff.time_zone)
    with requests.Session() as session:
        site = tesla_site(session, config, job.records, now.timestamp)
        response = site.energy_history(config.tesla.site_id, day, tz)
    answer = parse_energy_history(response, day, tz)
    start, end = local_day_bounds(day, tz)
    rolled = roll_up(answer.rows, start, end)
    notes = list(answer.notes)
    if answer.rows and rolled.step is None:
        notes.append("Tesla's rows come at a step that does not divide 30 minutes")
    elif rolled.missing and answer.rows:
        notes.append(f"{rolled.missing} half-hour(s) lack some of their rows (read again later)")
    step = f"{rolled.step.total_seconds() / 60:g}-minute" if rolled.step else "no"
    log.info(
        "Battery check %s: %d row(s) at a %s step, %d complete half-hour(s)",
        day.isoformat(),
        len(answer.rows),
        step,
        len(rolled.half_hours),
    )
    store.record_battery(day.isoformat(), rolled.half_hours, now.timestamp(), rolled.missing, "; ".join(notes))


def _after_read(job: Job, store: Store, memory: BatteryMemory, now: datetime) -> BatteryMemory:
    """Yesterday's kWh discharged while cheap (for MQTT), and when to look again."""
    from iops.app.ledger import battery_rows
    from iops.core.battery_check import local_day_bounds, summarise_battery

    config = job.config
    tz = ZoneInfo(config.tariff.time_zone)
    yesterday = now.astimezone(tz).date() - timedelta(days=1)
    if store.battery_day(yesterday.isoformat()) is not None:
        start, end = local_day_bounds(yesterday, tz)
        summary = summarise_battery(battery_rows(store, config, start, end))
        memory = replace(
            memory,
            day=yesterday.isoformat(),
            cheap_kwh=summary.discharged_while_cheap_kwh,
            cheap_gbp=summary.discharged_while_cheap_gbp,
        )
    more = bool(days_due(store, config, now))
    local = now.astimezone(tz)
    tomorrow = datetime.combine(local.date() + timedelta(days=1), READ_AFTER, tz)
    today = datetime.combine(local.date(), READ_AFTER, tz)
    later = today if now < today else tomorrow
    if more:
        later = now
    elif any(
        (read := store.battery_day((local.date() - timedelta(days=k)).isoformat())) is not None and read[1]
        for k in range(1, 4)
    ):
        later = min(later, now + REREAD_AFTER)  # a day with rows missing is read again
    return replace(memory, next_at=later.timestamp())


# ---- the live check ------------------------------------------------------------------------------


def live_check_if_due(job: Job, calls: TeslaCalls) -> TeslaCalls:
    """10-15 minutes into a daytime cheap block of the tariff live at Tesla, one ``live_status`` read:
    a battery discharging while the house imports is logged once (with the likely causes) and shown
    on MQTT at once, until the block ends."""
    from iops.core.battery_check import cheap_block_now, grid_label_at, live_check_due
    from iops.core.tariff import price_grid

    config, now = job.config, job.now
    memory = job.state.get(BatteryMemory)
    if memory.problem_until and now.timestamp() >= memory.problem_until:
        memory = replace(memory, problem_since=0.0, problem_until=0.0, problem_detail="")
        job.state = job.state.put(memory)
    if not config.tesla.live_check or calls.posted_tariff is None or now.timestamp() < calls.backoff_until:
        return calls
    grid = price_grid(calls.posted_tariff)
    if grid is None:
        return calls
    tz = ZoneInfo(config.tariff.time_zone)
    core = (config.tariff.off_peak_start, config.tariff.off_peak_end)
    block = cheap_block_now(grid_label_at(grid, tz), now, tz, core)
    if block is None or not live_check_due(block, now, memory.checked_block):
        return calls
    memory = replace(memory, checked_block=block[0].timestamp())
    try:
        reading = _live_reading(job)
    except ServiceError as err:
        log.info("Live check: Tesla did not answer (%s)", err)
        job.state = job.state.put(memory)
        return after_tesla_error(calls, now, err)
    job.state = job.state.put(_judge_live(memory, reading, now, block, tz))
    return calls


def _live_reading(job: Job) -> LiveReading:
    import requests

    from iops.app.clients import tesla_site
    from iops.services.tesla_answers import parse_live_status

    with requests.Session() as session:
        site = tesla_site(session, job.config, job.records, job.now.timestamp)
        return parse_live_status(site.live_status(job.config.tesla.site_id))


def _judge_live(
    memory: BatteryMemory, reading: LiveReading, now: datetime, block: tuple[datetime, datetime], tz: ZoneInfo
) -> BatteryMemory:
    from iops.core.battery_check import LIKELY_CAUSES, live_verdict

    verdict = live_verdict(reading, now)
    when = f"{block[0].astimezone(tz):%H:%M}-{block[1].astimezone(tz):%H:%M}"
    if verdict != "discharging":
        log.info("Live check in the cheap block %s: %s", when, verdict)
        return replace(memory, problem_since=0.0, problem_until=0.0, problem_detail="")
    detail = (
        f"the battery is discharging ({reading.battery_w:.0f} W) while the house imports "
        f"({reading.grid_w:.0f} W) in the cheap block {when}"
    )
    log.warning("Live check: %s. Likely causes: %s", detail, "; ".join(LIKELY_CAUSES))
    return replace(memory, problem_since=now.timestamp(), problem_until=block[1].timestamp(), problem_detail=detail)
