"""The cron run: gather (Octopus, clock, state) -> decide (pure) -> apply (post to Tesla, record).

Each run asks the call policy what each service gets this minute, so most runs make no request.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iops.app.clients import redact_tokens
from iops.app.exits import EXIT_CONFIG, EXIT_OK, EXIT_SERVICE
from iops.app.publish import Outcome, Result
from iops.app.state import load_state, save_state
from iops.core.call_policy import (
    after_octopus_failure,
    after_poll,
    after_tesla_failure,
    dump,
    for_site,
    load_calls,
    plan_octopus,
    plan_tesla,
    with_pending,
)
from iops.core.errors import (
    ConfigError,
    CredentialsRejected,
    InvalidTariff,
    RateLimited,
    ServiceError,
    ServiceUnavailable,
    StateUnwritable,
)
from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.app.logs import RedactSecrets
    from iops.services.mqtt import FlagReading

log = logging.getLogger(__name__)
STILL_FAILING_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    show: bool = False
    force: bool = False
    debug: bool = False
    at: datetime | None = None

    @property
    def live(self) -> bool:
        return not (self.dry_run or self.show)


def run(
    config: Config,
    opts: Options,
    now: datetime,
    redactor: RedactSecrets | None = None,
    previous_run: float | None = None,
) -> int:
    """One cron run, under the run lock: every failure ends in an exit code and a line in the log."""
    state = load_state(config.state_path)
    # Steady-state runs change nothing; skipping the write spares an SD card 1,440 writes a day.
    loaded = json.dumps(state, sort_keys=True)
    _warn_if_readable_by_others(config.path, state)

    def save_if_changed() -> None:
        if json.dumps(state, sort_keys=True) != loaded:
            save_state(config.state_path, state)

    if opts.live and state.get("paused"):
        log.debug("Paused since --restore; run with --resume to carry on")
        if config.mqtt.enabled:
            _publish(config, state, Outcome(result="paused"), None, now, redactor)
            save_if_changed()
        return EXIT_OK
    flag: FlagReading | None = None
    if config.mqtt.enabled and not opts.force:
        from iops.services.mqtt import read_enable_flag

        flag = read_enable_flag(config.mqtt)
        if not flag.enabled:
            log.debug("Disabled by MQTT (%s)", flag.reason)
            if opts.live and config.mqtt.restore_when_off and not state.get("restored_when_off"):
                from iops.app.restore import restore_when_off

                restore_when_off(config, state, redactor)
            if opts.live and flag.reachable:
                _publish(config, state, Outcome(result="disabled"), flag, now, redactor)
            if opts.live:
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
        if opts.live and json.dumps(state, sort_keys=True) != loaded:
            try:
                save_state(config.state_path, state)
            except OSError as err:
                log.error("%s", StateUnwritable(config.state_path, err))
                code = EXIT_SERVICE
    if opts.live and config.mqtt.enabled and (flag is None or flag.reachable):
        saved = json.dumps(state, sort_keys=True)
        _publish(config, state, outcome, flag, now, redactor)
        if json.dumps(state, sort_keys=True) != saved:
            save_state(config.state_path, state)
    return code


def _run(
    config: Config, opts: Options, now: datetime, state: dict[str, Any], redactor: RedactSecrets | None
) -> Outcome:
    """Poll Octopus if the policy says so and build the tariff; then post, verify or wait at Tesla."""
    octopus_calls, tesla_calls, problems = load_calls(state)
    for problem in problems:
        log.warning("State file %s: dropped %s", config.state_path, problem)
    tesla_calls = for_site(tesla_calls, config.tesla.site_id)
    octopus_plan = plan_octopus(octopus_calls, now, config.octopus.poll_minutes, force=opts.force or not opts.live)
    redact_tokens(state, redactor)
    built = None
    if octopus_plan.action == "poll":
        from iops.app.gather import Polled, poll

        polled = Polled()
        try:
            built = poll(config, now, state, polled, redactor, live=opts.live, show=opts.show, dry_run=opts.dry_run)
        except ServiceError as err:
            if opts.live:
                limited = isinstance(err, RateLimited) and err.service == "Octopus"
                spent = after_octopus_failure(octopus_calls, now, polled.requests, rate_limited=limited)
                state["octopus_calls"] = dump(spent)
            raise
        if not opts.live:
            return Outcome(result="dry run", digest=built.digest, plan=built.plan)
        octopus_calls = after_poll(
            octopus_calls, now, polled.requests, polled.dispatches, polled.events, smart_control=polled.smart_control
        )
        state["octopus_calls"] = dump(octopus_calls)
    else:
        log.debug("Octopus not polled: %s", octopus_plan.reason)
    fresh = (built.digest, built.tariff) if built else None
    tesla_plan = plan_tesla(tesla_calls, fresh, now, config.tesla.verify_hours, force=opts.force)
    tesla_calls = with_pending(tesla_calls, fresh)
    try:
        from iops.app.apply import apply

        tesla_calls = apply(config, tesla_plan, tesla_calls, state, now, redactor)
    except CredentialsRejected:
        raise
    except ServiceError as err:
        if err.service == "Tesla":  # no Tesla request until the back-off ends; Octopus is still polled
            retry_after = err.retry_after if isinstance(err, RateLimited) else None
            tesla_calls = after_tesla_failure(tesla_calls, now, retry_after, rate_limited=isinstance(err, RateLimited))
        raise
    finally:
        state["tesla"] = dump(tesla_calls)
    digest = built.digest if built else tesla_calls.posted_hash
    if tesla_plan.action == "post":
        from iops.core.schedule_view import describe

        core = (config.tariff.off_peak_start, config.tariff.off_peak_end)
        where = describe(built.plan, core, built.reasons) if built and digest == tesla_plan.digest else ""
        log.info("Posted tariff %s (%s)%s", tesla_plan.digest[:12], tesla_plan.reason, f": {where}" if where else "")
        answered = frozenset({"Tesla", *(["Octopus"] if built else [])})
        plan = built.plan if built else None
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
    return Outcome(result=result, digest=digest, plan=built.plan if built else None, answered=answered)


def _publish(
    config: Config,
    state: dict[str, Any],
    outcome: Outcome,
    flag: FlagReading | None,
    now: datetime,
    redactor: RedactSecrets | None,
) -> None:
    from iops.app.publish import publish_status

    publish_status(config, state, outcome, flag, now, redactor)


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
