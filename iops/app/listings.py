"""The Power Up and saving-session listings (free_electricity.py, savings_sessions.py)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from iops.app.args import Command, read_command_line
from iops.app.config import load_config
from iops.app.exits import EXIT_CONFIG, EXIT_OK, EXIT_SERVICE, cli_failure
from iops.app.logs import setup_logging
from iops.app.state import load_state, run_lock, save_state
from iops.core.errors import ConfigError, SchedulerError
from iops.core.settings import Config

Kind = Literal["power_ups", "sessions"]
POWER_UPS = Command("free_electricity.py", "List upcoming Power Up (free electricity) events for the account.")
SESSIONS = Command(
    "savings_sessions.py", "List upcoming saving sessions (Power Down) and weekend happy hours, and which you joined."
)


def power_ups_main(argv: Sequence[str] | None = None) -> int:
    return _main(POWER_UPS, argv, "power_ups")


def sessions_main(argv: Sequence[str] | None = None) -> int:
    return _main(SESSIONS, argv, "sessions")


def _main(command: Command, argv: Sequence[str] | None, kind: Kind) -> int:
    args = read_command_line(command, argv)
    if isinstance(args, int):
        return args
    return list_events(Path(args.config).expanduser().resolve(), kind)


def list_events(path: Path, kind: Kind) -> int:
    """Print upcoming events, under the config's run lock."""
    try:
        config = load_config(path, need_tesla=False)
    except (ConfigError, OSError) as err:
        print(f"{path}: {err}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(None, config.secrets(), debug=False)
    with run_lock(config.lock_path) as acquired:
        if not acquired:  # a cron run is using (and will save) the same state
            print(f"A run for {path} is under way; try again in a moment", file=sys.stderr)
            return EXIT_SERVICE
        state = load_state(config.state_path)
        try:
            _print_events(config, state, kind)
        except SchedulerError as err:
            code, message = cli_failure(err, path)
            print(message, file=sys.stderr)
            return code
        finally:
            save_state(config.state_path, state)
    return EXIT_OK


def _print_events(config: Config, state: dict[str, Any], kind: Kind) -> None:
    import requests

    from iops.services.kraken_answers import parse_power_ups, parse_session_events
    from iops.services.octopus import Kraken

    now = datetime.now(UTC)
    with requests.Session() as session:
        kraken = Kraken(session, config.octopus, state, timeout=config.debug.timeout_seconds)
        if kind == "power_ups":
            for slot in parse_power_ups(kraken.power_ups(now).data, now):
                print(f"Power Up  {slot.start.isoformat()} - {slot.end.isoformat()}")
            return
        for event in parse_session_events(kraken.saving_sessions(), now):
            status = "joined" if event.joined else "not joined"
            print(
                f"{'Power Down' if event.kind == 'down' else 'Power Up'} {event.code} "
                f"{event.slot.start.isoformat()} - {event.slot.end.isoformat()} "
                f"£{event.reward:.2f}/kWh {status}"
            )
