"""The decision step: from what a run gathered to the tariff it wants posted. Pure: no I/O.

``assemble`` applies the features and Octopus's billing rules to the facts; ``decide`` builds and
checks the Tesla tariff; ``tariffs_match`` compares a live tariff with ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from iops.core.dispatch_rules import BillingRules, DispatchData, Reason, decide_dispatches
from iops.core.errors import InvalidTariff
from iops.core.events import SessionEvent, plan_sessions
from iops.core.settings import Config
from iops.core.tariff import (
    Rates,
    SavingSession,
    Slot,
    TariffInputs,
    WeekPlan,
    build_tariff,
    price_grid,
    tariff_digest,
    validate_tariff,
)


@dataclass(frozen=True)
class Facts:
    """What a run learnt from Octopus and the state, before any rule is applied."""

    dispatches: DispatchData
    power_ups: Sequence[Slot]  # current and upcoming Power Ups the account takes part in
    sessions: Sequence[SessionEvent] | None  # saving sessions and happy hours; None when not asked
    rates: Rates
    rules: BillingRules
    remembered: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Gathered:
    """The events that count this run, per the config's features and Octopus's billing rules."""

    dispatches: list[Slot]  # half-hours billed off-peak outside the core window
    free_slots: list[Slot]
    saving_sessions: list[SavingSession]
    rates: Rates
    rules: BillingRules
    reasons: Mapping[tuple[date, int], Reason] = field(default_factory=dict)
    started: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)


def assemble(config: Config, facts: Facts, now: datetime) -> tuple[Gathered, list[str]]:
    """Which events count, per the config's features and the billing rules; also the sessions worth
    joining. Pure."""
    features = config.features
    decision = decide_dispatches(
        facts.dispatches,
        facts.rules,
        facts.remembered,
        now,
        config.tariff.time_zone,
        (config.tariff.off_peak_start, config.tariff.off_peak_end),
    )
    free = list(facts.power_ups) if features.free_electricity else []
    saving: list[SavingSession] = []
    to_join: list[str] = []
    if facts.sessions is not None:
        auto_join = features.saving_sessions and features.auto_join_saving_sessions
        sessions = plan_sessions(
            facts.sessions,
            export_rate=facts.rates.export_peak,
            min_offset=features.min_saving_offset,
            auto_join_min_reward=features.auto_join_min_reward if auto_join else None,
        )
        to_join = sessions.to_join
        saving = sessions.saving_sessions if features.saving_sessions else []
        if features.free_electricity:
            free = [*free, *sessions.free_slots]
    gathered = Gathered(
        dispatches=list(decision.cheap),
        free_slots=sorted(set(free), key=lambda s: s.start),
        saving_sessions=saving,
        rates=facts.rates,
        rules=facts.rules,
        reasons=decision.reasons,
        started=decision.started,
    )
    return gathered, to_join


def decide(config: Config, gathered: Gathered, now: datetime) -> tuple[WeekPlan, dict[str, Any], str]:
    plan, tariff = build_tariff(
        TariffInputs(
            now=now,
            time_zone=config.tariff.time_zone,
            off_peak_start=config.tariff.off_peak_start,
            off_peak_end=config.tariff.off_peak_end,
            rates=gathered.rates,
            dispatches=gathered.dispatches,
            free_slots=gathered.free_slots,
            saving_sessions=gathered.saving_sessions,
            name=config.tariff.name,
            utility=config.tariff.utility,
        )
    )
    problems = validate_tariff(tariff)
    if problems:
        raise InvalidTariff("; ".join(problems[:5]))
    return plan, tariff, tariff_digest(tariff)


def tariffs_match(live_info: dict[str, Any], ours: dict[str, Any]) -> bool:
    live = live_info.get("tariff_content_v2")
    if not isinstance(live, dict):
        return False
    want, have = price_grid(ours), price_grid(live)
    if want is None or have is None:
        return False
    return all(
        a[0] == b[0] and abs(a[1] - b[1]) < 1e-4 and abs(a[2] - b[2]) < 1e-4 for a, b in zip(want, have, strict=True)
    )
