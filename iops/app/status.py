"""--status: how the scheduler for a config has been doing, for cron users who discard its output."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iops.app.config import load_config
from iops.app.exits import EXIT_CONFIG, EXIT_OK, EXIT_SERVICE
from iops.app.state import load_state
from iops.core.errors import ConfigError


def _when(timestamp: Any, now: datetime) -> str:
    if not isinstance(timestamp, int | float) or not timestamp:
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


def _section(state: dict[str, Any], key: str) -> dict[str, Any]:
    value = state.get(key)
    return value if isinstance(value, dict) else {}


def last_run_of(lock_path: Path) -> float | None:
    """Every scheduler run touches its lock file: its time is the last run."""
    try:
        return lock_path.stat().st_mtime
    except OSError:
        return None


def status_report(config_path: Path, state: dict[str, Any], last_run: float | None, now: datetime) -> tuple[str, int]:
    """The text of --status and its exit code: 1 while the scheduler is failing, else 0."""
    tesla, failing, paused, octopus = (_section(state, key) for key in ("tesla", "failing", "paused", "octopus_calls"))
    posted = str(tesla.get("posted_hash") or "")[:12]
    lines = [
        f"Config:       {config_path}",
        f"Last run:     {_when(last_run, now)}",
        f"Last post:    {_when(tesla.get('posted_at'), now)}" + (f", tariff {posted}" if posted else ""),
    ]
    if failing:
        lines.append(f"Last success: {_when(failing.get('last_success'), now)}")
        lines.append(
            f"Failing:      since {_when(failing.get('since'), now)}, {failing.get('runs', 1)} run(s): "
            f"{failing.get('reason', 'unknown')}"
        )
    else:
        lines.append(f"Last success: {_when(last_run, now)}")
        lines.append("Failing:      no")
    for service, section in (("Octopus", octopus), ("Tesla", tesla)):
        until = section.get("backoff_until")
        if isinstance(until, int | float) and until > now.timestamp():
            lines.append(f"Backing off:  {service} until {_when(until, now)}")
    if paused:
        lines.append(
            f"Paused:       since {_when(paused.get('since'), now)} ({paused.get('why', '--restore')}); "
            "runs do nothing until --resume"
        )
    else:
        lines.append("Paused:       no")
    return "\n".join(lines), EXIT_SERVICE if failing else EXIT_OK


def status_command(path: Path, now: datetime) -> int:
    """--status: print the report; exit 1 while the scheduler is failing."""
    try:
        config = load_config(path, need_octopus=False, need_tesla=False)
    except ConfigError as err:
        print("\n".join(err.problems), file=sys.stderr)
        return EXIT_CONFIG
    text, code = status_report(path, load_state(config.state_path), last_run_of(config.lock_path), now)
    print(text)
    return code
