"""The Octopus side of a run: gather what Octopus says, then decide the tariff (a pure step).

Raises rather than return partial data, except for Power Ups, which fall back on the last good list.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from iops.app.guard import ODD_SHAPES
from iops.core.errors import BadResponse
from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.app.logs import RedactSecrets
    from iops.core.decision import Facts
    from iops.core.dispatch_rules import BillingRules, Reason
    from iops.core.tariff import WeekPlan
    from iops.services.octopus import Kraken, PowerUpAnswer

log = logging.getLogger(__name__)
POWER_UPS_KEEP = timedelta(hours=6)  # how old a Power Up list may be and still stand in for a failed answer
POWER_UPS_REFRESH = timedelta(minutes=30)  # re-stamp an unchanged list this often (spares the SD card)


@dataclass
class Polled:
    """What a poll cost and learnt, for the Octopus schedule (filled in as the poll goes)."""

    requests: int = 0
    dispatches: list[tuple[float, float]] = field(default_factory=list)
    events: list[tuple[float, float]] = field(default_factory=list)
    smart_control: bool = False


@dataclass(frozen=True)
class Built:
    plan: WeekPlan
    tariff: dict[str, Any]
    digest: str
    reasons: Mapping[tuple[date, int], Reason]


def poll(
    config: Config,
    now: datetime,
    state: dict[str, Any],
    polled: Polled,
    redactor: RedactSecrets | None,
    *,
    live: bool,
    show: bool = False,
    dry_run: bool = False,
) -> Built:
    """Ask Octopus and build the tariff (printed for --show and --dry-run)."""
    import requests

    from iops.core.decision import assemble, decide
    from iops.core.dispatch_rules import SMART_CONTROL
    from iops.core.schedule_view import describe_rules, render_schedule
    from iops.services.octopus import Kraken
    from iops.services.tesla import tou_settings_body

    with requests.Session() as session:
        kraken = Kraken(session, config.octopus, state, timeout=config.debug.timeout_seconds, clock=now.timestamp)
        try:
            facts = gather(config, kraken, state, now)
            gathered, to_join = assemble(config, facts, now)
            if live:
                _join(kraken, to_join)
        except ODD_SHAPES as err:
            # An answer of a shape the parsers did not foresee: their data, not our outage or bug.
            log.debug("Unexpected answer from Octopus", exc_info=True)
            raise BadResponse("Octopus", f"answer of an unexpected shape ({type(err).__name__}: {err})") from err
        finally:
            polled.requests = kraken.requests_made
            if redactor is not None and kraken.state.get("token"):
                redactor.add(str(kraken.state["token"]))
    remember_starts(state, gathered.started)
    plan, tariff, digest = decide(config, gathered, now)
    if show:
        print(render_schedule(plan, now, config.tariff.time_zone, gathered.rates, reasons=gathered.reasons))
        print(describe_rules(gathered.rules))
    if dry_run:
        print(json.dumps(tou_settings_body(tariff), indent=2))
    polled.dispatches = [(d.slot.start.timestamp(), d.slot.end.timestamp()) for d in facts.dispatches.planned]
    polled.events = [(s.start.timestamp(), s.end.timestamp()) for s in gathered.free_slots]
    polled.events += [(s.slot.start.timestamp(), s.slot.end.timestamp()) for s in gathered.saving_sessions]
    polled.smart_control = SMART_CONTROL in facts.dispatches.device_states.values()
    log.debug("Octopus requests this run: %d", kraken.requests_made)
    return Built(plan, tariff, digest, gathered.reasons)


def gather(config: Config, kraken: Kraken, state: dict[str, Any], now: datetime) -> Facts:
    """Everything the decision needs from Octopus and the state, read into records."""
    from iops.core.decision import Facts
    from iops.core.rates import resolve_rates
    from iops.services.kraken_answers import parse_power_ups, parse_session_events
    from iops.services.octopus import cached_auto_rates

    features = config.features
    dispatches, power_ups = kraken.dispatches_and_power_ups(now, power_ups=features.free_electricity)
    power_up_data = _power_ups_or_last_good(kraken.state, power_ups, now)
    rules = _billing_rules(config, kraken, state, now)
    auto = cached_auto_rates(kraken, now) if config.tariff.rates_auto else None
    rates = resolve_rates(config.tariff, auto)
    sessions = None
    if features.saving_sessions or features.free_electricity:  # weekend happy hours come with the sessions
        every = timedelta(minutes=max(features.saving_sessions_poll_minutes, 1))
        sessions = parse_session_events(kraken.cached("saving_sessions", every, kraken.saving_sessions), now)
    return Facts(dispatches, parse_power_ups(power_up_data, now), sessions, rates, rules, remembered_starts(state))


def _billing_rules(config: Config, kraken: Kraken, state: dict[str, Any], now: datetime) -> BillingRules:
    """The dispatch trust and car allowance in force; automatic ones follow the import tariff code."""
    from iops.core.dispatch_rules import resolve_rules

    tariff = config.tariff
    code = None
    if tariff.dispatch_trust == "auto" or tariff.car_allowance_half_hours is None:
        from iops.services.kraken_answers import import_agreement

        agreement = import_agreement(kraken.agreements(), now)
        notes = state.setdefault("notes", {})
        if agreement is None:
            if not notes.get("no_agreement"):
                log.warning(
                    "No import agreement known on the account; treating smart slots as the original "
                    "Intelligent Octopus Go does (dispatch_trust = planned, no car allowance)"
                )
                notes["no_agreement"] = True
        else:
            code = agreement.tariff_code
            notes.pop("no_agreement", None)
        if not notes:
            state.pop("notes")
    return resolve_rules(tariff.dispatch_trust, tariff.car_allowance_half_hours, code)


def _power_ups_or_last_good(memory: dict[str, Any], answer: PowerUpAnswer, now: datetime) -> dict[str, Any] | None:
    """This run's Power Up list, or, when Octopus failed that field alone, the last good one (up to 6 h old)."""
    if not answer.asked:
        return None
    kept = memory.get("power_ups")
    kept_at = float(kept.get("at", 0)) if isinstance(kept, dict) else 0.0
    if not answer.failed:
        stale = now.timestamp() - kept_at >= POWER_UPS_REFRESH.total_seconds()
        if memory.pop("power_ups_failing", None):
            log.info("Octopus answers the Power Up field again")
        if stale or not isinstance(kept, dict) or kept.get("value") != answer.data:
            memory["power_ups"] = {"at": now.timestamp(), "value": answer.data}
        return answer.data
    usable = isinstance(kept, dict) and now.timestamp() - kept_at <= POWER_UPS_KEEP.total_seconds()
    if not memory.get("power_ups_failing"):
        when = datetime.fromtimestamp(kept_at, UTC).isoformat(timespec="minutes") if usable else ""
        log.warning(
            "Octopus answered the dispatches but not the Power Up field; %s",
            f"using the Power Up list from {when}" if usable else "no recent Power Up list to fall back on",
        )
        memory["power_ups_failing"] = True
    value = kept.get("value") if usable and isinstance(kept, dict) else None
    return value if isinstance(value, dict) else None


def remembered_starts(state: Mapping[str, Any]) -> dict[str, tuple[datetime, ...]]:
    """Half-hours earlier runs saw start, per device (a record kept for dispatch_trust = started)."""
    record = (state.get("dispatch") or {}).get("started") or {}
    out: dict[str, tuple[datetime, ...]] = {}
    if isinstance(record, dict):
        for device, moments in record.items():
            with contextlib.suppress(TypeError, ValueError):
                times = tuple(datetime.fromisoformat(m) for m in moments)
                if all(t.tzinfo is not None for t in times):  # a naive time would not compare with now
                    out[str(device)] = times
    return out


def remember_starts(state: dict[str, Any], started: Mapping[str, Sequence[datetime]]) -> None:
    if started:
        record = {device: [m.isoformat() for m in moments] for device, moments in started.items()}
        state.setdefault("dispatch", {})["started"] = record
    else:
        state.pop("dispatch", None)


def _join(kraken: Kraken, codes: Sequence[str]) -> None:
    for code in codes:
        if code in kraken.join_saving_session(code):
            log.info("Joined saving session %s; it shapes the tariff from the next run", code)
        else:
            log.warning("Asked to join saving session %s but Octopus did not confirm it", code)
    if codes:
        # What the account has joined changed: read the sessions again next run.
        kraken.state.pop("saving_sessions", None)
