"""Reading Kraken's answers into records: the GraphQL envelope, times, dispatches, agreements,
Power Ups, saving sessions and unit rates. Pure: the client (iops.services.octopus) does the I/O.

An answer of a shape these do not foresee raises BadResponse (or, from deep inside, a plain
TypeError or KeyError that the run's odd-answer net turns into one): their data, not our bug.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from iops.core.bill_check import ENERGY_TYPES, Line, Settled
from iops.core.dispatch_rules import DispatchData, PlannedDispatch
from iops.core.errors import BadResponse, CredentialsRejected, RateLimited
from iops.core.events import OCTOPOINTS_PER_POUND, POWER_DOWN_TYPES, POWER_UP_TYPES, SessionEvent
from iops.core.tariff import Slot

log = logging.getLogger(__name__)
SERVICE = "Octopus"
MAX_POINTS = 100_000.0  # OctoPoints per kWh: £125/kWh, far above any session seen
MAX_PENCE = 1_000.0  # a unit rate in pence per kWh
MAX_KWH = 100.0  # one half-hour of a home's import: 200 kW, far above any supply
POWER_UP_KEYS = ("powerUpsFirst", "powerUpsLast")


# Kraken codes meaning "get a new token and try once more".
REAUTH_CODES = frozenset({"KT-CT-1124", "KT-CT-1120", "KT-CT-1143", "KT-CT-1111", "KT-CT-1112"})
KEY_REJECTED_CODES = frozenset({"KT-CT-1139"})
REFRESH_REJECTED_CODES = frozenset({"KT-CT-1134", "KT-CT-1135"})
RATE_LIMIT_CODES = frozenset({"KT-CT-1199"})


class Reauthenticate(Exception):
    """Internal: the token was refused; mint a new one and retry once."""


def check_graphql(
    body: Any, accepted_codes: frozenset[str] = frozenset(), optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Return ``data`` from a GraphQL envelope or raise the error for whoever is at fault.

    GraphQL can answer some fields and fail others. An ordinary error whose path starts at one of
    the ``optional`` fields leaves that field None in the data; the caller decides what to do.
    Errors about the token, the key or the rate limit always raise, wherever they point.
    """
    if not isinstance(body, dict):
        raise BadResponse(SERVICE, "GraphQL answer is not a JSON object")
    errors = body.get("errors") or []
    failed: set[str] = set()
    for err in errors if isinstance(errors, list) else [errors]:
        entry = err if isinstance(err, dict) else {}
        extensions = entry.get("extensions")
        code = str((extensions if isinstance(extensions, dict) else {}).get("errorCode") or "")
        message = str(entry.get("message") or "")
        path = entry.get("path")
        if code in accepted_codes:
            continue
        if code in RATE_LIMIT_CODES:
            raise RateLimited(SERVICE, f"rate limited ({code})")
        if code in KEY_REJECTED_CODES:
            raise CredentialsRejected(SERVICE, f"API key rejected ({code})", key="[octopus] api_key")
        if code in REAUTH_CODES or code in REFRESH_REJECTED_CODES:
            raise Reauthenticate(code)
        if isinstance(path, list) and path and path[0] in optional:
            failed.add(str(path[0]))
            log.debug("Octopus could not answer %s (%s)", path[0], code or message)
            continue
        raise BadResponse(SERVICE, f"GraphQL error {code or 'without code'}: {message}".rstrip(": "))
    data = body.get("data")
    if not isinstance(data, dict):
        raise BadResponse(SERVICE, "GraphQL answer has no data")
    return {**data, **dict.fromkeys(failed)}


def parse_time(value: Any) -> datetime:
    """Kraken time strings: ISO 8601 with offset (also the legacy space-separated form)."""
    if not isinstance(value, str):
        raise BadResponse(SERVICE, f"expected a time string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError as err:
        raise BadResponse(SERVICE, f"unreadable time {value!r}") from err
    if parsed.tzinfo is None:
        raise BadResponse(SERVICE, f"time without offset {value!r}")
    try:
        parsed.astimezone(UTC)
    except OverflowError as err:
        raise BadResponse(SERVICE, f"time out of range {value!r}") from err
    return parsed


def _is_smart(source: Any) -> bool:
    # A missing source counts as a smart charge; bump charges and boosts are billed at peak.
    return source is None or str(source).lower() in ("smart", "smart-charge")


def _objects(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BadResponse(SERVICE, f"{what} is not a list of objects")
    return value


def live_evs(devices: Any) -> dict[str, str]:
    """Live EV devices (chargers report ELECTRIC_VEHICLES too) -> their current smart-control state."""
    return {
        str(d["id"]): str((d.get("status") or {}).get("currentState") or "")
        for d in _objects(devices, "devices")
        if d.get("id")
        and d.get("deviceType") == "ELECTRIC_VEHICLES"
        and ((d.get("status") or {}).get("current") or "LIVE") == "LIVE"
    }


def parse_dispatch_data(data: Mapping[str, Any], devices: Sequence[str]) -> DispatchData:
    """Planned SMART dispatches per device (aliases ev0, ev1 ... in ``devices`` order), completed
    smart dispatches wherever they ran, and each live EV's state. BOOST, TEST and bump charges are left out."""
    planned = []
    for i, device in enumerate(devices):
        for item in _objects(data.get(f"ev{i}"), "planned dispatches"):
            if str(item.get("type") or "SMART").upper() == "SMART":
                slot = Slot(parse_time(item.get("start")), parse_time(item.get("end")))
                planned.append(PlannedDispatch(device, slot))
    completed = []
    for item in _objects(data.get("completedDispatches"), "completed dispatches"):
        meta = item.get("meta") or {}
        if not isinstance(meta, dict):
            raise BadResponse(SERVICE, "completed dispatch meta is not an object")
        # Any location: Octopus relabels completed dispatches AT_HOME -> AWAY hours later and still
        # bills them cheap (batpred#4946). Planned dispatches carry no location to test.
        if not _is_smart(meta.get("source")):
            continue
        completed.append(Slot(parse_time(item.get("start")), parse_time(item.get("end"))))
    states = live_evs(data["devices"]) if data.get("devices") is not None else {}
    return DispatchData(
        planned=tuple(sorted(set(planned), key=lambda p: (p.slot.start, p.slot.end, p.device))),
        completed=tuple(sorted(set(completed), key=lambda s: (s.start, s.end))),
        device_states=states,
    )


def merge_power_ups(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """Both ends of the campaign-event list as one connection; None when either end failed."""
    edges: list[Any] = []
    for key in POWER_UP_KEYS:
        part = data.get(key)
        if part is None:
            return None
        found = part.get("edges") if isinstance(part, dict) else part
        # An odd shape is passed on whole, so that the parser reports it.
        edges.extend(found if isinstance(found, list) else [found] if found else [])
    return {"customerFlexibilityCampaignEvents": {"edges": edges}}


@dataclass(frozen=True)
class Agreement:
    mpan: str
    direction: str
    product_code: str
    tariff_code: str
    valid_from: str = ""  # ISO 8601; empty means since ever
    valid_to: str = ""  # ISO 8601; empty means open-ended

    @property
    def starts(self) -> datetime:
        return parse_time(self.valid_from) if self.valid_from else datetime.min.replace(tzinfo=UTC)

    def valid_at(self, moment: datetime) -> bool:
        return self.starts <= moment and (not self.valid_to or moment < parse_time(self.valid_to))


def parse_agreements(data: Mapping[str, Any]) -> list[Agreement]:
    account = data.get("account")
    if not isinstance(account, dict):
        raise BadResponse(SERVICE, "account missing from the answer")
    out = []
    for entry in _objects(account.get("electricityAgreements") or [], "electricity agreements"):
        point = entry.get("meterPoint") or {}
        for agreement in _objects(point.get("agreements") or [], "agreements"):
            tariff = agreement.get("tariff") or {}
            if point.get("mpan") and tariff.get("tariffCode"):
                found = Agreement(
                    mpan=str(point["mpan"]),
                    direction=str(point.get("direction") or "IMPORT").upper(),
                    product_code=str(tariff.get("productCode") or ""),
                    tariff_code=str(tariff["tariffCode"]),
                    valid_from=str(agreement.get("validFrom") or ""),
                    valid_to=str(agreement.get("validTo") or ""),
                )
                for moment in (found.valid_from, found.valid_to):
                    if moment:
                        parse_time(moment)  # unreadable dates fail here, not when the cache is used
                out.append(found)
    return out


def agreements_now(agreements: Sequence[Agreement], now: datetime) -> list[Agreement]:
    """The agreement valid now on each meter point (the latest to start, if several claim it)."""
    chosen: dict[str, Agreement] = {}
    for agreement in agreements:
        if agreement.valid_at(now):
            best = chosen.get(agreement.mpan)
            if best is None or agreement.starts > best.starts:
                chosen[agreement.mpan] = agreement
    return sorted(chosen.values(), key=lambda a: (a.direction != "IMPORT", a.mpan))


def import_agreement(agreements: Sequence[Agreement], now: datetime) -> Agreement | None:
    return next((a for a in agreements_now(agreements, now) if a.direction == "IMPORT"), None)


def parse_power_ups(data: Mapping[str, Any] | None, now: datetime) -> list[Slot]:
    """Current and upcoming free-electricity slots the account takes part in.

    An absent or oddly shaped answer means no free slots: a missing Power Up must never stop
    the dispatch schedule from being posted.
    """
    if not data:
        return []
    try:
        edges = (data.get("customerFlexibilityCampaignEvents") or {}).get("edges") or []
        slots = []
        for edge in edges:
            node = edge.get("node") or {}
            # Only an explicit "not taking part" excludes an event; older answers omit the flag.
            if node.get("isEventParticipant") is False:
                continue
            slot = Slot(parse_time(node.get("startAt")), parse_time(node.get("endAt")))
            if slot.end > now and slot.end > slot.start:
                slots.append(slot)
    except (AttributeError, TypeError, BadResponse) as err:
        log.warning("Ignoring Power Up events with an unexpected shape (%s)", err)
        return []
    return sorted(set(slots), key=lambda s: s.start)


def parse_session_events(data: Mapping[str, Any], now: datetime) -> list[SessionEvent]:
    """Events that have not ended yet; raises BadResponse when the answer is not usable."""
    root = data.get("savingSessions")
    if not isinstance(root, dict):
        raise BadResponse("Octopus", "savingSessions missing from the answer")
    account = root.get("account") or {}
    if not account.get("hasJoinedCampaign", True):
        return []
    region = (account.get("signedUpMeterPoint") or {}).get("regionId")
    joined_ids = {str(e.get("eventId")) for e in account.get("joinedEvents") or [] if isinstance(e, dict)}
    events = []
    for item in root.get("events") or []:
        if not isinstance(item, dict):
            raise BadResponse("Octopus", "saving session event is not an object")
        slot = Slot(parse_time(item.get("startAt")), parse_time(item.get("endAt")))
        if slot.end <= now:
            continue
        points = _number(item.get("rewardPerKwhInOctoPoints") or 0, MAX_POINTS)
        if points is None:  # NaN, infinite or absurd: refused, never posted as a price
            log.warning("Ignored saving session %s: its reward is not a plausible number", str(item.get("code"))[:20])
            continue
        event_type = str(item.get("eventType") or ("TURN_DOWN" if points > 0 else "TURN_UP")).upper()
        if event_type not in POWER_DOWN_TYPES | POWER_UP_TYPES:
            continue
        regions = {r.get("regionId") for r in item.get("targetRegion") or [] if isinstance(r, dict)}
        events.append(
            SessionEvent(
                code=str(item.get("code") or ""),
                slot=slot,
                reward=points / OCTOPOINTS_PER_POUND,
                kind="down" if event_type in POWER_DOWN_TYPES else "up",
                joined=str(item.get("id")) in joined_ids,
                in_region=not regions or region in regions,
            )
        )
    return sorted(events, key=lambda e: e.slot.start)


def _rate_rows(body: Any) -> list[tuple[dict[str, Any], float]]:
    """The rows of a REST unit-rate page (direct-debit or unmarked ones) with their price in GBP/kWh."""
    if body is None:
        return []
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise BadResponse("Octopus", "unit-rate answer has no results list")
    out = []
    for row in results:
        if not isinstance(row, dict) or row.get("payment_method") not in (None, "DIRECT_DEBIT"):
            continue
        price = _number(row.get("value_inc_vat"), MAX_PENCE)
        if price is None:
            raise BadResponse("Octopus", "unit-rate row without a plausible value_inc_vat")
        out.append((row, price / 100))
    return out


def band_prices(body: Any) -> list[float]:
    """GBP/kWh values (inc. VAT) from a REST unit-rate page, direct-debit rows preferred."""
    return [price for _, price in _rate_rows(body)]


def band_rate_now(body: Any, now: datetime) -> tuple[float, bool] | None:
    """One band's rate valid now (GBP/kWh inc. VAT) from its own REST feed, and whether it is carried
    forward: a feed that has not published today's row yet (the day feed can lag the night feed)
    keeps its own newest rate, never the other band's. None when the feed has no rate at all."""
    rows = []
    for row, price in _rate_rows(body):
        valid_to = row.get("valid_to")
        rows.append((parse_time(row.get("valid_from")), parse_time(valid_to) if valid_to is not None else None, price))
    started = sorted((row for row in rows if row[0] <= now), key=lambda row: row[0])
    if not started:
        return None
    current = [row for row in started if row[1] is None or now < row[1]]
    if current:
        return current[-1][2], False
    return started[-1][2], True


def _number(value: Any, largest: float) -> float | None:
    """A number from an answer (a JSON number or a decimal string), or None unless finite and in 0..largest."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and 0 <= number <= largest else None


@dataclass(frozen=True)
class MeasurementsPage:
    """One page of the settlement: the half-hours read, and the cursor of the next page (if any)."""

    settled: list[Settled]
    next_cursor: str | None
    found_meter: bool  # a property of the account holds the meter asked about


def parse_measurements(data: Mapping[str, Any], mpan: str) -> MeasurementsPage:
    """The settled half-hours of the property that holds ``mpan``; raises BadResponse on an odd shape.

    Decimals arrive as text; amounts are pence. A number that is not finite is refused.
    """
    account = data.get("account")
    if not isinstance(account, dict):
        raise BadResponse(SERVICE, "account missing from the measurements answer")
    properties = _objects(account.get("properties") or [], "properties")
    ours = [
        p
        for p in properties
        if mpan in {str(m.get("mpan")) for m in _objects(p.get("electricityMeterPoints") or [], "meter points")}
    ]
    chosen = ours[0] if ours else (properties[0] if len(properties) == 1 else None)
    if chosen is None:
        return MeasurementsPage([], None, found_meter=False)
    connection = chosen.get("measurements")
    if not isinstance(connection, dict):
        raise BadResponse(SERVICE, "measurements missing from the answer")
    settled = []
    for edge in _objects(connection.get("edges") or [], "measurement edges"):
        node = edge.get("node")
        if not isinstance(node, dict) or node.get("startAt") is None:
            continue  # a reading without an interval (a register read): not a half-hour
        start = parse_time(node.get("startAt")).astimezone(UTC)
        kwh = _number(node.get("value"), MAX_KWH)
        if kwh is None:
            raise BadResponse(SERVICE, f"measurement at {start.isoformat()} has no plausible kWh")
        meta = _dict(node.get("metaData"))
        lines = []
        for stat in _objects(meta.get("statistics") or [], "statistics"):
            if str(stat.get("type") or "") not in ENERGY_TYPES:
                continue  # standing charge, carbon and the growing rest: not energy
            value = _number(stat.get("value") if stat.get("value") is not None else 0, MAX_KWH)
            cost = _dict(stat.get("costInclTax"))
            per_unit = _dict(cost.get("pricePerUnit"))
            price = _number(per_unit.get("amount"), MAX_PENCE) if per_unit.get("amount") is not None else None
            if price is None and value and cost.get("estimatedAmount") is not None:
                amount = _number(cost.get("estimatedAmount"), MAX_PENCE * MAX_KWH)
                price = amount / value if amount is not None else None
            if value is None:
                raise BadResponse(SERVICE, f"a statistic at {start.isoformat()} has no plausible kWh")
            label = stat.get("label")
            lines.append(Line(str(label) if label else None, value, price))
        settled.append(Settled(start, kwh, tuple(lines)))
    info = _dict(connection.get("pageInfo"))
    cursor = info.get("endCursor") if info.get("hasNextPage") else None
    return MeasurementsPage(settled, str(cursor) if cursor else None, found_meter=True)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
