"""The user's own tariff: kept before our first post to a site, and put back on request.

--restore posts it back and pauses the scheduler for that config until --resume. With
[mqtt] restore_when_off, switching the scheduler off over MQTT restores it once, too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iops.app.clients import redact_tokens, tesla_site
from iops.app.config import load_config
from iops.app.exits import EXIT_CONFIG, EXIT_OK, EXIT_SERVICE, cli_failure
from iops.app.logs import setup_logging
from iops.app.state import load_state, run_lock, save_state
from iops.core.errors import ConfigError, SchedulerError, ServiceError
from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.app.logs import RedactSecrets
    from iops.services.tesla import TeslaSite

log = logging.getLogger(__name__)


def keep_original(
    state: dict[str, Any], site_id: str, tesla: TeslaSite, now: datetime, save: Callable[[], None]
) -> None:
    """Before the first post to a site, keep the live tariff it replaces (saved at once: after our
    post, the live tariff is ours and the user's would be gone)."""
    originals = state.setdefault("originals", {})
    if site_id in originals:
        return
    live = tesla.site_info(site_id).get("tariff_content_v2")
    originals[site_id] = {"tariff": live if isinstance(live, dict) else None, "kept_at": now.timestamp()}
    save()
    name = live.get("name") if isinstance(live, dict) else None
    log.info("Kept the site's own tariff (%s) for --restore", name or "none set")


def original_of(state: dict[str, Any], site_id: str) -> dict[str, Any] | None:
    """The user's tariff for a site; raises when there is nothing to put back."""
    entry = (state.get("originals") or {}).get(site_id)
    if not isinstance(entry, dict):
        raise ConfigError([f"Nothing to restore for site {site_id}: the scheduler has not posted to it"])
    tariff = entry.get("tariff")
    return tariff if isinstance(tariff, dict) else None


def restore(state: dict[str, Any], site_id: str, tesla: TeslaSite) -> str:
    """Post the user's tariff back; forget what we posted, so that the next post is a full one."""
    tariff = original_of(state, site_id)
    if tariff is None:
        raise ConfigError(
            [
                f"Site {site_id} had no tariff before the scheduler's first post, so there is none to put back: "
                "choose a rate plan in the Tesla app"
            ]
        )
    tesla.post_tariff(site_id, tariff)
    (state.get("tesla") or {}).pop("posted_hash", None)
    return str(tariff.get("name") or "your tariff")


def pause(state: dict[str, Any], now: datetime, why: str) -> None:
    state["paused"] = {"since": now.timestamp(), "why": why}


def resume(state: dict[str, Any]) -> bool:
    return state.pop("paused", None) is not None


def restore_when_off(config: Config, state: dict[str, Any], redactor: RedactSecrets | None) -> None:
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

    redact_tokens(state, redactor)
    with requests.Session() as session:
        tesla = tesla_site(session, config, state, redactor, datetime.now(UTC))
        return restore(state, config.tesla.site_id, tesla)


def restore_command(path: Path, *, resume_only: bool, now: datetime) -> int:
    """--restore and --resume, printed for a person."""
    try:
        config = load_config(path, need_octopus=False, need_tesla=not resume_only)
    except ConfigError as err:
        print("\n".join(err.problems), file=sys.stderr)
        return EXIT_CONFIG
    redactor = setup_logging(config.debug.log_file, config.secrets(), debug=config.debug.debug)
    with run_lock(config.lock_path) as acquired:
        if not acquired:
            print(f"A run for {path} is under way; try again in a moment", file=sys.stderr)
            return EXIT_SERVICE
        state = load_state(config.state_path)
        if resume_only:
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
