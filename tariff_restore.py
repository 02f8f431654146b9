"""The user's own tariff: kept before our first post to a site, and put back on request.

--restore posts it back and pauses the scheduler for that config until --resume. With
[mqtt] restore_when_off, switching the scheduler off over MQTT restores it once, too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from errors import ConfigError

if TYPE_CHECKING:
    from tesla import TeslaSite

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
