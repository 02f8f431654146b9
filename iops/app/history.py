"""The history the bill check rests on, kept in the durable records as a run goes:

- each tariff Tesla accepted (ours, or the user's own put back), with why each half-hour was what it was;
- what Octopus said of the dispatches, when it changed (it keeps only about a day of completed ones);
- each half-hour's dispatch as seen, whatever dispatch_trust is in force (for the trust suggestion).

Each is written only when something changed: a quiet day writes nothing (the SD card).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from iops.core.bill_check import ToldVersion, version_of

if TYPE_CHECKING:
    from iops.app.gather import Built
    from iops.app.store import Store
    from iops.core.dispatch_rules import DispatchData, DispatchDecision, Reason

FACTS = frozenset({"not-started", "started", "awaiting", "completed", "over-allowance"})
FACTS_AHEAD = timedelta(hours=36)  # beyond this a plan is too young to be worth a row


def version_from_built(built: Built, at: float) -> ToldVersion:
    """The version of a tariff this run built: its plan, and the reasons the rules gave."""
    return version_of(at, built.digest, built.plan.grid, built.plan.prices, by_wall(built.reasons))


def by_wall(reasons: Mapping[tuple[date, int], Reason]) -> dict[str, str]:
    """The rules' reasons (keyed by local date and half-hour) keyed as the history keeps them."""
    return {
        f"{day.isoformat()} {index // 2:02d}:{index % 2 * 30:02d}": str(why) for (day, index), why in reasons.items()
    }


def version_from_tariff(
    tariff: Mapping[str, Any], digest: str, at: float, reasons: Mapping[str, str]
) -> ToldVersion | None:
    """The version of a tariff posted again from the state (a repost or a pending one): its week read
    back from the tariff itself, and the reasons kept when it was first posted."""
    from iops.core.tariff import price_grid

    grid = price_grid(tariff)
    if grid is None:
        return None
    days = [[label for label, _, _ in grid[d * 48 : (d + 1) * 48]] for d in range(7)]
    prices = {label: (buy, sell) for label, buy, sell in grid}
    return version_of(at, digest, days, prices, reasons)


def version_of_theirs(
    tariff: Mapping[str, Any], at: float, cheap_price: float, peak_price: float
) -> ToldVersion | None:
    """The user's own tariff put back: each half-hour counted cheap or peak by its buy price against
    the midpoint of our rates (its labels are theirs, not ours)."""
    from iops.core.tariff import OFF_PEAK, ON_PEAK, price_grid

    grid = price_grid(tariff)
    if grid is None:
        return None
    threshold = (cheap_price + peak_price) / 2
    labels = [OFF_PEAK if buy <= threshold else ON_PEAK for _, buy, _ in grid]
    days = [labels[d * 48 : (d + 1) * 48] for d in range(7)]
    cheap = [(buy, sell) for _, buy, sell in grid if buy <= threshold]
    dear = [(buy, sell) for _, buy, sell in grid if buy > threshold]
    prices = {OFF_PEAK: min(cheap) if cheap else (cheap_price, 0.0), ON_PEAK: max(dear) if dear else (peak_price, 0.0)}
    return version_of(at, "", days, prices, {}, kind="theirs")


def record_poll(store: Store, data: DispatchData, facts: DispatchDecision, now: datetime) -> None:
    """What a poll saw: Octopus's dispatch answer (when it changed), and each half-hour's dispatch fact."""
    snapshot = {
        "planned": sorted([d.device, d.slot.start.isoformat(), d.slot.end.isoformat()] for d in data.planned),
        "completed": sorted([s.start.isoformat(), s.end.isoformat()] for s in data.completed),
        "states": dict(sorted(data.device_states.items())),
    }
    store.record_dispatches(snapshot, now.timestamp())
    horizon = now + FACTS_AHEAD
    rows = {m.isoformat(): str(why) for m, why in facts.by_instant.items() if why in FACTS and m < horizon}
    store.record_facts(rows, now.timestamp())
