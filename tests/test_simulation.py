"""Hours of cron runs against the fakes on a simulated clock (bench/simulate_day.py runs a whole day)."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from simulate_day import SCENARIOS, _in_process, simulate

BY_NAME = {s.name: s for s in SCENARIOS}


def test_a_quiet_stretch_keeps_to_the_budget() -> None:
    report = simulate(BY_NAME["quiet"], 120, _in_process, start="09:00")
    assert report.octopus_per_hour[1] <= 20, report.lines()  # after the first run's start-up requests
    assert report.tesla_per_hour[1] == 1  # the hourly check only
    assert report.posts == 1 and report.exit_codes == {0: 120}


def test_a_short_notice_slot_reaches_tesla_within_poll_minutes_plus_4() -> None:
    report = simulate(BY_NAME["lag"], 75, _in_process, start="16:30")
    assert report.latency_minutes is not None and report.latency_minutes <= 3 + 4, report.lines()
    assert report.repeated_posts == 0  # the 5-minute read-back lag causes no repost
    assert report.max_posts_in_10_minutes <= 3


def test_a_tesla_429_storm_is_honoured_and_the_newest_schedule_goes_out_after_it() -> None:
    report = simulate(BY_NAME["tesla429"], 80, _in_process, start="16:00")
    assert report.tesla_in_retry_after == 0, report.lines()
    assert report.latency_minutes is not None and report.latency_minutes <= 25  # the storm ends at 17:00
    assert report.max_posts_in_10_minutes <= 3
