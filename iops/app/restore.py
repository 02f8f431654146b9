"""The user's own tariff put back: --restore (which pauses the config until --resume), and
[mqtt] restore_when_off (switched off over MQTT). It is kept before our first post (iops.app.apply).

Putting it back is a Tesla write like any other: it is checked against Tesla's rules, and it waits
for the call policy (back-off, Retry-After, posts 4 minutes apart). The pause is recorded before
the post, so a post whose pause could not be kept never happens; when Tesla asks us to wait, the
next cron run allowed to post puts the tariff back.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iops.app.apply import check_before_posting
from iops.app.clients import tesla_site
from iops.app.exits import EXIT_OK
from iops.app.protected import Job, run_command
from iops.app.store import Pause
from iops.core.call_policy import TeslaCalls, after_restore, after_tesla_error, for_site, plan_restore
from iops.core.errors import ConfigError, CredentialsRejected, ServiceError

log = logging.getLogger(__name__)


class MustWait(Exception):
    """Tesla may not be written to yet (back-off, Retry-After or post spacing); ``until`` says when."""

    def __init__(self, reason: str, until: float) -> None:
        self.reason, self.until = reason, until
        super().__init__(f"{reason}; not before {_clock(until)}")


def own_tariff(job: Job) -> dict[str, Any]:
    """The user's own tariff for this site, checked; raises ConfigError when there is none to put back."""
    site = job.config.tesla.site_id
    own = job.records.store().own_tariff(site)
    if own is None:
        raise ConfigError([f"Nothing to restore for site {site}: the scheduler has not posted to it"])
    if own.tariff is None:
        why = own.note or "the site had no tariff before the scheduler's first post"
        raise ConfigError([f"Site {site}: {why}, so there is none to put back: choose a rate plan in the Tesla app"])
    check_before_posting(own.tariff, f"the tariff kept for site {site}", theirs=True)
    return own.tariff


def name_of(tariff: dict[str, Any]) -> str:
    return str(tariff.get("name") or "your tariff")


def put_back(job: Job) -> str:
    """Post the user's own tariff when the call policy allows (else MustWait); its name."""
    tariff = own_tariff(job)
    site = job.config.tesla.site_id
    calls = for_site(job.state.get(TeslaCalls), site)
    plan = plan_restore(calls, job.now)
    if plan.action == "wait":
        raise MustWait(plan.reason, plan.until)
    import requests

    with requests.Session() as session:
        tesla = tesla_site(session, job.config, job.records, job.now.timestamp)
        try:
            tesla.post_tariff(site, tariff)
        except ServiceError as err:
            if err.service == "Tesla" and not isinstance(err, CredentialsRejected):
                job.state = job.state.put(after_tesla_error(calls, job.now, err))
            raise
    job.state = job.state.put(after_restore(calls, job.now))
    return name_of(tariff)


def restore_command(path: Path, now: datetime) -> int:
    """--restore: pause this config, and put the user's own tariff back (now, or at the first run allowed to)."""

    def work(job: Job) -> int:
        name = name_of(own_tariff(job))  # nothing to put back: say so before pausing anything
        job.save()  # the post's record must be keepable: prove the cache writable before anything changes
        store = job.records.store()
        store.set_pause(Pause(job.now.timestamp(), "--restore", put_back=True))  # before the post, never after
        try:
            put_back(job)
        except MustWait as wait:
            job.say(
                f"Paused {path}: cron runs post nothing of the scheduler's. {name} goes back on site "
                f"{job.config.tesla.site_id} at the first run allowed to post ({wait}); --resume carries on."
            )
            return EXIT_OK
        except ServiceError:
            job.say(f"Paused {path}, but Tesla did not take {name} yet: the next cron runs try again.")
            raise
        store.set_pause(Pause(job.now.timestamp(), "--restore", put_back=False))
        message = (
            f"Put back {name} on site {job.config.tesla.site_id}. The scheduler is paused for {path} "
            "(cron runs do nothing) until you run it with --resume."
        )
        log.info("%s", message)
        job.say(message)
        return EXIT_OK

    return run_command(path, work, now=now, need_octopus=False)


def resume_command(path: Path, now: datetime) -> int:
    """--resume: carry on after --restore."""

    def work(job: Job) -> int:
        resumed = job.records.store().clear_pause()
        message = "Resumed: the next run posts the scheduler's tariff" if resumed else "Not paused"
        if resumed:
            log.info("%s", message)
        job.say(message)
        return EXIT_OK

    return run_command(path, work, now=now, need_octopus=False, need_tesla=False)


def finish_pending_put_back(job: Job, pause: Pause) -> bool:
    """A cron run while paused: put the user's tariff back if --restore could not yet. True when done."""
    try:
        name = put_back(job)
    except MustWait as wait:
        log.debug("The user's own tariff waits to go back: %s", wait)
        return False
    job.records.store().set_pause(Pause(pause.since, pause.why, put_back=False))
    log.info("Put back %s (asked for by %s)", name, pause.why)
    return True


def restore_when_off(job: Job) -> bool | None:
    """[mqtt] restore_when_off, switched off: put the user's own tariff back. True once it is back,
    False when there is nothing to put back (said once), None while Tesla asks us to wait."""
    try:
        name = put_back(job)
    except ConfigError as err:  # nothing kept to restore: say so once, not every minute
        log.warning("Switched off over MQTT; %s", "; ".join(err.problems))
        return False
    except MustWait as wait:
        log.debug("Switched off over MQTT; the user's own tariff waits: %s", wait)
        return None
    log.info("Switched off over MQTT: put back %s (restore_when_off)", name)
    return True


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M UTC")
