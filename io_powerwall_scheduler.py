#!/usr/bin/env python3
"""IO Powerwall Scheduler: keep a Powerwall's Tesla tariff in step with Intelligent Octopus Go.

Run from cron every minute:  python3 io_powerwall_scheduler.py /path/to/config.txt
Each run gathers (Octopus slots, clock, state), decides (a pure tariff build) and applies
(post to Tesla only when the tariff changed, then record it).
Exit codes: 0 done or nothing to do, 1 a service failed, 2 the config needs fixing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from call_policy import (
    MISMATCH_DELAYS,
    TeslaCalls,
    TeslaPlan,
    after_octopus_failure,
    after_poll,
    after_post,
    after_tesla_failure,
    after_verify,
    dump,
    first_difference,
    for_site,
    load_calls,
    plan_octopus,
    plan_tesla,
    with_pending,
)
from config import EXAMPLE_PATH, Config, load_config, write_template
from errors import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_SERVICE,
    BadResponse,
    ConfigError,
    CredentialsRejected,
    InvalidTariff,
    RateLimited,
    SchedulerError,
    ServiceError,
    ServiceUnavailable,
    StateUnwritable,
    cli_failure,
)
from logs import RedactSecrets, setup_logging
from run_status import last_run_of, status_report
from state import load_state, run_lock, save_state, tokens_in

if TYPE_CHECKING:
    # The decision, the view and the clients load only when a run polls or posts: a minute between
    # polls imports none of them, nor requests (see bench/benchmark.py).
    import requests

    from decision import Facts, Gathered
    from dispatch_rules import BillingRules, Reason
    from mqtt_switch import FlagReading
    from octopus import Kraken, PowerUpAnswer
    from tariff import WeekPlan
    from tesla import TeslaSite

log = logging.getLogger("io_powerwall_scheduler")
HERE = Path(__file__).resolve().parent
SAMPLE_DIR = HERE / "sample_data"
STILL_FAILING_EVERY = timedelta(hours=1)
RUN_DEADLINE_SECONDS = 50.0
ODD_SHAPES = (AttributeError, TypeError, ValueError, KeyError, IndexError, OverflowError)
POWER_UPS_KEEP = timedelta(hours=6)  # how old a Power Up list may be and still stand in for a failed answer
POWER_UPS_REFRESH = timedelta(minutes=30)  # re-stamp an unchanged list this often (spares the SD card)


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    show: bool = False
    force: bool = False
    debug: bool = False
    at: datetime | None = None


Result = Literal[
    "posted",
    "unchanged",
    "verified",
    "waiting",
    "between polls",
    "backing off",
    "dry run",
    "disabled",
    "paused",
    "config error",
    "error",
]


@dataclass(frozen=True)
class Outcome:
    result: Result
    posted: bool = False
    digest: str = ""
    plan: WeekPlan | None = None
    answered: frozenset[str] = frozenset()  # services that answered this run: their failure streak ends
    detail: str = ""  # the error, for the log and the MQTT status


# ---- gather ------------------------------------------------------------------------------


def gather(config: Config, kraken: Kraken, state: dict[str, Any], now: datetime) -> Facts:
    """Everything the decision needs from Octopus and the state; raises rather than return partial data
    (except for Power Ups, which fall back on the last good list)."""
    from decision import Facts
    from rates import cached_auto_rates, resolve_rates

    features = config.features
    dispatches, power_ups = kraken.dispatches_and_power_ups(now, power_ups=features.free_electricity)
    power_up_data = _power_ups_or_last_good(kraken.state, power_ups, now)
    rules = _billing_rules(config, kraken, state, now)
    auto = cached_auto_rates(kraken, now) if config.tariff.rates_auto else None
    rates = resolve_rates(config.tariff, auto)
    session_data = None
    if features.saving_sessions or features.free_electricity:  # weekend happy hours come with the sessions
        poll = timedelta(minutes=max(features.saving_sessions_poll_minutes, 1))
        session_data = kraken.cached("saving_sessions", poll, kraken.saving_sessions)
    return Facts(dispatches, power_up_data, session_data, rates, rules, remembered_starts(state))


def _billing_rules(config: Config, kraken: Kraken, state: dict[str, Any], now: datetime) -> BillingRules:
    """The dispatch trust and car allowance in force; automatic ones follow the import tariff code."""
    from dispatch_rules import resolve_rules

    tariff = config.tariff
    code = None
    if tariff.dispatch_trust == "auto" or tariff.car_allowance_half_hours is None:
        from octopus import import_agreement

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


# ---- the run -----------------------------------------------------------------------------


def _note_failure(state: dict[str, Any], err: ServiceError, now: datetime, previous_run: float | None) -> None:
    """Log a failure once, then hourly while it lasts (a cron job must not flood its log)."""
    failing = state.setdefault("failing", {})
    if not isinstance(failing.get("runs", 0), int) or not isinstance(failing.get("logged", 0), int | float):
        failing.clear()  # a record this version did not write: start it afresh
    reason = str(err)
    if failing.get("reason") != reason:
        log.error("%s; keeping the current tariff", reason)
        if not failing:  # a new failure: the run before this one was the last to succeed
            failing["last_success"] = previous_run
        failing.update(reason=reason, service=err.service, since=now.timestamp(), logged=now.timestamp(), runs=1)
        return
    failing["runs"] = int(failing.get("runs", 0)) + 1
    if now.timestamp() - float(failing.get("logged", 0)) >= STILL_FAILING_EVERY.total_seconds():
        log.warning("Still failing after %d runs: %s", failing["runs"], reason)
        failing["logged"] = now.timestamp()
    else:
        log.debug("Still failing: %s", reason)


def _note_success(state: dict[str, Any], answered: frozenset[str]) -> None:
    """A failure streak ends when the service that failed answers again (not just any service)."""
    failing = state.get("failing")
    if not isinstance(failing, dict) or not answered:
        return
    if failing.get("service") in answered or failing.get("service") is None:
        state.pop("failing")
        log.info("Services back after %s failed run(s)", failing.get("runs", 1))


def run(
    config: Config,
    opts: Options,
    now: datetime,
    redactor: RedactSecrets | None = None,
    previous_run: float | None = None,
) -> int:
    state = load_state(config.state_path)
    # Steady-state runs change nothing; skipping the write spares an SD card 1,440 writes a day.
    loaded = json.dumps(state, sort_keys=True)
    live = not (opts.dry_run or opts.show)
    _warn_if_readable_by_others(config.path, state)

    def save_if_changed() -> None:
        if json.dumps(state, sort_keys=True) != loaded:
            save_state(config.state_path, state)

    if live and state.get("paused"):
        log.debug("Paused since --restore; run with --resume to carry on")
        if config.mqtt.enabled:
            _publish_mqtt(config, state, Outcome(result="paused"), None, now, redactor)
            save_if_changed()
        return EXIT_OK
    flag: FlagReading | None = None
    if config.mqtt.enabled and not opts.force:
        from mqtt_switch import read_enable_flag

        flag = read_enable_flag(config.mqtt)
        if not flag.enabled:
            log.debug("Disabled by MQTT (%s)", flag.reason)
            if live and config.mqtt.restore_when_off and not state.get("restored_when_off"):
                _restore_when_off(config, state, redactor)
            if live and flag.reachable:
                _publish_mqtt(config, state, Outcome(result="disabled"), flag, now, redactor)
            if live:
                save_if_changed()
            return EXIT_OK
        state.pop("restored_when_off", None)
    try:
        outcome = _run(config, opts, now, state, redactor)
    except CredentialsRejected as err:
        log.error("%s: check %s in %s", err, err.key, config.path)
        outcome, code = Outcome(result="error", detail=str(err)), EXIT_CONFIG
    except ConfigError as err:
        for problem in err.problems:
            log.error("%s", problem)
        outcome, code = Outcome(result="config error"), EXIT_CONFIG
    except ServiceError as err:
        _note_failure(state, err, now, previous_run)
        outcome, code = Outcome(result="error", detail=str(err)), EXIT_SERVICE
    except InvalidTariff as err:
        log.error("Built an invalid tariff (a bug, nothing posted): %s", err)
        outcome, code = Outcome(result="error", detail="invalid tariff (a bug; nothing posted)"), EXIT_SERVICE
    except StateUnwritable as err:
        log.error("%s", err)
        outcome, code = Outcome(result="error", detail=str(err)), EXIT_SERVICE
    except Exception as err:  # a bug: said in the log and the MQTT status, never silent
        log.exception("Unexpected error (a bug; please report it); nothing more was posted this run")
        detail = f"unexpected {type(err).__name__}: {err}"
        _note_failure(state, ServiceUnavailable("Scheduler", detail), now, previous_run)
        outcome, code = Outcome(result="error", detail=detail), EXIT_SERVICE
    else:
        code = EXIT_OK
        _note_success(state, outcome.answered)
    finally:
        if live and json.dumps(state, sort_keys=True) != loaded:
            try:
                save_state(config.state_path, state)
            except OSError as err:
                log.error("%s", StateUnwritable(config.state_path, err))
                code = EXIT_SERVICE
    if live and config.mqtt.enabled and (flag is None or flag.reachable):
        saved = json.dumps(state, sort_keys=True)
        _publish_mqtt(config, state, outcome, flag, now, redactor)
        if json.dumps(state, sort_keys=True) != saved:
            save_state(config.state_path, state)
    return code


def _publish_mqtt(
    config: Config,
    state: dict[str, Any],
    outcome: Outcome,
    flag: FlagReading | None,
    now: datetime,
    redactor: RedactSecrets | None,
) -> None:
    """The retained status, plus discovery when due, plus the switch's first state when none is retained."""
    from mqtt_status import StatusFacts, cheap_blocks, plan_discovery, status_payload
    from mqtt_switch import publish

    kept = state.get("mqtt")
    memory: dict[str, Any] = kept if isinstance(kept, dict) else {}
    if not isinstance(memory.get("discovery", {}), dict) or not isinstance(memory.get("blocks", []), list):
        memory = {}  # not of this version's making: discovery is simply sent again
    if outcome.plan is not None:
        # Kept, so that a failed run still reports the off-peak blocks the Powerwall is working to.
        memory["blocks"] = [list(b) for b in cheap_blocks(outcome.plan, now, config.tariff.time_zone)]
    tesla = state.get("tesla") or {}
    failing = state.get("failing") or {}
    text = f"{outcome.result}: {outcome.detail}" if outcome.detail else outcome.result
    facts = StatusFacts(
        result=redactor.redact(text) if redactor else text,
        posted=outcome.posted,
        now=now,
        last_hash=str(tesla.get("posted_hash") or ""),
        last_post=tesla.get("posted_at"),
        failing_since=failing.get("since"),
        blocks=[(str(b[0]), str(b[1]), str(b[2])) for b in memory.get("blocks") or [] if _is_block(b)],
    )
    discovery = plan_discovery(
        config.mqtt,
        memory.get("discovery") or {},
        "mqtt_discovery" in state,
        now,
        status_retained=flag.status_retained if flag else None,
    )
    messages = list(discovery.publish)
    if flag is not None and not flag.flag_retained and config.mqtt.default_when_no_flag:
        messages.append((config.mqtt.enable_topic, "on"))  # the switch shows on, not unknown
    messages.append((config.mqtt.state_topic, json.dumps(status_payload(facts), sort_keys=True)))
    if publish(config.mqtt, messages):
        state.pop("mqtt_discovery", None)  # the digest alone, as kept before 1.1
        if discovery.memory:
            memory["discovery"] = discovery.memory
        else:
            memory.pop("discovery", None)
    state["mqtt"] = memory


def _is_block(value: Any) -> bool:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        return False
    try:
        return datetime.fromisoformat(value[1]).tzinfo is not None
    except ValueError:
        return False


def _restore_when_off(config: Config, state: dict[str, Any], redactor: RedactSecrets | None) -> None:
    """[mqtt] restore_when_off: switched off, the site gets the user's own tariff back, once."""
    try:
        name = _restore(config, state, redactor)
    except ConfigError as err:  # nothing kept to restore: say so once, not every minute
        log.warning("Switched off over MQTT; %s", "; ".join(err.problems))
    except ServiceError as err:
        log.error("Switched off over MQTT but could not restore the tariff (%s); trying again next run", err)
        return
    else:
        log.info("Switched off over MQTT: put back %s (restore_when_off)", name)
    state["restored_when_off"] = True


def _restore(config: Config, state: dict[str, Any], redactor: RedactSecrets | None) -> str:
    import requests

    from tariff_restore import restore

    _redact_tokens(state, redactor)
    with requests.Session() as session:
        tesla = _tesla(session, config, state, redactor, datetime.now(UTC))
        return restore(state, config.tesla.site_id, tesla)


def _tesla(
    session: requests.Session, config: Config, state: dict[str, Any], redactor: RedactSecrets | None, now: datetime
) -> TeslaSite:
    """The Tesla client of a run: tokens it rotates are saved at once and redacted from then on."""
    from tesla import connect

    save = functools.partial(_save_now, config, state, redactor)
    return connect(session, config.tesla, state, save, clock=now.timestamp, timeout=config.debug.timeout_seconds)


def _save_now(config: Config, state: dict[str, Any], redactor: RedactSecrets | None) -> None:
    """Save at once (a rotated Tesla refresh token must not be lost), and redact the new tokens."""
    try:
        save_state(config.state_path, state)
    except OSError as err:
        raise StateUnwritable(config.state_path, err) from err
    _redact_tokens(state, redactor)


def _redact_tokens(state: dict[str, Any], redactor: RedactSecrets | None) -> None:
    for token in tokens_in(state):
        if redactor is not None:
            redactor.add(token)


def _run(
    config: Config, opts: Options, now: datetime, state: dict[str, Any], redactor: RedactSecrets | None
) -> Outcome:
    """One run: poll Octopus if the policy says so, build the tariff, then post, verify or wait."""
    octopus_calls, tesla_calls, problems = load_calls(state)
    for problem in problems:
        log.warning("State file %s: dropped %s", config.state_path, problem)
    tesla_calls = for_site(tesla_calls, config.tesla.site_id)
    preview = opts.dry_run or opts.show
    octopus_plan = plan_octopus(octopus_calls, now, config.octopus.poll_minutes, force=opts.force or preview)
    _redact_tokens(state, redactor)
    built: tuple[str, dict[str, Any]] | None = None
    plan: WeekPlan | None = None
    reasons: Mapping[tuple[date, int], Reason] = {}
    if octopus_plan.action == "poll":
        polled = Polled()
        try:
            plan, tariff, digest, reasons = _poll(config, opts, now, state, polled, redactor)
        except ServiceError as err:
            if not preview:
                spent = after_octopus_failure(octopus_calls, now, polled.requests, rate_limited=_octopus_limit(err))
                state["octopus_calls"] = dump(spent)
            raise
        if preview:
            return Outcome(result="dry run", digest=digest, plan=plan)
        octopus_calls = after_poll(
            octopus_calls, now, polled.requests, polled.dispatches, polled.events, smart_control=polled.smart_control
        )
        state["octopus_calls"] = dump(octopus_calls)
        built = (digest, tariff)
    else:
        log.debug("Octopus not polled: %s", octopus_plan.reason)
    tesla_plan = plan_tesla(tesla_calls, built, now, config.tesla.verify_hours, force=opts.force)
    tesla_calls = with_pending(tesla_calls, built)
    try:
        tesla_calls = _apply(config, tesla_plan, tesla_calls, state, now, redactor)
    except CredentialsRejected:
        raise
    except ServiceError as err:
        if err.service == "Tesla":  # no Tesla request until the back-off ends; Octopus is still polled
            retry_after = err.retry_after if isinstance(err, RateLimited) else None
            limited = isinstance(err, RateLimited)
            tesla_calls = after_tesla_failure(tesla_calls, now, retry_after, rate_limited=limited)
        raise
    finally:
        state["tesla"] = dump(tesla_calls)
    digest = built[0] if built else tesla_calls.posted_hash
    if tesla_plan.action == "post":
        from schedule_view import describe

        where = (
            describe(plan, (config.tariff.off_peak_start, config.tariff.off_peak_end), reasons)
            if plan is not None and built and digest == tesla_plan.digest
            else ""
        )
        log.info("Posted tariff %s (%s)%s", tesla_plan.digest[:12], tesla_plan.reason, f": {where}" if where else "")
        answered = frozenset({"Tesla", *(["Octopus"] if built else [])})
        return Outcome(result="posted", posted=True, digest=tesla_plan.digest, plan=plan, answered=answered)
    result: Result = {
        "verify": "verified",
        "wait": "waiting",
        "nothing": "unchanged" if built else "between polls",
    }[tesla_plan.action]
    if octopus_plan.action == "wait" and tesla_plan.action == "nothing":
        result = "backing off"
    log.debug("Tariff %s: %s (%s)", digest[:12], result, tesla_plan.reason)
    answered = frozenset([*(["Octopus"] if built else []), *(["Tesla"] if tesla_plan.action == "verify" else [])])
    return Outcome(result=result, digest=digest, plan=plan, answered=answered)


@dataclass
class Polled:
    """What a poll cost and learnt, for the Octopus schedule (filled in as the poll goes)."""

    requests: int = 0
    dispatches: list[tuple[float, float]] = field(default_factory=list)
    events: list[tuple[float, float]] = field(default_factory=list)
    smart_control: bool = False


def _poll(
    config: Config,
    opts: Options,
    now: datetime,
    state: dict[str, Any],
    polled: Polled,
    redactor: RedactSecrets | None,
) -> tuple[WeekPlan, dict[str, Any], str, Mapping[tuple[date, int], Reason]]:
    """Ask Octopus and build the tariff (printed for --show and --dry-run)."""
    import requests

    from decision import assemble, decide
    from dispatch_rules import SMART_CONTROL
    from octopus import Kraken
    from schedule_view import describe_rules, render_schedule
    from tesla import tou_settings_body

    with requests.Session() as session:
        kraken = Kraken(session, config.octopus, state, timeout=config.debug.timeout_seconds, clock=now.timestamp)
        try:
            facts = gather(config, kraken, state, now)
            gathered, to_join = assemble(config, facts, now)
            if not (opts.dry_run or opts.show):
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
    if opts.show:
        print(render_schedule(plan, now, config.tariff.time_zone, gathered.rates, reasons=gathered.reasons))
        print(describe_rules(gathered.rules))
    if opts.dry_run:
        print(json.dumps(tou_settings_body(tariff), indent=2))
    polled.dispatches = [(d.slot.start.timestamp(), d.slot.end.timestamp()) for d in facts.dispatches.planned]
    polled.events = [(s.start.timestamp(), s.end.timestamp()) for s in gathered.free_slots]
    polled.events += [(s.slot.start.timestamp(), s.slot.end.timestamp()) for s in gathered.saving_sessions]
    polled.smart_control = SMART_CONTROL in facts.dispatches.device_states.values()
    log.debug("Octopus requests this run: %d", kraken.requests_made)
    return plan, tariff, digest, gathered.reasons


def _octopus_limit(err: ServiceError) -> bool:
    return isinstance(err, RateLimited) and err.service == "Octopus"


def _apply(
    config: Config,
    plan: TeslaPlan,
    calls: TeslaCalls,
    state: dict[str, Any],
    now: datetime,
    redactor: RedactSecrets | None,
) -> TeslaCalls:
    """Carry out the Tesla plan; only a post Tesla accepted is recorded as posted."""
    if plan.action not in ("post", "verify"):
        return calls
    import requests

    from decision import tariffs_match
    from tariff import price_grid
    from tariff_restore import keep_original

    site = config.tesla.site_id
    with requests.Session() as session:
        tesla = _tesla(session, config, state, redactor, now)
        if plan.action == "post" and plan.tariff is not None:
            save = functools.partial(_save_now, config, state, redactor)
            keep_original(state, site, tesla, now, save)
            # A post whose record could not be kept would be repeated every minute: prove the state
            # can be written before posting.
            save()
            tesla.post_tariff(site, plan.tariff)
            return after_post(calls, now, plan.digest, plan.tariff)
        ours = calls.posted_tariff or {}
        live = tesla.site_info(site)
    matches = tariffs_match(live, ours)
    if not matches:
        content = live.get("tariff_content_v2")
        live_grid = price_grid(content) if isinstance(content, dict) else None
        difference = first_difference(price_grid(ours) or [], live_grid)
        step = calls.mismatch_step + 1
        log.warning(
            "The live tariff differs from the one we posted (%s); posting ours again in %d minutes",
            difference,
            MISMATCH_DELAYS[min(step, len(MISMATCH_DELAYS) - 1)] // 60,
        )
    return after_verify(calls, now, matches=matches)


# ---- sample data (no credentials needed) --------------------------------------------------


def load_sample(now: datetime | None) -> tuple[Config, Gathered, datetime]:
    """The bundled recorded Octopus answers, run through the same parsers and rules as live data."""
    from decision import Facts, assemble
    from dispatch_rules import resolve_rules

    meta = json.loads((SAMPLE_DIR / "sample.json").read_text(encoding="utf-8"))
    config = load_config(EXAMPLE_PATH, env={}, need_octopus=False, need_tesla=False)
    when = now or datetime.fromisoformat(meta["recorded_at"])
    kraken_data = json.loads((SAMPLE_DIR / "kraken_dispatches.json").read_text(encoding="utf-8"))["data"]
    session_data = json.loads((SAMPLE_DIR / "saving_sessions.json").read_text(encoding="utf-8"))["data"]
    from octopus import live_evs, merge_power_ups, parse_dispatch_data
    from rates import resolve_rates

    tariff = config.tariff
    facts = Facts(
        dispatches=parse_dispatch_data(kraken_data, sorted(live_evs(kraken_data["devices"]))),
        power_up_data=merge_power_ups(kraken_data),
        session_data=session_data,
        rates=resolve_rates(tariff, None),
        rules=resolve_rules(tariff.dispatch_trust, tariff.car_allowance_half_hours, meta.get("import_tariff_code")),
    )
    gathered, _ = assemble(config, facts, when)
    return config, gathered, when


def run_sample(opts: Options) -> int:
    from decision import decide
    from schedule_view import describe_rules, render_schedule
    from tesla import tou_settings_body

    config, gathered, when = load_sample(opts.at)
    plan, tariff, _ = decide(config, gathered, when)
    view = render_schedule(
        plan, when, config.tariff.time_zone, gathered.rates, note=" - bundled sample data", reasons=gathered.reasons
    )
    view += "\n" + describe_rules(gathered.rules)
    if opts.dry_run:
        print(view, file=sys.stderr)
        print(json.dumps(tou_settings_body(tariff), indent=2))
    else:
        print(view)
        print(
            "\nThis was a dry run on bundled sample data; nothing was posted. "
            "Run with a config path (see README) to use your own account."
        )
    return EXIT_OK


# ---- command line ------------------------------------------------------------------------


def _iso(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a time like 2026-11-25T14:00:00+00:00") from err
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} needs a UTC offset, e.g. 2026-11-25T14:00:00+00:00")
    if not 2000 <= parsed.year <= 2100:
        raise argparse.ArgumentTypeError(f"{value!r} is far from today; --at is for previews and replays")
    return parsed


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="config.txt", help="INI config file (default: config.txt)")
    parser.add_argument("--dry-run", action="store_true", help="print the JSON body that would be posted; post nothing")
    parser.add_argument("--show", action="store_true", help="print the next 24 hours as a timeline; post nothing")
    parser.add_argument("--force", action="store_true", help="post even if unchanged; ignore the MQTT flag")
    parser.add_argument("--debug", action="store_true", help="log every step")
    parser.add_argument("--at", type=_iso, help="compute as if it were this ISO 8601 time (previews, replays)")
    parser.add_argument("--sample", action="store_true", help="use bundled sample data; needs no config or keys")
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the config, keys, account, car and Powerwall settings; posts nothing",
    )
    parser.add_argument("--status", action="store_true", help="how recent runs went (exit 1 while failing)")
    parser.add_argument(
        "--restore", action="store_true", help="put back the site's own tariff and pause this config until --resume"
    )
    parser.add_argument("--resume", action="store_true", help="carry on after --restore")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Every run ends with 0, 1 or 2 and a line in the log: an unexpected error is a bug, logged with
    its traceback (in the log file, never on stdout), and exit 1."""
    try:
        return _main(argv)
    except Exception:  # the last line of defence: cron must never lose a failure
        if logging.getLogger().handlers:
            log.exception("Unexpected error (a bug; please report it). Nothing more was posted this run")
        else:
            print("Unexpected error (a bug; please report it):", file=sys.stderr)
            traceback.print_exc(limit=-3)
        return EXIT_SERVICE


def _main(argv: Sequence[str] | None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    opts = Options(dry_run=args.dry_run, show=args.show, force=args.force, debug=args.debug, at=args.at)
    if args.sample:
        setup_logging(None, [], debug=args.debug)
        return run_sample(opts)
    path = Path(args.config).expanduser().resolve()
    if not path.exists():
        if not path.parent.is_dir():
            print(f"{path}: its folder {path.parent} does not exist: check the path", file=sys.stderr)
            return EXIT_CONFIG
        write_template(path)
        print(
            f"No config at {path}; wrote a template there (readable only by you).\n"
            f"Fill in the <...> values under [octopus] and [tesla], then run again.\n"
            f"To look around first:  python3 {Path(sys.argv[0]).name} --sample",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if args.check:
        from health_check import run_check

        return run_check(path, opts.at)
    if args.status or args.restore or args.resume:
        return _user_command(path, args, opts.at or datetime.now(UTC))
    dry = opts.dry_run or opts.show
    try:
        config = load_config(path, need_tesla=not dry)
    except ConfigError as err:
        print(f"Config problems in {path}:", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if config.debug.dry_run or config.debug.force:
        opts = Options(
            dry_run=opts.dry_run or config.debug.dry_run,
            show=opts.show,
            force=opts.force or config.debug.force,
            debug=opts.debug,
            at=opts.at,
        )
    redactor = setup_logging(config.debug.log_file, config.secrets(), debug=opts.debug or config.debug.debug)
    now = opts.at or datetime.now(UTC)
    try:
        with run_lock(config.lock_path) as acquired:
            if not acquired:
                log.debug("Another run for %s is still going; leaving it to finish", path)
                return EXIT_OK
            previous_run = last_run_of(config.lock_path)
            if not (opts.dry_run or opts.show):
                os.utime(config.lock_path, (now.timestamp(), now.timestamp()))  # the last run, for --status
            with run_deadline(RUN_DEADLINE_SECONDS):
                return run(config, opts, now, redactor, previous_run)
    except OSError as err:
        if err.filename != str(config.lock_path):
            raise
        log.error(
            "Cannot open the lock file %s (%s). A run as another user (sudo?) may have left it: "
            "remove it, or give it back with: sudo chown %s %s",
            config.lock_path,
            err.strerror,
            os.environ.get("USER", "$USER"),
            config.lock_path,
        )
        return EXIT_SERVICE


@contextlib.contextmanager
def run_deadline(seconds: float) -> Iterator[None]:
    """Whatever a server does, a run ends in time for the next minute's: past the deadline, the
    request under way is abandoned as an outage. (Requests have their own, shorter deadlines.)"""

    def expire(signum: int, frame: Any) -> None:
        raise ServiceUnavailable("Scheduler", f"the run took over {seconds:g} s; abandoned the request under way")

    try:
        previous = signal.signal(signal.SIGALRM, expire)
    except ValueError:  # not the main thread (an embedding program): no alarm
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _warn_if_readable_by_others(path: Path, state: dict[str, Any]) -> None:
    """The config holds keys: when others may read it, say so on stderr every run, and in the log once."""
    mode = path.stat().st_mode & 0o777
    notes = state.get("notes") if isinstance(state.get("notes"), dict) else None
    if not mode & 0o077:
        if notes is not None and notes.pop("config_mode", None) is not None and not notes:
            state.pop("notes")
        return
    message = f"{path} can be read by other users (mode {mode:o}) and holds your keys: run  chmod 600 {path}"
    if (notes or {}).get("config_mode") == mode:
        print(f"WARNING {message}", file=sys.stderr)
        return
    log.warning("%s", message)
    state.setdefault("notes", {})["config_mode"] = mode


def _user_command(path: Path, args: argparse.Namespace, now: datetime) -> int:
    """--status, --restore and --resume: one short job each, printed for a person."""
    from tariff_restore import pause, resume

    try:
        config = load_config(path, need_octopus=False, need_tesla=bool(args.restore))
    except ConfigError as err:
        print("\n".join(err.problems), file=sys.stderr)
        return EXIT_CONFIG
    if args.status:
        text, code = status_report(path, load_state(config.state_path), last_run_of(config.lock_path), now)
        print(text)
        return code
    redactor = setup_logging(config.debug.log_file, config.secrets(), debug=config.debug.debug)
    with run_lock(config.lock_path) as acquired:
        if not acquired:
            print(f"A run for {path} is under way; try again in a moment", file=sys.stderr)
            return EXIT_SERVICE
        state = load_state(config.state_path)
        if args.resume:
            message = "Resumed: the next run posts the scheduler's tariff" if resume(state) else "Not paused"
        else:
            try:
                name = _restore(config, state, redactor)
            except SchedulerError as err:
                save_state(config.state_path, state)  # a rotated Tesla token must be kept whatever happened
                code, text = cli_failure(err, path)
                print(text, file=sys.stderr)
                return code
            pause(state, now, "--restore")
            message = (
                f"Put back {name} on site {config.tesla.site_id}. The scheduler is paused for {path} "
                "(cron runs do nothing) until you run it with --resume."
            )
        save_state(config.state_path, state)
        log.info("%s", message)
    print(message)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
