"""--status: how the scheduler for a config has been doing, for cron users who discard its output.
It reads the cache and the durable records, and changes neither."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from iops.app.exits import EXIT_OK, EXIT_SERVICE
from iops.app.failures import Failure
from iops.app.lock import last_run_of
from iops.app.protected import Job, run_command
from iops.app.store import Pause
from iops.core.call_policy import OctopusCalls, TeslaCalls


def _when(timestamp: float | None, now: datetime) -> str:
    if not timestamp:
        return "never"
    moment = datetime.fromtimestamp(timestamp, UTC)
    minutes = round((now - moment).total_seconds() / 60)
    if minutes < 0:
        ago = ""
    elif minutes < 120:
        ago = f"{minutes} minute{'' if minutes == 1 else 's'} ago"
    else:
        ago = f"{minutes / 60:.1f} hours ago"
    return f"{moment:%Y-%m-%d %H:%M} UTC" + (f" ({ago})" if ago else "")


def status_report(config_path: Path, job: Job, last_run: float | None) -> tuple[str, int]:
    """The text of --status and its exit code: 1 while the scheduler is failing, else 0."""
    now, state = job.now, job.state
    tesla, failing, octopus = state.get(TeslaCalls), state.get(Failure), state.get(OctopusCalls)
    posted = tesla.posted_hash[:12]
    lines = [
        f"Config:       {config_path}",
        f"Last run:     {_when(last_run, now)}",
        f"Last post:    {_when(tesla.posted_at, now)}" + (f", tariff {posted}" if posted else ""),
    ]
    if failing.runs:
        lines.append(f"Last success: {_when(failing.last_success, now)}")
        lines.append(f"Failing:      since {_when(failing.since, now)}, {failing.runs} run(s): {failing.reason}")
    else:
        lines.append(f"Last success: {_when(last_run, now)}")
        lines.append("Failing:      no")
    for service, until in (("Octopus", octopus.backoff_until), ("Tesla", tesla.backoff_until)):
        if until > now.timestamp():
            lines.append(f"Backing off:  {service} until {_when(until, now)}")
    pause = _pause(job)
    if pause is not None:
        waiting = "; your own tariff waits to go back" if pause.put_back else ""
        lines.append(
            f"Paused:       since {_when(pause.since, now)} ({pause.why}); runs do nothing until --resume{waiting}"
        )
    else:
        lines.append("Paused:       no")
    return "\n".join(lines), EXIT_SERVICE if failing.runs else EXIT_OK


def _pause(job: Job) -> Pause | None:
    store = job.records.existing()
    pause = store.pause() if store is not None else None
    legacy = job.state.legacy("paused")  # a pause an older version kept in the cache, not moved yet
    if pause is None and isinstance(legacy, dict):
        since = legacy.get("since")
        return Pause(float(since) if isinstance(since, int | float) else 0.0, str(legacy.get("why") or "--restore"))
    return pause


def status_command(path: Path, now: datetime) -> int:
    """--status: print the report; exit 1 while the scheduler is failing."""

    def work(job: Job) -> int:
        text, code = status_report(path, job, last_run_of(job.config.lock_path))
        job.say(text)
        return code

    return run_command(path, work, now=now, need_octopus=False, need_tesla=False, lock=False, log_to_file=False)
