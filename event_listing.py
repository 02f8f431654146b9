"""Listing upcoming Power Up and Power Down events: shared by free_electricity.py and savings_sessions.py."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config import Config, load_config
from errors import EXIT_CONFIG, EXIT_OK, EXIT_SERVICE, ConfigError, SchedulerError, cli_failure
from free_electricity import parse_power_ups
from logs import setup_logging
from savings_sessions import parse_session_events
from state import load_state, run_lock, save_state


def list_events(argv: Sequence[str], kind: str) -> int:
    """Print upcoming events (kind "power_ups" or "sessions"), under the config's run lock."""
    path = Path(argv[0] if argv else "config.txt").expanduser().resolve()
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


def _print_events(config: Config, state: dict[str, Any], kind: str) -> None:
    import requests

    from octopus import Kraken

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
