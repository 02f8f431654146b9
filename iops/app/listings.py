"""The Power Up and saving-session listings (free_electricity.py, savings_sessions.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from iops.app.args import Command, read_command_line
from iops.app.exits import EXIT_OK, guarded
from iops.app.protected import Job, run_command
from iops.core.errors import ServiceUnavailable

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
    def body() -> int:
        args = read_command_line(command, argv)
        if isinstance(args, int):
            return args
        return list_events(Path(args.config).expanduser().resolve(), kind)

    return guarded(body)


def list_events(path: Path, kind: Kind) -> int:
    """Print upcoming events, under the config's run lock (the Octopus token cache is shared)."""

    def work(job: Job) -> int:
        import requests

        from iops.services.kraken_answers import parse_power_ups, parse_session_events
        from iops.services.kraken_cache import KrakenCache
        from iops.services.octopus import Kraken

        config, now = job.config, datetime.now(UTC)
        with requests.Session() as session:
            kraken = Kraken(session, config.octopus, job.state.get(KrakenCache), timeout=config.debug.timeout_seconds)
            try:
                if kind == "power_ups":
                    answer = kraken.power_ups(now)
                    if answer.failed:
                        raise ServiceUnavailable("Octopus", "answered, but not the Power Up field; try again later")
                    if not answer.asked:
                        job.say("No import meter on the account, so no Power Ups to list")
                    for slot in parse_power_ups(answer.data, now):
                        job.say(f"Power Up  {slot.start.isoformat()} - {slot.end.isoformat()}")
                    return EXIT_OK
                for event in parse_session_events(kraken.saving_sessions(), now):
                    status = "joined" if event.joined else "not joined"
                    job.say(
                        f"{'Power Down' if event.kind == 'down' else 'Power Up'} {event.code} "
                        f"{event.slot.start.isoformat()} - {event.slot.end.isoformat()} "
                        f"£{event.reward:.2f}/kWh {status}"
                    )
                return EXIT_OK
            finally:
                job.state = job.state.put(kraken.cache)
                job.redactor.add(kraken.cache.token)

    return run_command(path, work, need_tesla=False, log_to_file=False)
