"""--report [--days N] [--json]: did the bill match what the Powerwall was told? It reads what the
durable records hold, fetches what is missing from Octopus (within the hourly budget), and posts nothing."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from iops.app.exits import EXIT_OK
from iops.app.protected import Job, run_command
from iops.core.call_policy import BUDGET_RESERVE, OCTOPUS_BUDGET, OctopusCalls, recent
from iops.core.errors import ServiceError

log = logging.getLogger(__name__)
SUGGESTION_OVER = 30  # the suggestion rests on the final days among the last 30


def report_command(path: Path, now: datetime, *, days: int, as_json: bool) -> int:
    def work(job: Job) -> int:
        from iops.app.ledger import day_report, recent_final_days
        from iops.core.bill_check import Summary, add, ended_days, suggest
        from iops.core.report_view import render_json, render_text

        config = job.config
        tz = ZoneInfo(config.tariff.time_zone)
        store = job.records.store()
        wanted = ended_days(job.now, tz, days)
        _fetch_missing(job, wanted)
        reports = [day_report(store, config, day, job.now) for day in wanted]
        total = Summary()
        for day in reports:
            total = add(total, day.summary)
        suggestion = suggest([day.rows for day in recent_final_days(store, config, job.now, SUGGESTION_OVER)])
        if as_json:
            job.say(json.dumps(render_json(reports, total, suggestion, tz), indent=2))
        else:
            job.say(render_text(reports, total, suggestion, config.tariff.dispatch_trust, tz))
        return EXIT_OK

    return run_command(path, work, now=now, need_tesla=False, log_to_file=False)


def _fetch_missing(job: Job, wanted: list[date]) -> None:
    """Read the settlement of the days shown that are due (never read, or due again), as far as the
    hourly Octopus budget allows; a failure leaves them as they are, said in one line."""
    import requests

    from iops.app.settle import days_due, read_day
    from iops.services.kraken_cache import KrakenCache
    from iops.services.octopus import Kraken

    config, now, store = job.config, job.now, job.records.store()
    calls = job.state.get(OctopusCalls)
    room = OCTOPUS_BUDGET - BUDGET_RESERVE - len(recent(calls.requests, now.timestamp()))
    wanted_due = [day for day in days_due(store, config, now) if day in wanted]
    due = wanted_due[: max(room, 0)]
    if len(due) < len(wanted_due):
        job.warn(
            f"{len(wanted_due) - len(due)} day(s) not read from Octopus now: the hourly budget of "
            f"{OCTOPUS_BUDGET} requests is in use (the scheduler reads them later, or try again in a while)."
        )
    if not due:
        return
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
        except ServiceError as err:
            job.warn(f"Could not read every day's bill from Octopus ({err}); showing what is kept.")
        finally:
            job.state = job.state.put(kraken.cache)
            job.redactor.add(kraken.cache.token)
            spent = (now.timestamp(),) * kraken.requests_made
            job.state = job.state.put(replace(calls, requests=(*recent(calls.requests, now.timestamp()), *spent)))
