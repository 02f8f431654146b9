"""The cron run: gather (Octopus, clock, state) -> decide (pure) -> apply (post to Tesla, record).

Each run asks the call policy what each service gets this minute, so most runs make no request,
open no database and write no file.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from iops.app import cache
from iops.app.exits import EXIT_CONFIG, EXIT_OK, EXIT_SERVICE
from iops.app.failures import Failure, credentials_of, note_failure, note_refusal, note_success
from iops.app.logs import RedactSecrets
from iops.app.notes import Notes
from iops.app.outcome import Outcome, Result
from iops.app.protected import Job
from iops.app.records import Records
from iops.core.call_policy import (
    OctopusCalls,
    TeslaCalls,
    after_octopus_failure,
    after_poll,
    after_tesla_error,
    busy,
    for_site,
    plan_octopus,
    plan_tesla,
    with_pending,
)
from iops.core.errors import (
    ConfigError,
    CredentialsRejected,
    InvalidTariff,
    RateLimited,
    SchedulerError,
    ServiceError,
    ServiceUnavailable,
    StateUnwritable,
)
from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.app.gather import Built
    from iops.app.store import Pause
    from iops.core.bill_check import ToldVersion
    from iops.core.call_policy import TeslaPlan
    from iops.services.mqtt import FlagReading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """How this run was asked to behave (the command line and [debug])."""

    dry_run: bool = False
    show: bool = False
    force: bool = False
    debug: bool = False
    at: datetime | None = None
    poll_now: bool = False  # ask Octopus this run, whatever the call policy's schedule

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
    state = cache.load(config.state_path, now.timestamp())
    loaded = cache.dumps(state)  # a quiet run changes nothing, and writes nothing (the SD card)
    with Records(config.store_path, state, redactor) as records:
        job = Job(config, redactor or RedactSecrets([]), records, state, now)
        _warn_if_readable_by_others(job)
        flag: list[FlagReading] = []  # the MQTT flag, once read
        outcome, code = _outcome(job, opts, previous_run, flag)
        if opts.live:
            code = _save(job, loaded, code)
        if opts.live and config.mqtt.enabled and (not flag or flag[0].reachable):
            from iops.app.publish import publish_status

            before = cache.dumps(job.state)
            job.state = publish_status(config, job.state, outcome, flag[0] if flag else None, now, job.redactor)
            if cache.dumps(job.state) != before:
                cache.save(config.state_path, records.finish(job.state))
    return code


def _outcome(job: Job, opts: Options, previous_run: float | None, flag: list[FlagReading]) -> tuple[Outcome, int]:
    """The run's steps, each failure mapped to an exit code and an outcome (for the MQTT status)."""
    config = job.config
    try:
        refused = _refused_credentials_still_in_config(job)
        if refused is not None:
            return refused, EXIT_CONFIG
        failure = job.state.get(Failure)
        if failure.credentials and failure.credentials != credentials_of(config):
            opts = replace(opts, poll_now=True)  # the user changed what was refused: try it at once
        pause = _paused(job, opts) if opts.live else None
        if config.mqtt.enabled and not opts.force:
            from iops.app.publish import interpret_flag
            from iops.services.mqtt import read_enable_flag

            reading = read_enable_flag(config.mqtt)
            enabled, reading, job.state = interpret_flag(
                job.state, reading, paused=pause is not None, default_when_no_flag=config.mqtt.default_when_no_flag
            )
            flag.append(reading)
            if pause is not None and enabled:  # the Enabled switch, shown off while paused, turned on
                job.records.store().clear_pause()
                log.info("Resumed: the Enabled switch was turned on over MQTT")
                pause = None
            if pause is not None:
                return _paused_outcome(pause), EXIT_OK
            if not enabled:
                log.debug("Disabled by MQTT (%s)", flag[0].reason)
                own_back = _switched_off(job) if opts.live else False
                return Outcome(result="disabled", detail="your own tariff is back" if own_back else ""), EXIT_OK
            _switched_on(job)
        elif pause is not None:
            return _paused_outcome(pause), EXIT_OK
        outcome = _cron(job, opts)
    except CredentialsRejected as err:
        job.state = job.state.put(
            note_refusal(job.state.get(Failure), err, job.now, credentials_of(config), config.path)
        )
        return Outcome(result="error", detail=str(err)), EXIT_CONFIG
    except ConfigError as err:
        for problem in err.problems:
            log.error("%s", problem)
        return Outcome(result="config error"), EXIT_CONFIG
    except ServiceError as err:
        job.state = job.state.put(note_failure(job.state.get(Failure), err, job.now, previous_run, job.redactor.redact))
        return Outcome(result="error", detail=str(err)), EXIT_SERVICE
    except InvalidTariff as err:
        log.error("Built an invalid tariff (a bug, nothing posted): %s" if err.ours else "%s", err)
        return Outcome(result="error", detail="invalid tariff; nothing posted"), EXIT_SERVICE
    except SchedulerError as err:  # our own files: the cache or the durable records
        log.error("%s", err)
        return Outcome(result="error", detail=str(err)), EXIT_SERVICE
    except BrokenPipeError:  # a preview's reader stopped early: not a failure of the run
        raise
    except Exception as err:  # a bug: said in the log and the MQTT status, never silent
        log.exception("Unexpected error (a bug; please report it); nothing more was posted this run")
        detail = f"unexpected {type(err).__name__}: {err}"
        unexpected = ServiceUnavailable("Scheduler", detail)
        failure = note_failure(job.state.get(Failure), unexpected, job.now, previous_run, job.redactor.redact)
        job.state = job.state.put(failure)
        return Outcome(result="error", detail=detail), EXIT_SERVICE
    job.state = job.state.put(note_success(job.state.get(Failure), outcome.answered))
    return outcome, EXIT_OK


def _cron(job: Job, opts: Options) -> Outcome:
    """Poll Octopus if the policy says so and build the tariff; then post, verify or wait at Tesla."""
    config, now = job.config, job.now
    octopus_calls = job.state.get(OctopusCalls)
    tesla_calls = for_site(job.state.get(TeslaCalls), config.tesla.site_id)
    force_poll = opts.force or opts.poll_now or not opts.live
    octopus_plan = plan_octopus(octopus_calls, now, config.octopus.poll_minutes, force=force_poll)
    built = None
    if octopus_plan.action == "poll":
        from iops.app.gather import Polled, poll

        polled = Polled(job.state)
        try:
            built = poll(config, now, polled, job.redactor, live=opts.live, show=opts.show, dry_run=opts.dry_run)
        except ServiceError as err:
            limited = isinstance(err, RateLimited) and err.service == "Octopus"
            spent = after_octopus_failure(octopus_calls, now, polled.requests, rate_limited=limited)
            job.state = polled.state.put(spent)
            raise
        if not opts.live:
            return Outcome(result="dry run", digest=built.digest, plan=built.plan)
        dispatches, events = polled.dispatches, polled.events
        calls = after_poll(octopus_calls, now, polled.requests, dispatches, events, smart_control=polled.smart_control)
        job.state = polled.state.put(calls)
    else:
        log.debug("Octopus not polled: %s", octopus_plan.reason)
    fresh = (built.digest, built.tariff) if built else None
    tesla_plan = plan_tesla(tesla_calls, fresh, now, config.tesla.verify_hours, force=opts.force)
    tesla_calls = with_pending(tesla_calls, fresh)
    try:
        from iops.app.apply import apply

        built_now = built is not None and tesla_plan.tariff is built.tariff
        tesla_calls = apply(
            config, tesla_plan, tesla_calls, job.records, now, built_now=built_now, prove_writable=job.save
        )
    except InvalidTariff:  # one kept in the state (a damaged or foreign one): forget it, so the next poll builds afresh
        tesla_calls = replace(tesla_calls, pending_hash="", pending_tariff=None, posted_hash="", posted_tariff=None)
        raise
    except CredentialsRejected:
        raise
    except ServiceError as err:
        if err.service == "Tesla":  # no Tesla request until the back-off ends; Octopus is still polled
            tesla_calls = after_tesla_error(tesla_calls, now, err)
        raise
    finally:
        job.state = job.state.put(tesla_calls)
    if opts.live and built is not None:  # after the tariff work: the history, then the bill check
        _record_history(job, built, tesla_plan if tesla_plan.action == "post" else None)
        from iops.app.settle import settle_if_due

        # Only on a quiet poll: not while a slot is under way or near, as this poll may just have learnt.
        calls = job.state.get(OctopusCalls)
        quiet = octopus_plan.reason == "due" and not busy(calls, now, config.octopus.poll_minutes)
        calls = settle_if_due(job, calls, quiet=quiet, trust=built.trust)  # it puts its own memory
        job.state = job.state.put(calls)
        if tesla_plan.action == "nothing":  # a minute that wrote nothing to Tesla: the battery check's reads
            from iops.app.battery import live_check_if_due, read_energy_if_due

            tesla_calls = live_check_if_due(job, tesla_calls)  # each puts its own memory
            tesla_calls = read_energy_if_due(job, tesla_calls)
            job.state = job.state.put(tesla_calls)
    elif opts.live and tesla_plan.action == "post":
        _record_history(job, None, tesla_plan)
    digest = built.digest if built else tesla_calls.posted_hash
    plan = built.plan if built else None
    if tesla_plan.action == "post":
        from iops.core.schedule_view import describe

        core = (config.tariff.off_peak_start, config.tariff.off_peak_end)
        where = describe(built.plan, core, built.reasons) if built and digest == tesla_plan.digest else ""
        log.info("Posted tariff %s (%s)%s", tesla_plan.digest[:12], tesla_plan.reason, f": {where}" if where else "")
        answered = frozenset({"Tesla", *(["Octopus"] if built else [])})
        return Outcome(result="posted", posted=True, digest=tesla_plan.digest, plan=plan, answered=answered)
    # Quiet minutes, polled or not, and a read-back that matched all say "up to date": Result changes
    # only when something happens (each change is a logbook entry in Home Assistant).
    result: Result = "waiting" if tesla_plan.action == "wait" else "up to date"
    if tesla_plan.action == "verify" and tesla_calls.repost_at:
        result = "mismatch: reposting"
    if octopus_plan.action == "wait" and tesla_plan.action == "nothing":
        result = "backing off"
    log.debug("Tariff %s: %s (%s)", digest[:12], result, tesla_plan.reason)
    answered = frozenset([*(["Octopus"] if built else []), *(["Tesla"] if tesla_plan.action == "verify" else [])])
    return Outcome(result=result, digest=digest, plan=plan, answered=answered)


def _record_history(job: Job, built: Built | None, posted: TeslaPlan | None) -> None:
    """What the Powerwall was told (a post Tesla accepted), and what this poll saw of the dispatches."""
    from iops.app import history

    store = job.records.store()
    now = job.now
    if built is not None:
        history.record_poll(store, built.dispatches, built.seen, now)
    if posted is None or posted.tariff is None:
        return
    version: ToldVersion | None
    if built is not None and posted.tariff is built.tariff:
        version = history.version_from_built(built, now.timestamp())
    else:  # a repost, or one left pending: read back from the tariff itself
        version = history.version_from_tariff(
            posted.tariff, posted.digest, now.timestamp(), store.reasons_of(posted.digest)
        )
    if version is not None:
        store.record_told(version)


def _paused_outcome(pause: Pause) -> Outcome:
    detail = "your own tariff waits to go back" if pause.put_back else "your own tariff is back"
    return Outcome(result="paused", detail=detail)


def _paused(job: Job, opts: Options) -> Pause | None:
    """The pause --restore set on this config, if any. The pause lives in the durable records, which
    a quiet minute does not open: it is read only when the run has something to do."""
    config, now = job.config, job.now
    tesla_calls = for_site(job.state.get(TeslaCalls), config.tesla.site_id)
    busy = (
        config.mqtt.enabled
        or "paused" in job.records.legacy
        or plan_octopus(job.state.get(OctopusCalls), now, config.octopus.poll_minutes, force=opts.force).action
        == "poll"
        or plan_tesla(tesla_calls, None, now, config.tesla.verify_hours, force=opts.force).action in ("post", "verify")
    )
    if not busy:
        return None
    pause = job.records.store().pause()
    if pause is None:
        return None
    log.debug("Paused since --restore; run with --resume to carry on")
    if pause.put_back:
        from iops.app.restore import finish_pending_put_back

        if finish_pending_put_back(job, pause):
            pause = replace(pause, put_back=False)
    return pause


def _switched_off(job: Job) -> bool:
    """[mqtt] restore_when_off: switched off, the site gets the user's own tariff back, once. True
    while it is back."""
    from iops.app.publish import MqttMemory

    memory = job.state.get(MqttMemory)
    if job.config.mqtt.restore_when_off and not memory.restored_when_off:
        from iops.app.restore import restore_when_off

        back = restore_when_off(job)
        if back is not None:
            memory = replace(job.state.get(MqttMemory), restored_when_off=True, own_back=back)
            job.state = job.state.put(memory)
    return memory.restored_when_off and memory.own_back


def _switched_on(job: Job) -> None:
    from iops.app.publish import MqttMemory

    memory = job.state.get(MqttMemory)
    if memory.restored_when_off:
        job.state = job.state.put(replace(memory, restored_when_off=False, own_back=False))


def _refused_credentials_still_in_config(job: Job) -> Outcome | None:
    """A service refused these very credentials a short while ago: wait for the user to change them
    (or for the back-off to end), rather than be refused again every minute."""
    failure = job.state.get(Failure)
    if not failure.credentials or failure.credentials != credentials_of(job.config):
        return None
    if job.now.timestamp() >= failure.retry_at:
        return None
    log.debug("Still waiting for a change to %s (refused: %s)", failure.key, failure.reason)
    return Outcome(result="error", detail=failure.reason)


def _save(job: Job, loaded: str, code: int) -> int:
    """Keep what the run changed; a cache that cannot be written is an error of the run."""
    state = job.records.finish(job.state)
    if cache.dumps(state) == loaded:
        return code
    try:
        cache.save(job.config.state_path, state)
    except OSError as err:
        log.error("%s", StateUnwritable(job.config.state_path, err))
        return EXIT_SERVICE
    return code


def _warn_if_readable_by_others(job: Job) -> None:
    """The config holds keys: when others may read it, say so on stderr every run, and in the log once."""
    path = job.config.path
    mode = path.stat().st_mode & 0o777
    notes = job.state.get(Notes)
    if not mode & 0o077:
        if notes.config_mode is not None:
            job.state = job.state.put(replace(notes, config_mode=None))
        return
    message = f"{path} can be read by other users (mode {mode:o}) and holds your keys: run  chmod 600 {path}"
    if notes.config_mode == mode:
        print(f"WARNING {message}", file=sys.stderr)
        return
    log.warning("%s", message)
    job.state = job.state.put(replace(notes, config_mode=mode))
