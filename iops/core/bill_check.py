"""Did the bill follow what we told the Powerwall? Pure: what Octopus settled for each half-hour,
against the tariff that was live at Tesla, to one verdict and the money at stake.

A half-hour is banded cheap or standard by the price it was charged per kWh against the rates we
posted (between the off-peak and the peak price), never by the text of its label: the labels
change (IOG-SMB's four buckets, their 2026-09-28 display names, legacy TOU_BUCKET_COST), and a
legacy night half-hour can read STANDARD at the night price. A label of no family we know makes
the half-hour "unknown": it is never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from iops.core.tariff import OFF_PEAK, ON_PEAK, PARTIAL_PEAK, SUPER_OFF_PEAK

Posted = Literal["cheap", "peak", "free", "session"]
Billed = Literal["cheap", "standard", "unknown"]
Verdict = Literal["agree", "phantom", "missed", "no usage", "unknown"]

POSTED: Mapping[str, Posted] = {OFF_PEAK: "cheap", ON_PEAK: "peak", SUPER_OFF_PEAK: "free", PARTIAL_PEAK: "session"}
ENERGY_TYPES = frozenset({"CONSUMPTION_COST", "TOU_BUCKET_COST"})
# Label families seen in the settlement (octopus_settlement.md §2.7), matched within the label so that a
# region suffix (_H, _B) or a prefix does not matter. Order matters: OFF_PEAK before PEAK.
LABEL_FAMILIES = (
    "EV_DEVICE_OFF_PEAK",
    "EV_DEVICE_PEAK",
    "ECO7_NIGHT",
    "ECO7_DAY",
    "EV LOW RATE",
    "EV STANDARD RATE",
    "HOME LOW RATE",
    "HOME STANDARD RATE",
    "OFF_PEAK",
    "STANDARD_RATE",
    "STANDARD",
    "CONSUMPTION",
)
ENERGY_FLOOR_KWH = 0.01  # a line with less than this is not energy drawn (all four buckets are listed)
ALLOWANCE_DAY_STARTS = time(12, 0)
HALF_HOUR = timedelta(minutes=30)
FINAL_AFTER = timedelta(days=7)  # Octopus revises for days: a day read this long after it ended is final
CHECKED_AFTER = timedelta(days=14)  # one last read, to notice a revision after the day was final


@dataclass(frozen=True)
class Line:
    """One energy line of a settled half-hour: its label, kWh and the price charged (pence/kWh, with VAT)."""

    label: str | None
    kwh: float
    pence_per_kwh: float | None


@dataclass(frozen=True)
class Settled:
    """What Octopus settled for one half-hour of the import meter."""

    start: datetime  # UTC
    kwh: float
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Told:
    """What the Powerwall was told for one half-hour: the label live at Tesla, its prices, and why."""

    label: str
    buy: float  # GBP/kWh
    sell: float
    reason: str  # core, peak, planned, started, completed, not-started, awaiting, over-allowance, power-up, ...
    cheap_price: float  # the off-peak buy price of the same tariff (for the money at stake)
    peak_price: float  # its peak buy price


@dataclass(frozen=True)
class Row:
    """One half-hour of the report."""

    start: datetime  # UTC
    posted: Posted | None
    reason: str
    billed: Billed | None  # None: nothing settled (yet)
    import_kwh: float | None
    verdict: Verdict
    gbp: float  # what the verdict cost or forwent (phantom, missed); 0 otherwise
    fact: str = ""  # the dispatch as seen (not-started, started, completed ...), for the trust suggestion
    price: float | None = None  # the price charged, GBP/kWh with VAT
    cheap_price: float = 0.0  # the off-peak and peak prices we posted then
    peak_price: float = 0.0


SYMBOLS: Mapping[str, str] = {ON_PEAK: "#", OFF_PEAK: ".", SUPER_OFF_PEAK: "0", PARTIAL_PEAK: "!"}
LABELS: Mapping[str, str] = {symbol: label for label, symbol in SYMBOLS.items()}
LABEL_REASONS: Mapping[str, str] = {SUPER_OFF_PEAK: "power-up", PARTIAL_PEAK: "saving-session", ON_PEAK: "peak"}


@dataclass(frozen=True)
class ToldVersion:
    """A tariff Tesla accepted, as the history keeps it: a week (Monday first) of half-hour symbols,
    the prices per label, and why each half-hour was what it was (keyed "YYYY-MM-DD HH:MM", local)."""

    at: float  # when Tesla accepted it (Unix time)
    kind: str  # "ours", or "theirs" (the user's own tariff, put back)
    digest: str
    grid: tuple[str, ...]  # 7 strings of 48 symbols (SYMBOLS)
    prices: Mapping[str, tuple[float, float]]  # label -> (buy, sell), GBP/kWh
    reasons: Mapping[str, str]


def wall_key(moment: datetime, tz: ZoneInfo) -> str:
    """The local "YYYY-MM-DD HH:MM" of a half-hour start: the key of a version's reasons."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def version_of(
    at: float,
    digest: str,
    grid: Sequence[Sequence[str]],
    prices: Mapping[str, tuple[float, float]],
    reasons: Mapping[str, str],
    kind: str = "ours",
) -> ToldVersion:
    """A version from a week of labels (a WeekPlan's grid, or a read-back tariff's)."""
    symbols = tuple("".join(SYMBOLS.get(label, "?") for label in day) for day in grid)
    return ToldVersion(at, kind, digest, symbols, dict(prices), dict(reasons))


def told_for(versions: Sequence[ToldVersion], start: datetime, tz: ZoneInfo, core: tuple[time, time]) -> Told | None:
    """What the Powerwall was told for the half-hour starting at ``start``: the version accepted last
    before the half-hour's middle (a post in its first quarter-hour speaks for it). The week repeats,
    so an old version still names every weekday. None before the history began."""
    middle = (start + HALF_HOUR / 2).timestamp()
    live = None
    for version in versions:  # oldest first
        if version.at <= middle:
            live = version
    if live is None:
        return None
    local = start.astimezone(tz)
    index = local.hour * 2 + local.minute // 30
    try:
        label = LABELS[live.grid[local.weekday()][index]]
    except (IndexError, KeyError):
        return None  # a version of a shape the history does not know: nothing told
    buy, sell = live.prices.get(label, (0.0, 0.0))
    reason = live.reasons.get(wall_key(start, tz)) or _plain_reason(label, index, core, live.kind)
    cheap = live.prices.get(OFF_PEAK, (buy, sell))[0]
    peak = live.prices.get(ON_PEAK, (buy, sell))[0]
    return Told(label, buy, sell, reason, cheap, peak)


def _plain_reason(label: str, index: int, core: tuple[time, time], kind: str) -> str:
    if kind != "ours":
        return "your own tariff"
    if label == OFF_PEAK:
        lo, hi = core[0].hour * 2 + core[0].minute // 30, core[1].hour * 2 + core[1].minute // 30
        inside = lo <= index < hi if lo <= hi else index >= lo or index < hi
        return "core" if inside else "slot"
    return LABEL_REASONS.get(label, "peak")


def band(settled: Settled, cheap_price: float, peak_price: float) -> tuple[Billed, float | None]:
    """How a half-hour was billed, and the price charged (GBP/kWh, with VAT), from its energy lines.

    Cheap when every line with energy was charged at or below the midpoint of the rates we posted,
    standard when any was above it; unknown when a line's label is of no family we know, or when
    energy was drawn but no line priced (Octopus strips statistics under load: retried later).
    """
    threshold = (cheap_price + peak_price) / 2
    labelled = [line for line in settled.lines if line.label]
    lines = labelled or list(settled.lines)  # an unlabelled total alongside labelled lines is the same energy
    if any(line.label and not _known(line.label) for line in lines):
        return "unknown", None
    drawn = [line for line in lines if line.kwh > ENERGY_FLOOR_KWH]
    if not drawn or any(line.pence_per_kwh is None for line in drawn):
        return "unknown", None
    kwh = sum(line.kwh for line in drawn)
    price = sum(line.kwh * (line.pence_per_kwh or 0.0) for line in drawn) / kwh / 100
    standard = any((line.pence_per_kwh or 0.0) / 100 > threshold for line in drawn)
    return ("standard" if standard else "cheap"), price


def _known(label: str) -> bool:
    upper = label.upper()
    return any(family in upper for family in LABEL_FAMILIES)


def judge(start: datetime, told: Told | None, settled: Settled | None, fact: str = "") -> Row:
    """One half-hour's verdict and the money at stake.

    phantom: we said cheap (or free), it was billed standard: kWh x (billed price - the cheap price we posted).
    missed: it was billed cheap, we said peak: kWh x (the peak price we posted - billed price).
    """
    posted = POSTED.get(told.label) if told else None
    reason = told.reason if told else ""
    prices = {"cheap_price": told.cheap_price, "peak_price": told.peak_price} if told else {}
    if settled is None:
        return Row(start, posted, reason, None, None, "unknown", 0.0, fact, **prices)
    if settled.kwh <= ENERGY_FLOOR_KWH:
        return Row(start, posted, reason, "unknown", settled.kwh, "no usage", 0.0, fact, **prices)
    if told is None:  # before the history began, or a gap in it: nothing to compare with
        return Row(start, None, "", "unknown", settled.kwh, "unknown", 0.0, fact)
    billed, price = band(settled, told.cheap_price, told.peak_price)
    row = Row(
        start, posted, reason, billed, settled.kwh, "unknown", 0.0, fact, price, told.cheap_price, told.peak_price
    )
    if billed == "unknown" or price is None:
        return row
    if posted in ("cheap", "free") and billed == "standard":
        return replace(row, verdict="phantom", gbp=settled.kwh * (price - told.cheap_price))
    if posted in ("peak", "session") and billed == "cheap":
        return replace(row, verdict="missed", gbp=settled.kwh * (told.peak_price - price))
    return replace(row, verdict="agree")


# ---- days ----------------------------------------------------------------------------------------


def allowance_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The allowance day named by ``day``: 12:00 local to 12:00 local the next day (UTC-aware)."""
    start = datetime.combine(day, ALLOWANCE_DAY_STARTS, tz)
    end = datetime.combine(day + timedelta(days=1), ALLOWANCE_DAY_STARTS, tz)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def half_hours(start: datetime, end: datetime) -> list[datetime]:
    """Every half-hour from start to end, by instant: 48 a day, 46 and 50 on clock-change days."""
    out = []
    moment = start
    while moment < end:
        out.append(moment)
        moment += HALF_HOUR
    return out


def ended_days(now: datetime, tz: ZoneInfo, count: int) -> list[date]:
    """The last ``count`` allowance days that ended before now, newest first."""
    local = now.astimezone(tz)
    newest = local.date() - timedelta(days=1 if local.time() >= ALLOWANCE_DAY_STARTS else 2)
    return [newest - timedelta(days=k) for k in range(count)]


def due_for_settlement(
    day: date, tz: ZoneInfo, now: datetime, reads: Sequence[datetime], *, first_after: timedelta
) -> bool:
    """Whether a day's settlement should be read now: first ``first_after`` after it ended, again about
    3 and 7 days after (Octopus revises; read 7 days on, the day is final), and once more 14 days on,
    to notice a revision after it was final. Never after that."""
    _, end = allowance_day_bounds(day, tz)
    for age in (first_after, timedelta(days=3), FINAL_AFTER, CHECKED_AFTER):
        if now >= end + age and not any(read >= end + age for read in reads):
            return True
    return False


def is_final(day: date, tz: ZoneInfo, reads: Iterable[datetime]) -> bool:
    _, end = allowance_day_bounds(day, tz)
    return any(read >= end + FINAL_AFTER for read in reads)


# ---- the summary and the trust suggestion --------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """One day's (or several days') counts and money."""

    agree: int = 0
    phantom: int = 0
    missed: int = 0
    no_usage: int = 0
    unknown: int = 0
    phantom_gbp: float = 0.0
    missed_gbp: float = 0.0

    @property
    def agreement(self) -> float | None:
        """Share of the half-hours with usage and a verdict that agree (None when there are none)."""
        judged = self.agree + self.phantom + self.missed
        return self.agree / judged if judged else None


def summarise(rows: Iterable[Row]) -> Summary:
    counts = {"agree": 0, "phantom": 0, "missed": 0, "no usage": 0, "unknown": 0}
    money = {"phantom": 0.0, "missed": 0.0}
    for row in rows:
        counts[row.verdict] += 1
        if row.verdict in money:
            money[row.verdict] += row.gbp
    return Summary(
        counts["agree"],
        counts["phantom"],
        counts["missed"],
        counts["no usage"],
        counts["unknown"],
        round(money["phantom"], 2),
        round(money["missed"], 2),
    )


def add(a: Summary, b: Summary) -> Summary:
    return Summary(
        a.agree + b.agree,
        a.phantom + b.phantom,
        a.missed + b.missed,
        a.no_usage + b.no_usage,
        a.unknown + b.unknown,
        round(a.phantom_gbp + b.phantom_gbp, 2),
        round(a.missed_gbp + b.missed_gbp, 2),
    )


@dataclass(frozen=True)
class Suggestion:
    """Which dispatch_trust would have agreed with the bill more often, over final days."""

    dispatch_trust: Literal["planned", "started"]
    days: int  # the final days it rests on
    gbp: float  # what it would have saved over them: the phantom £ it avoids minus the missed £ it adds
    evidence: int  # half-hours where the two settings differ and the bill tells


def suggest(days: Sequence[Sequence[Row]]) -> Suggestion | None:
    """From final days: the two settings differ only where a slot was planned but the car never began
    it (fact "not-started"): "planned" posts those cheap, "started" posts them peak. Billed standard,
    "planned" was a phantom there; billed cheap, "started" missed it. None without such evidence."""
    planned_loss = started_loss = 0.0
    evidence = 0
    for rows in days:
        for row in rows:
            kwh, price = row.import_kwh, row.price
            if row.fact != "not-started" or kwh is None or price is None or row.billed not in ("cheap", "standard"):
                continue
            evidence += 1
            if row.billed == "standard":
                planned_loss += kwh * (price - row.cheap_price)
            else:
                started_loss += kwh * (row.peak_price - price)
    if not evidence:
        return None
    if planned_loss <= started_loss:
        return Suggestion("planned", len(days), round(started_loss - planned_loss, 2), evidence)
    return Suggestion("started", len(days), round(planned_loss - started_loss, 2), evidence)
