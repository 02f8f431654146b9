#!/usr/bin/env python3
"""A day of cron runs against the fake servers: how gentle the scheduler is with both services.

Usage: python3 bench/simulate_day.py [--minutes 1440] [--scenario NAME ...] [--in-process]

Each minute of a simulated day runs the scheduler as cron does (a fresh process, --at stepping a
minute) against the fake Kraken and Tessie, whose clocks follow the simulated time. It prints, per
scenario: Octopus and Tesla requests per hour (mean and busiest hour), posts per day (and how many
of them repeated the previous body: back-off retries), the most posts in any 10 minutes, Tesla
requests made inside a Retry-After window, and how long a short-notice slot took to reach Tesla.
Not a test: tests/test_simulation.py runs a shorter day in-process and asserts the promises.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import config_text, run_cli  # noqa: E402
from fakes import DEVICE_ID, FakeKraken, FakeTessie, Outage, smb_node  # noqa: E402

from iops.core.tariff import price_grid  # noqa: E402

DAY = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # a Tuesday in November (GMT)
SMART = "SMART_CONTROL_IN_PROGRESS"


def t(hhmm: str) -> datetime:
    return DAY + timedelta(hours=int(hhmm[:2]), minutes=int(hhmm[3:]))


def iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass
class Scenario:
    name: str
    describe: str
    # (start, end, known from): a SMART slot, and when it appears at Octopus
    slots: list[tuple[str, str, str]] = field(default_factory=list)
    power_ups: list[tuple[str, str]] = field(default_factory=list)
    sessions: list[tuple[str, str]] = field(default_factory=list)  # joined saving sessions
    tesla_outage: tuple[str, str, int, int] | None = None  # start, end, status, Retry-After
    octopus_outage: tuple[str, str, int] | None = None
    readback_lag: float = 0.0
    short_notice: str | None = None  # the slot start whose latency is reported
    history_days: int = 0  # days of cron runs before the day, so the bill check has days to read


def busy_day(name: str, describe: str, **extra: Any) -> Scenario:
    """Three smart slots (one at 10 minutes' notice), a Power Up and a joined saving session."""
    return Scenario(
        name,
        describe,
        slots=[("10:00", "11:00", "00:00"), ("14:30", "15:30", "00:00"), ("17:00", "17:30", "16:50")],
        power_ups=[("12:00", "13:00")],
        sessions=[("18:00", "19:00")],
        short_notice="17:00",
        **extra,
    )


SCENARIOS = [
    Scenario("quiet", "a quiet day: no slots, no events"),
    busy_day("busy", "three smart slots (one at 10 minutes' notice), a Power Up, a joined saving session"),
    busy_day("lag", "the busy day with Tesla's read-back lagging 5 minutes after every post", readback_lag=300),
    busy_day(
        "tesla429",
        "the busy day with a Tesla 429 storm 16:00-17:00 (Retry-After 600); the short-notice slot comes at 16:50",
        tesla_outage=("16:00", "17:00", 429, 600),
    ),
    busy_day(
        "octopus503",
        "the busy day with an Octopus 503 wave 16:40-17:10 across the short-notice slot",
        octopus_outage=("16:40", "17:10", 503),
    ),
    busy_day(
        "settle",
        "the busy day after 15 days of history: the daily settlement read (on the first quiet poll "
        "after 14:00; a day's first read, its 3-, 7- and 14-day reads)",
        history_days=15,
    ),
]


def _settled(moment: datetime, clock: float) -> dict[str, Any] | None:
    """Octopus's settlement: 0.4 kWh each half-hour, cheap in 23:30-05:30; published after 30 hours."""
    if clock < moment.timestamp() + 30 * 3600:
        return None
    minutes = moment.hour * 60 + moment.minute
    night = minutes >= 23 * 60 + 30 or minutes < 5 * 60 + 30
    return smb_node(moment, home_night=0.4) if night else smb_node(moment, home_day=0.4)


def _live_history(
    scenario: Scenario, config: Path, now: list[datetime], runner: Callable[[Path, datetime], int]
) -> None:
    """A few cron runs a day over the days before (a quiet minute does nothing anyway), then a clean log."""
    for back in range(scenario.history_days, 0, -1):
        for hhmm in ("00:00", "12:00", "14:00", "14:03", "14:06"):
            now[0] = t(hhmm) - timedelta(days=back)
            runner(config, now[0])


@dataclass
class Report:
    scenario: str
    minutes: int
    octopus_per_hour: list[int]
    tesla_per_hour: list[int]
    posts: int
    repeated_posts: int
    max_posts_in_10_minutes: int
    tesla_in_retry_after: int
    latency_minutes: float | None
    settlement_reads: list[str]  # the simulated time of each measurements request
    exit_codes: dict[int, int]
    wall_seconds: float

    def lines(self) -> list[str]:
        hours = max(len(self.octopus_per_hour), 1)
        octopus, tesla = self.octopus_per_hour or [0], self.tesla_per_hour or [0]
        latency = f"{self.latency_minutes:g} min" if self.latency_minutes is not None else "n/a"
        return [
            f"{self.scenario}: {self.minutes} runs in {self.wall_seconds:.0f} s, exit codes {self.exit_codes}",
            f"  Octopus requests/h: mean {sum(octopus) / hours:.1f}, after the first hour {_steady(octopus):.1f}, "
            f"busiest hour {max(octopus)}; by hour {octopus}",
            f"  Tesla requests/h:   mean {sum(tesla) / hours:.2f}, after the first hour {_steady(tesla):.2f}, "
            f"busiest hour {max(tesla)}; by hour {tesla}",
            f"  posts: {self.posts} ({self.repeated_posts} repeating the previous body), "
            f"most in any 10 minutes: {self.max_posts_in_10_minutes}",
            f"  Tesla requests inside a Retry-After window: {self.tesla_in_retry_after}",
            f"  short-notice slot reached Tesla after: {latency}",
            f"  settlement reads (measurements requests): {len(self.settlement_reads)}"
            + (f" at {', '.join(self.settlement_reads)}" if self.settlement_reads else ""),
        ]


def _steady(per_hour: list[int]) -> float:
    """The mean without the first hour, which holds the first run's one-off requests."""
    rest = per_hour[1:]
    return sum(rest) / len(rest) if rest else float(sum(per_hour))


def _fresh_process(config: Path, at: datetime) -> int:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "io_powerwall_scheduler.py"), str(config), "--at", iso(at)],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode


def _in_process(config: Path, at: datetime) -> int:
    return run_cli(config, "--at", iso(at)).code


def simulate(scenario: Scenario, minutes: int, runner: Callable[[Path, datetime], int], start: str = "00:00") -> Report:
    kraken, tessie = FakeKraken(), FakeTessie()
    now = [t(start)]
    kraken.clock = tessie.clock = lambda: now[0].timestamp()  # noqa: PLW0108  # reads now[0] at each call
    tessie.readback_lag = scenario.readback_lag
    if scenario.tesla_outage:
        a, b, status, retry = scenario.tesla_outage
        tessie.outages = [Outage(t(a).timestamp(), t(b).timestamp(), status, retry)]
    if scenario.octopus_outage:
        a, b, status = scenario.octopus_outage
        kraken.outages = [Outage(t(a).timestamp(), t(b).timestamp(), status)]
    kraken.data.power_ups = [
        {"code": f"FE_{i}", "name": "Free", "startAt": iso(t(a)), "endAt": iso(t(b)), "isEventParticipant": True}
        for i, (a, b) in enumerate(scenario.power_ups)
    ]
    kraken.data.saving_events = [
        {
            "id": i,
            "code": f"EVENT_{i}",
            "rewardPerKwhInOctoPoints": 1600,
            "startAt": iso(t(a)),
            "endAt": iso(t(b)),
            "eventType": "TURN_DOWN",
            "targetRegion": [],
        }
        for i, (a, b) in enumerate(scenario.sessions)
    ]
    kraken.data.joined_event_ids = list(range(len(scenario.sessions)))
    kraken.data.settle = _settled
    kraken.start()
    tessie.start()
    codes: dict[int, int] = {}
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "config.txt"
            config.write_text(config_text(kraken, tessie), encoding="utf-8")
            config.chmod(0o600)
            if scenario.history_days:
                _live_history(scenario, config, now, _in_process)
                kraken.clear_log()
                tessie.requests.clear()
                tessie.posted.clear()
                tessie.post_times.clear()
            for step in range(minutes):
                now[0] = t(start) + timedelta(minutes=step)
                kraken.data.planned = [
                    {"start": iso(t(a)), "end": iso(t(b)), "type": "SMART"}
                    for a, b, known in scenario.slots
                    if t(known) <= now[0] < t(b)
                ]
                charging = any(t(a) <= now[0] < t(b) for a, b, _ in scenario.slots)
                kraken.data.device_states = {DEVICE_ID: SMART if charging else "SMART_CONTROL_CAPABLE"}
                code = runner(config, now[0])
                codes[code] = codes.get(code, 0) + 1
    finally:
        kraken.stop()
        tessie.stop()
    return _report(scenario, minutes, kraken, tessie, codes, time.perf_counter() - started, t(start))


def _report(
    scenario: Scenario,
    minutes: int,
    kraken: FakeKraken,
    tessie: FakeTessie,
    codes: dict[int, int],
    wall: float,
    start: datetime,
) -> Report:
    hours = max(1, minutes // 60)

    def per_hour(times: list[float]) -> list[int]:
        counts = [0] * hours
        for moment in times:
            index = int((moment - start.timestamp()) // 3600)
            if 0 <= index < hours:
                counts[index] += 1
        return counts

    octopus_times = [float(r["at"]) for r in kraken.requests]
    tesla_times = [float(r["at"]) for r in tessie.requests]
    posts = tessie.post_times
    bodies = [json.dumps(b, sort_keys=True) for b in tessie.posted]
    repeated = sum(1 for a, b in itertools.pairwise(bodies) if a == b)
    busiest_10 = max((sum(1 for p in posts if s <= p < s + 600) for s in posts), default=0)
    in_retry_after = 0
    if scenario.tesla_outage:
        a, b, _, retry = scenario.tesla_outage
        refused = [x for x in tesla_times if t(a).timestamp() <= x < t(b).timestamp()]
        in_retry_after = sum(1 for x in tesla_times for r in refused if r < x < r + retry)
    latency = None
    if scenario.short_notice:
        slot_start = t(scenario.short_notice)
        known = next(t(k) for a, _, k in scenario.slots if a == scenario.short_notice)
        index = slot_start.weekday() * 48 + slot_start.hour * 2 + slot_start.minute // 30
        for when, body in zip(posts, tessie.posted, strict=True):
            grid = price_grid(body["tou_settings"]["tariff_content_v2"])
            if when >= known.timestamp() and grid is not None and grid[index][0] == "OFF_PEAK":
                latency = (when - known.timestamp()) / 60
                break
    return Report(
        scenario=scenario.name,
        minutes=minutes,
        octopus_per_hour=per_hour(octopus_times),
        tesla_per_hour=per_hour(tesla_times),
        posts=len(posts),
        repeated_posts=repeated,
        max_posts_in_10_minutes=busiest_10,
        tesla_in_retry_after=in_retry_after,
        latency_minutes=latency,
        settlement_reads=[
            datetime.fromtimestamp(float(r["at"]), UTC).strftime("%H:%M")
            for r in kraken.requests
            if "measurements" in str(r.get("query", ""))
        ],
        exit_codes=codes,
        wall_seconds=wall,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=1440, help="simulated minutes (default a day, 1440)")
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS], help="default: all")
    parser.add_argument("--in-process", action="store_true", help="run in this process (fast; not as cron does)")
    args = parser.parse_args()
    runner = _in_process if args.in_process else _fresh_process
    for scenario in SCENARIOS:
        if args.scenario and scenario.name not in args.scenario:
            continue
        print(f"# {scenario.name}: {scenario.describe}", flush=True)
        report = simulate(scenario, args.minutes, runner)
        print("\n".join(report.lines()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
