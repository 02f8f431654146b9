"""The Octopus side of a run: gather what Octopus says, then decide the tariff (a pure step).

Raises rather than return partial data, except for Power Ups, which fall back on the last good list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from iops.app.cache import State
from iops.app.guard import ODD_SHAPES
from iops.app.notes import Notes
from iops.core.errors import BadResponse, ServiceError
from iops.core.memory import PAST
from iops.core.settings import Config
from iops.services.kraken_cache import KrakenCache

if TYPE_CHECKING:
    from iops.app.logs import RedactSecrets
    from iops.core.decision import Facts
    from iops.core.dispatch_rules import BillingRules, DispatchData, DispatchDecision, Reason
    from iops.core.events import SessionEvent
    from iops.core.tariff import WeekPlan
    from iops.services.octopus import Kraken, PowerUpAnswer

log = logging.getLogger(__name__)
POWER_UPS_KEEP = timedelta(hours=6)  # how old a Power Up list may be and still stand in for a failed answer
POWER_UPS_REFRESH = timedelta(minutes=30)  # re-stamp an unchanged list this often (spares the SD card)
JOIN_RETRY = timedelta(hours=1)  # a join refused or unconfirmed is asked again no sooner than this


@dataclass(frozen=True)
class DispatchMemory:
    """Half-hours earlier runs saw start, per device (the "dispatch" section; for dispatch_trust = started)."""

    started: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict, metadata=PAST)


@dataclass
class Polled:
    """What a poll cost and learnt, filled in as it goes (so that a failed poll keeps what it learnt)."""

    state: State
    requests: int = 0
    dispatches: list[tuple[float, float]] = field(default_factory=list)
    events: list[tuple[float, float]] = field(default_factory=list)
    smart_control: bool = False


@dataclass(frozen=True)
class Built:
    """The tariff this run built, why each half-hour is what it is, and what Octopus said."""

    plan: WeekPlan
    tariff: dict[str, Any]
    digest: str
    reasons: Mapping[tuple[date, int], Reason]
    dispatches: DispatchData  # Octopus's answer, for the history
    seen: DispatchDecision  # each half-hour's dispatch as seen (started-trust reading, whatever is in force)
    trust: str  # the dispatch_trust in force


def poll(
    config: Config,
    now: datetime,
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
    from iops.core.dispatch_rules import SMART_CONTROL, decide_dispatches
    from iops.core.schedule_view import describe_rules, render_schedule
    from iops.services.octopus import Kraken
    from iops.services.tesla import tou_settings_body

    with requests.Session() as session:
        kraken = Kraken(session, config.octopus, polled.state.get(KrakenCache), **_clock(config, now))
        try:
            facts = gather(config, kraken, polled, now)
            gathered, to_join = assemble(config, facts, now)
            if live:
                _join(kraken, to_join, facts.sessions or (), now)
        except ODD_SHAPES as err:
            # An answer of a shape the parsers did not foresee: their data, not our outage or bug.
            log.debug("Unexpected answer from Octopus", exc_info=True)
            raise BadResponse("Octopus", f"answer of an unexpected shape ({type(err).__name__}: {err})") from err
        finally:
            polled.requests = kraken.requests_made
            polled.state = polled.state.put(kraken.cache)
            if redactor is not None:
                redactor.add(kraken.cache.token)
    # The half-hours seen start are remembered whatever dispatch_trust is in force: the bill check
    # compares the two settings on the user's own bill.
    seen = decide_dispatches(
        facts.dispatches,
        replace(facts.rules, trust="started"),
        facts.remembered,
        now,
        config.tariff.time_zone,
        (config.tariff.off_peak_start, config.tariff.off_peak_end),
    )
    polled.state = polled.state.put(DispatchMemory({device: tuple(m) for device, m in seen.started.items()}))
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
    return Built(plan, tariff, digest, gathered.reasons, facts.dispatches, seen, gathered.rules.trust)


def _clock(config: Config, now: datetime) -> dict[str, Any]:
    return {"timeout": config.debug.timeout_seconds, "clock": now.timestamp}


def gather(config: Config, kraken: Kraken, polled: Polled, now: datetime) -> Facts:
    """Everything the decision needs from Octopus and the state, read into records."""
    from iops.core.decision import Facts
    from iops.core.rates import resolve_rates
    from iops.services.kraken_answers import parse_power_ups, parse_session_events
    from iops.services.octopus import cached_auto_rates

    features = config.features
    dispatches, power_ups = kraken.dispatches_and_power_ups(now, power_ups=features.free_electricity)
    power_up_data = _power_ups_or_last_good(kraken, power_ups, now)
    rules = _billing_rules(config, kraken, polled, now)
    auto = cached_auto_rates(kraken, now) if config.tariff.rates_auto else None
    rates = resolve_rates(config.tariff, auto)
    sessions = None
    if features.saving_sessions or features.free_electricity:  # weekend happy hours come with the sessions
        every = timedelta(minutes=max(features.saving_sessions_poll_minutes, 1))
        sessions = parse_session_events(kraken.cached("saving_sessions", every, kraken.saving_sessions), now)
    remembered = polled.state.get(DispatchMemory).started
    return Facts(dispatches, parse_power_ups(power_up_data, now), sessions, rates, rules, remembered)


def _billing_rules(config: Config, kraken: Kraken, polled: Polled, now: datetime) -> BillingRules:
    """The dispatch trust and car allowance in force; automatic ones follow the import tariff code."""
    from iops.core.dispatch_rules import resolve_rules, tariff_family

    tariff = config.tariff
    code = None
    if tariff.dispatch_trust == "auto" or tariff.car_allowance_half_hours is None:
        from iops.services.kraken_answers import import_agreement

        agreement = import_agreement(kraken.agreements(), now)
        notes = polled.state.get(Notes)
        if agreement is None and not notes.no_agreement:
            log.warning(
                "No import agreement known on the account; treating smart slots as the original "
                "Intelligent Octopus Go does (dispatch_trust = planned, no car allowance)"
            )
        code = agreement.tariff_code if agreement else None
        notes = replace(notes, no_agreement=agreement is None)
        rules = resolve_rules(tariff.dispatch_trust, tariff.car_allowance_half_hours, code)
        family = tariff_family(code)
        if family is not None and not family.known and notes.unknown_tariff != code:
            from iops.core.schedule_view import OVERRIDE_HINT, describe_allowance

            log.warning(
                "%s; applying dispatch_trust = %s, car allowance %s: %s",
                family.why,
                rules.trust,
                describe_allowance(rules),
                OVERRIDE_HINT,
            )
        unknown = code if code is not None and family is not None and not family.known else ""
        polled.state = polled.state.put(replace(notes, unknown_tariff=unknown))
        return rules
    return resolve_rules(tariff.dispatch_trust, tariff.car_allowance_half_hours, code)


def _power_ups_or_last_good(kraken: Kraken, answer: PowerUpAnswer, now: datetime) -> dict[str, Any] | None:
    """This run's Power Up list, or, when Octopus failed that field alone, the last good one (up to 6 h old)."""
    if not answer.asked:
        return None
    kept = kraken.cache.power_ups
    kept_at = kept.at if kept is not None else 0.0
    if not answer.failed:
        if kraken.cache.power_ups_failing:
            log.info("Octopus answers the Power Up field again")
            kraken.cache = replace(kraken.cache, power_ups_failing=False)
        stale = now.timestamp() - kept_at >= POWER_UPS_REFRESH.total_seconds()
        if stale or kept is None or kept.value != answer.data:
            kraken.keep("power_ups", answer.data)
        return answer.data
    usable = kept is not None and now.timestamp() - kept_at <= POWER_UPS_KEEP.total_seconds()
    if not kraken.cache.power_ups_failing:
        when = datetime.fromtimestamp(kept_at, UTC).isoformat(timespec="minutes") if usable else ""
        log.warning(
            "Octopus answered the dispatches but not the Power Up field; %s",
            f"using the Power Up list from {when}" if usable else "no recent Power Up list to fall back on",
        )
        kraken.cache = replace(kraken.cache, power_ups_failing=True)
    return kept.value if usable and kept is not None else None


def _join(kraken: Kraken, codes: Sequence[str], events: Sequence[SessionEvent], now: datetime) -> None:
    """Join the sessions worth joining. A join is Octopus's claim: a session counts only once
    ``joinedEvents`` lists it, a disagreement is logged once, and a refused join (OE-1308 "already
    signed up" comes for accounts that are not opted in) never stops the tariff work."""
    from iops.services.kraken_cache import JoinAttempt

    listed = {e.code for e in events if e.joined}
    known = {e.code for e in events}
    attempts = {a.code: a for a in kraken.cache.joins if a.code in known}  # ended sessions are forgotten
    for code, attempt in list(attempts.items()):
        if code in listed:
            if attempt.claimed or attempt.said:
                log.info("Saving session %s is now listed as joined; it shapes the tariff", code)
            del attempts[code]
        elif attempt.claimed and not attempt.said:
            log.warning(
                "Octopus said saving session %s was joined, but joinedEvents does not list it: it is not "
                "counted until it does (a join is Octopus's claim, not proof)",
                code,
            )
            attempts[code] = replace(attempt, said=True)
    asked = False
    for code in codes:
        before = attempts.get(code)
        if before is not None and now.timestamp() - before.at < JOIN_RETRY.total_seconds():
            continue
        asked = True
        try:
            claimed = code in kraken.join_saving_session(code)
        except ServiceError as err:
            claimed = "OE-1308" in str(err)  # "already signed up": a claim too, to check against joinedEvents
            if before is None:
                log.warning(
                    "Could not join saving session %s (%s); the tariff goes on without it, trying again hourly",
                    code,
                    err,
                )
        else:
            if claimed:
                log.info("Octopus says it joined saving session %s; it counts once joinedEvents lists it", code)
            elif before is None:
                log.warning("Asked to join saving session %s but Octopus did not confirm it", code)
        attempts[code] = JoinAttempt(code, now.timestamp(), claimed, before.said if before else False)
    kraken.cache = replace(kraken.cache, joins=tuple(attempts.values()))
    if asked:
        # What the account has joined may have changed: read the sessions again next run.
        kraken.forget("saving_sessions")
