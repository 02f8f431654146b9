"""Did it match my bill? Simulated days of cron runs against the fakes, then --report.

One allowance day (Tue 24 Nov 2026, 12:00 to 12:00, GMT) on the original Intelligent Octopus Go
(dispatch_trust = planned), with:
- slot A 14:00-15:00: planned, begun, billed cheap            -> agree
- slot B 16:00-16:30: planned, never begun; first billed at the day rate, revised to cheap 3 days on
                                                              -> phantom, then agree ("revised")
- slot C 17:00-17:30: planned, never begun, billed at the day rate -> phantom
- slot D 19:00-19:30: never planned; listed as completed afterwards, billed cheap -> missed
- the fixed window 23:30-05:30: billed cheap                   -> agree
- every other half-hour: the battery carries the house, 0 kWh  -> no usage
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Result
from fakes import DAY_PENCE, DEVICE_ID, NIGHT_PENCE, FakeKraken, FakeTessie, legacy_node, smb_node, stripped_node

DAY = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # the allowance day's start (GMT: local = UTC)
SLOTS = {"A": ("14:00", "15:00"), "B": ("16:00", "16:30"), "C": ("17:00", "17:30")}
LATE = ("19:00", "19:30")  # slot D
REVISED_FROM = DAY + timedelta(days=3, hours=12)  # Octopus reclassifies B from this time on
PUBLISHED_FROM = DAY + timedelta(days=1, hours=30)  # settlement lags about 30 hours
CHEAP, PEAK = 0.07, 0.30


def at(hhmm: str, days: int = 0) -> datetime:
    return DAY.replace(hour=int(hhmm[:2]), minute=int(hhmm[3:])) + timedelta(days=days)


def in_slot(moment: datetime, slot: tuple[str, str]) -> bool:
    return at(slot[0]) <= moment < at(slot[1])


def core(moment: datetime) -> bool:
    minutes = moment.hour * 60 + moment.minute
    return minutes >= 23 * 60 + 30 or minutes < 5 * 60 + 30


# What Octopus settles, half-hour by half-hour: (kWh, pence per kWh), as the fake serves it.
def bill_of(moment: datetime, clock: float) -> tuple[float, float] | None:
    if clock < PUBLISHED_FROM.timestamp():
        return None
    if in_slot(moment, SLOTS["A"]) or in_slot(moment, LATE):
        return 3.5, NIGHT_PENCE
    if in_slot(moment, SLOTS["B"]):
        return (2.5, NIGHT_PENCE) if clock >= REVISED_FROM.timestamp() else (2.5, DAY_PENCE)
    if in_slot(moment, SLOTS["C"]):
        return 2.0, DAY_PENCE
    if core(moment):
        return 1.0, NIGHT_PENCE
    return 0.0, DAY_PENCE


def settle(moment: datetime, clock: float) -> dict[str, Any] | None:
    bill = bill_of(moment, clock)
    if bill is None:
        return None
    kwh, pence = bill
    if pence == NIGHT_PENCE:
        ev = kwh if in_slot(moment, SLOTS["A"]) or in_slot(moment, LATE) or in_slot(moment, SLOTS["B"]) else 0.0
        return smb_node(moment, ev_off_peak=ev, home_night=kwh - ev)
    return smb_node(moment, home_day=kwh)


class Sim:
    """Cron runs at chosen moments; the fakes' clocks follow."""

    def __init__(self, kraken: FakeKraken, tessie: FakeTessie, config: Path, cli: Callable[..., Result]) -> None:
        self.now = DAY
        self.kraken, self.tessie, self.config, self.cli = kraken, tessie, config, cli
        kraken.clock = tessie.clock = lambda: self.now.timestamp()  # noqa: PLW0108  # reads self.now each call

    def run(self, moment: datetime, *args: str) -> Result:
        self.now = moment
        result = self.cli(self.config, "--at", moment.isoformat(), *args)
        assert result.code in (0, 1), result.log[-800:]
        return result


@pytest.fixture
def sim(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> Iterator[Sim]:
    kraken.data.settle = settle
    kraken.data.planned = [
        {"start": at(a).isoformat(), "end": at(b).isoformat(), "type": "SMART"} for a, b in SLOTS.values()
    ]
    yield Sim(kraken, tessie, make_config(), cli)


def live_the_day(sim: Sim) -> None:
    """The day of cron runs (only the minutes that matter; a quiet minute does nothing anyway)."""
    sim.run(at("12:00"))
    sim.kraken.data.device_states[DEVICE_ID] = "SMART_CONTROL_IN_PROGRESS"  # the car takes slot A
    for hhmm in ("14:05", "14:35"):
        sim.run(at(hhmm))
    sim.kraken.data.device_states[DEVICE_ID] = "SMART_CONTROL_CAPABLE"  # and never begins B or C
    sim.kraken.data.completed = [
        {
            "start": at("14:00").isoformat(),
            "end": at("15:00").isoformat(),
            "meta": {"source": "smart-charge", "location": "AT_HOME"},
        }
    ]
    for hhmm in ("15:10", "16:10", "17:10", "18:00"):
        sim.run(at(hhmm))
    # Slot D was never planned: Octopus lists it as completed only afterwards.
    sim.kraken.data.completed.append(
        {
            "start": at(LATE[0]).isoformat(),
            "end": at(LATE[1]).isoformat(),
            "meta": {"source": "smart-charge", "location": "AT_HOME"},
        }
    )
    sim.run(at("20:05"))


def read_settlement_on(sim: Sim, days: int, polls: int = 4) -> None:
    """Quiet polls after 14:00 on a later day (two reads a poll at most, oldest day first)."""
    for k in range(polls):
        sim.run(at("14:00", days) + timedelta(minutes=3 * k))


def report(sim: Sim, days: int) -> dict[str, Any]:
    result = sim.cli(sim.config, "--report", "--days", str(days), "--json", "--at", sim.now.isoformat())
    assert result.code == 0, result.stderr
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def the_day(body: dict[str, Any]) -> dict[str, Any]:
    """The scenario's day in a report (days come newest first: its place depends on the time)."""
    days: list[dict[str, Any]] = [d for d in body["days"] if d["start"] == DAY.isoformat()]
    assert len(days) == 1, [d["start"] for d in body["days"]]
    return days[0]


def oracle(final: bool) -> list[dict[str, Any]]:
    """Each half-hour of the day, worked out from the scenario alone (not from the scheduler's code)."""
    clock = (DAY + timedelta(days=9)).timestamp() if final else PUBLISHED_FROM.timestamp()
    out = []
    moment = DAY
    while moment < DAY + timedelta(days=1):
        said_cheap = core(moment) or any(in_slot(moment, slot) for slot in SLOTS.values())
        kwh, pence = bill_of(moment, clock) or (0.0, 0.0)
        billed_cheap = pence / 100 < (CHEAP + PEAK) / 2
        if kwh == 0:
            verdict, gbp = "no usage", 0.0
        elif said_cheap and not billed_cheap:
            verdict, gbp = "phantom", kwh * (pence / 100 - CHEAP)
        elif not said_cheap and billed_cheap:
            verdict, gbp = "missed", kwh * (PEAK - pence / 100)
        else:
            verdict, gbp = "agree", 0.0
        out.append(
            {
                "start": moment.isoformat(),
                "posted": "cheap" if said_cheap else "peak",
                "verdict": verdict,
                "import_kwh": kwh,
                "gbp": gbp,
            }
        )
        moment += timedelta(minutes=30)
    return out


def check_day(day: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    got = day["half_hours"]
    assert [h["start"] for h in got] == [e["start"] for e in expected]
    for h, e in zip(got, expected, strict=True):
        assert (h["start"], h["posted"], h["verdict"]) == (e["start"], e["posted"], e["verdict"])
        assert h["import_kwh"] == pytest.approx(e["import_kwh"]) and h["gbp"] == pytest.approx(e["gbp"], abs=1e-3)
    counts = {v: sum(1 for e in expected if e["verdict"] == v) for v in ("agree", "phantom", "missed", "unknown")}
    summary = day["summary"]
    assert {k: summary[k] for k in counts} == counts
    assert summary["phantom_gbp"] == pytest.approx(
        sum(e["gbp"] for e in expected if e["verdict"] == "phantom"), abs=0.01
    )
    assert summary["missed_gbp"] == pytest.approx(sum(e["gbp"] for e in expected if e["verdict"] == "missed"), abs=0.01)


def test_the_report_follows_the_bill_through_its_revision_to_the_final_day(sim: Sim) -> None:
    live_the_day(sim)
    assert sim.run(at("14:00", 2)).code == 0  # the day ended 26 hours ago: not read yet
    assert the_day(report(sim, 2))["status"] == "missing"
    read_settlement_on(sim, 3)  # 36 hours after it ended, on the next quiet poll after 14:00
    early = the_day(report(sim, 3))
    assert early["status"] == "provisional"
    check_day(early, oracle(final=False))
    b = next(h for h in early["half_hours"] if h["start"] == at("16:00").isoformat())
    assert (b["reason"], b["billed"], b["verdict"]) == ("planned", "standard", "phantom")
    d = next(h for h in early["half_hours"] if h["start"] == at("19:00").isoformat())
    assert (d["posted"], d["billed"], d["verdict"]) == ("peak", "cheap", "missed")  # posted cheap only afterwards

    read_settlement_on(sim, 4)  # about 3 days after: Octopus has revised slot B
    assert "revised 1 half-hour" in the_day(report(sim, 4))["note"]
    read_settlement_on(sim, 8)  # 7 days after: final
    final = report(sim, 9)
    day = the_day(final)
    assert day["status"] == "final"
    check_day(day, oracle(final=True))
    assert final["suggestion"] is not None
    # The independent sum: slot B (billed cheap, never begun) costs "started" its peak; C costs "planned".
    started_loss = 2.5 * (PEAK - NIGHT_PENCE / 100)
    planned_loss = 2.0 * (DAY_PENCE / 100 - CHEAP)
    assert final["suggestion"]["dispatch_trust"] == ("planned" if planned_loss <= started_loss else "started")
    assert final["suggestion"]["gbp"] == pytest.approx(abs(started_loss - planned_loss), abs=0.01)
    assert final["suggestion"]["days"] >= 1


def test_the_text_report_shows_the_strips_counts_and_money(sim: Sim) -> None:
    live_the_day(sim)
    read_settlement_on(sim, 3)
    result = sim.cli(sim.config, "--report", "--days", "3", "--at", (DAY + timedelta(days=3, hours=3)).isoformat())
    assert result.code == 0, result.stderr
    text = result.stdout
    assert "Did it match my bill?" in text
    block = text.split("Tue 24 Nov 12:00 - Wed 25 Nov 12:00  provisional\n")[1].split("\n\n")[0].splitlines()
    strips = {line.split()[0]: line[12:] for line in block if line.split()[0] in ("posted", "billed", "verdict")}
    assert len(strips["posted"]) == len(strips["billed"]) == len(strips["verdict"]) == 48
    assert strips["posted"][4:11] == "..##.#."  # 14:00 on: slot A, 15:00 and 15:30 peak, B, 16:30 peak, C
    assert strips["billed"][4:6] == ".." and strips["billed"][8] == "#" and strips["billed"][14] == "."
    assert strips["verdict"][4:6] == "==" and strips["verdict"][8] == "P" and strips["verdict"][14] == "M"  # A, B, D
    counts = next(line for line in block if line.startswith("  agree"))
    assert "phantom 2 (£" in counts and "missed 1 (£" in counts
    assert "Suggestion: none yet" in text  # nothing final yet
    assert sim.tessie.posted and all(r["method"] != "POST" for r in sim.tessie.requests[-1:])


def test_the_daily_read_keeps_within_the_octopus_budget_and_never_delays_a_post(sim: Sim) -> None:
    live_the_day(sim)
    sim.kraken.clear_log()
    read_settlement_on(sim, 3)
    reads = [r for r in sim.kraken.requests if "account" in r["operations"] and "properties" in r["query"]]
    assert len(reads) == 1  # one day due, one request
    hour = [r for r in sim.kraken.requests if r["at"] > sim.now.timestamp() - 3600]
    assert len(hour) <= 20
    # While a slot is under way nothing but the tariff work happens, whatever is due.
    sim.kraken.clear_log()
    sim.kraken.data.planned = [
        {"start": at("15:00", 4).isoformat(), "end": at("16:00", 4).isoformat(), "type": "SMART"}
    ]
    sim.run(at("15:05", 4))
    assert not [r for r in sim.kraken.requests if "properties" in r.get("query", "")]


def test_the_report_fetches_a_due_day_itself_and_posts_nothing(sim: Sim) -> None:
    live_the_day(sim)
    sim.kraken.clear_log()
    posts = len(sim.tessie.posted)
    sim.now = at("15:00", 3)  # no cron run since the day became due
    day = the_day(report(sim, 3))
    assert day["status"] == "provisional"
    check_day(day, oracle(final=False))
    assert len([r for r in sim.kraken.requests if "measurements" in r.get("query", "")]) == 1
    assert len(sim.tessie.posted) == posts


def test_a_backlog_of_days_is_read_within_the_hourly_budget(sim: Sim) -> None:
    """After a fortnight's gap every day is due at once: at most two reads an hour, so the polls keep
    their cadence and, past the first run's one-off requests, the hour stays within 20 requests."""
    sim.run(DAY)
    sim.run(at("12:00", 14))
    sim.kraken.clear_log()
    start = at("14:00", 15)
    for minute in range(150):
        sim.run(start + timedelta(minutes=minute))
    times = sorted(float(r["at"]) for r in sim.kraken.requests)
    reads = sorted(float(r["at"]) for r in sim.kraken.requests if "measurements" in r.get("query", ""))

    def busiest(moments: list[float], since: float) -> int:
        return max(sum(1 for u in moments if t <= u < t + 3600) for t in moments if t >= since)

    assert busiest(reads, 0) == 2  # two an hour, no more
    assert len(reads) >= 4  # and the backlog is being worked through
    assert busiest(times, (start + timedelta(hours=1)).timestamp()) <= 20
    polls = sorted(float(r["at"]) for r in sim.kraken.requests if "flexPlannedDispatches" in r["operations"])
    assert max(b - a for a, b in itertools.pairwise(polls)) <= 4 * 60  # polls stretched by a minute at most


# ---- odd days: each gives a clear line, never a traceback or a failed run --------------------------


def quiet_polls(sim: Sim, start: datetime, count: int = 3) -> None:
    for k in range(count):
        sim.run(start + timedelta(minutes=3 * k))


def test_a_dst_night_has_50_half_hours_judged_one_by_one(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    from zoneinfo import ZoneInfo

    london = ZoneInfo("Europe/London")
    start = datetime(2026, 10, 24, 12, 0, tzinfo=london)  # Sat 12:00 BST; the clocks go back at 02:00 BST

    def settle_dst(moment: datetime, clock: float) -> dict[str, Any]:
        local = moment.astimezone(london)
        minutes = local.hour * 60 + local.minute
        night = minutes >= 23 * 60 + 30 or minutes < 5 * 60 + 30
        return smb_node(moment, home_night=1.0) if night else smb_node(moment)

    kraken.data.settle = settle_dst
    sim = Sim(kraken, tessie, make_config(), cli)
    sim.run(start.astimezone(UTC))
    quiet_polls(sim, datetime(2026, 10, 27, 14, 0, tzinfo=london))
    result = cli(sim.config, "--report", "--days", "3", "--json", "--at", sim.now.isoformat())
    day = next(d for d in json.loads(result.stdout)["days"] if d["start"] == start.isoformat())
    rows = day["half_hours"]
    assert len(rows) == 50 and day["end"] == "2026-10-25T12:00:00+00:00"
    repeated = [r for r in rows if r["start"][11:16] in ("01:00", "01:30")]
    assert len(repeated) == 4 and {r["posted"] for r in repeated} == {"cheap"}  # the hour that comes twice
    assert {r["verdict"] for r in rows} == {"agree", "no usage"}
    assert day["summary"]["agree"] == 14  # 23:30-05:30 local is 14 half-hours that night, not 12


def test_odd_billing_data_is_said_plainly(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """No data yet, then unpriced half-hours and a label of no family we know: unknown, with a note."""
    published = [False]

    def odd(moment: datetime, clock: float) -> dict[str, Any] | None:
        if not published[0]:
            return None
        if moment.hour == 14:
            return stripped_node(moment, 3.0)  # Octopus stripped the statistics under load
        if moment.hour == 15:
            return legacy_node(moment, 2.0, label="SOMETHING_NEW", pence=6.9)
        return smb_node(moment)

    kraken.data.settle = odd
    sim = Sim(kraken, tessie, make_config(), cli)
    sim.run(DAY)
    quiet_polls(sim, at("14:00", 3))
    empty = the_day(report(sim, 3))
    assert empty["status"] == "missing" and "no billing data yet" in empty["note"]
    published[0] = True
    quiet_polls(sim, at("14:00", 4))
    day = the_day(report(sim, 4))
    assert day["status"] == "provisional" and "not priced yet" in day["note"]
    unknown = [h for h in day["half_hours"] if h["verdict"] == "unknown"]
    assert len(unknown) == 4 and {h["billed"] for h in unknown} == {"unknown"}


def test_a_revision_after_the_day_was_final_is_noticed(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    revised_at = (DAY + timedelta(days=10)).timestamp()

    def late(moment: datetime, clock: float) -> dict[str, Any]:
        if moment == at("16:00"):
            return smb_node(moment, ev_off_peak=2.0) if clock >= revised_at else smb_node(moment, home_day=2.0)
        return smb_node(moment)

    kraken.data.settle = late
    kraken.data.planned = [{"start": at("16:00").isoformat(), "end": at("16:30").isoformat(), "type": "SMART"}]
    sim = Sim(kraken, tessie, make_config(), cli)
    sim.run(DAY)
    for days in (3, 4, 8, 15):
        quiet_polls(sim, at("14:00", days), count=2)
    day = the_day(report(sim, 15))
    assert day["status"] == "final" and "after the day was final" in day["note"]
    slot = next(h for h in day["half_hours"] if h["start"] == at("16:00").isoformat())
    assert slot["verdict"] == "agree"  # the newest read counts


def test_an_export_only_account_says_so(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.has_import = False
    kraken.data.settle = lambda moment, clock: smb_node(moment, home_day=1.0)
    sim = Sim(kraken, tessie, make_config(), cli)
    sim.run(DAY)
    quiet_polls(sim, at("14:00", 3))
    day = the_day(report(sim, 3))
    assert day["status"] == "missing" and "no import meter" in day["note"]


def test_a_replaced_import_meter_is_read_from_its_new_property(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    new_mpan = "1000000000099"
    kraken.data.replaced_import = (new_mpan, at("12:00", 1).isoformat())
    kraken.data.properties_mpans = [["1000000000000"], [new_mpan]]  # a new property holds the new meter
    kraken.data.settle = lambda moment, clock: smb_node(moment, home_night=1.0)
    sim = Sim(kraken, tessie, make_config(), cli)
    sim.run(DAY)
    quiet_polls(sim, at("14:00", 4))
    second = next(d for d in report(sim, 4)["days"] if d["start"] == at("12:00", 1).isoformat())
    assert second["status"] == "provisional" and all(h["billed"] == "cheap" for h in second["half_hours"])
    assert new_mpan in {str(r.get("variables", {}).get("mpan")) for r in kraken.requests}


def test_a_tariff_change_mid_day_judges_each_half_hour_by_the_prices_then_live(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """At 20:00 the peak rate rises to 0.40: a half-hour billed at 0.20 was standard under 0.07/0.30
    (above 0.185) and cheap under 0.07/0.40 (below 0.235)."""
    kraken.data.settle = lambda moment, clock: legacy_node(moment, 1.0, label="STANDARD_RATE", pence=20.0)
    config = make_config()
    sim = Sim(kraken, tessie, config, cli)
    sim.run(DAY)
    config.write_text(config.read_text().replace("import_peak = 0.30", "import_peak = 0.40"))
    sim.run(at("20:00"))
    quiet_polls(sim, at("14:00", 3))
    day = the_day(report(sim, 3))
    by_time = {h["start"][11:16]: h for h in day["half_hours"]}
    assert (by_time["19:30"]["posted"], by_time["19:30"]["billed"]) == ("peak", "standard")
    assert (by_time["20:00"]["posted"], by_time["20:00"]["billed"], by_time["20:00"]["verdict"]) == (
        "peak",
        "cheap",
        "missed",
    )
    assert by_time["20:00"]["gbp"] == pytest.approx(1.0 * (0.40 - 0.20))


def test_history_older_than_keep_days_is_dropped_on_the_daily_read(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    import sqlite3

    kraken.data.settle = lambda moment, clock: smb_node(moment, home_night=1.0)
    config = make_config(history={"keep_days": "30"})
    sim = Sim(kraken, tessie, config, cli)
    sim.run(DAY)
    quiet_polls(sim, at("14:00", 3))

    def oldest() -> tuple[str | None, str | None]:
        with sqlite3.connect(str(config) + ".db") as db:
            settled = db.execute("SELECT min(start) FROM settlement").fetchone()[0]
            day = db.execute("SELECT min(day) FROM settled_days").fetchone()[0]
        return settled, day

    assert oldest() == (at("12:00").isoformat(), DAY.date().isoformat())
    sim.run(at("12:00", 40))  # the scheduler carries on telling the Powerwall
    quiet_polls(sim, at("14:00", 42))
    settled, day = oldest()
    cutoff = at("14:00", 42) - timedelta(days=30)
    assert settled is not None and settled >= cutoff.isoformat()
    assert day is not None and day >= cutoff.date().isoformat()
    pruned = the_day(report(sim, 45))
    assert pruned["status"] == "missing" and "keep_days = 30" in pruned["note"]


def test_a_day_the_scheduler_was_off_for_is_said_never_read(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.settle = lambda moment, clock: smb_node(moment, home_night=1.0)
    sim = Sim(kraken, tessie, make_config(), cli)
    sim.run(DAY)  # then the machine is off for three weeks
    sim.now = at("14:00", 20)
    day = the_day(report(sim, 20))
    assert day["status"] == "missing" and "never read from Octopus" in day["note"]


def test_an_outage_during_the_report_is_said_beside_parseable_json(sim: Sim) -> None:
    from fakes import Outage

    live_the_day(sim)
    sim.now = at("15:00", 3)
    sim.kraken.outages = [Outage(sim.now.timestamp() - 60, sim.now.timestamp() + 3600, 503)]
    result = sim.cli(sim.config, "--report", "--days", "3", "--json", "--at", sim.now.isoformat())
    assert result.code == 0, result.stderr
    assert the_day(json.loads(result.stdout))["status"] == "missing"
    assert "Could not read every day's bill from Octopus" in result.stderr
    assert "Traceback" not in result.stderr + result.log


def test_a_re_read_writes_only_what_octopus_changed(sim: Sim) -> None:
    import sqlite3

    live_the_day(sim)
    for days in (3, 4, 8):
        read_settlement_on(sim, days)
    with sqlite3.connect(str(sim.config) + ".db") as db:
        rows = db.execute(
            "SELECT start, count(*) FROM settlement WHERE start >= ? AND start < ? GROUP BY start",
            (at("12:00").isoformat(), at("12:00", 1).isoformat()),
        ).fetchall()
        reads = json.loads(
            db.execute("SELECT reads FROM settled_days WHERE day = ?", (DAY.date().isoformat(),)).fetchone()[0]
        )
    assert len(reads) == 3  # read three times
    assert len(rows) == 48
    assert {start for start, copies in rows if copies > 1} == {at("16:00").isoformat()}  # only slot B was revised
