"""The Tesla side of a run: carry out what the call policy decided (post, or read back and compare)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from iops.app.clients import tesla_site
from iops.app.records import Records
from iops.core.call_policy import MISMATCH_DELAYS, TeslaCalls, TeslaPlan, after_post, after_verify, first_difference
from iops.core.errors import InvalidTariff
from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.services.tesla import TeslaSite

log = logging.getLogger(__name__)


def apply(
    config: Config,
    plan: TeslaPlan,
    calls: TeslaCalls,
    records: Records,
    now: datetime,
    *,
    built_now: bool,
    prove_writable: Callable[[], None],
) -> TeslaCalls:
    """Carry out the Tesla plan; only a post Tesla accepted is recorded as posted.

    ``built_now``: the tariff to post was built (and checked) this run; one taken from the state is
    checked here, since the state may be foreign or damaged. ``prove_writable`` saves the cache: a
    post whose record could not be kept would be repeated every minute.
    """
    if plan.action not in ("post", "verify"):
        return calls
    if plan.action == "post" and plan.tariff is not None and not built_now:
        check_before_posting(plan.tariff, "the tariff kept in the state file")
    import requests

    from iops.core.decision import tariffs_match
    from iops.core.tariff import price_grid

    site = config.tesla.site_id
    with requests.Session() as session:
        tesla = tesla_site(session, config, records, now.timestamp)
        if plan.action == "post" and plan.tariff is not None:
            keep_own_tariff(records, site, tesla, now)
            prove_writable()
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


def check_before_posting(tariff: dict[str, Any], what: str, *, theirs: bool = False) -> None:
    """Tesla's rules, for a tariff this run did not build: never post one that breaks them."""
    from iops.core.tariff import validate_tariff

    problems = validate_tariff(tariff, theirs=theirs)
    if problems:
        raise InvalidTariff(f"{what} breaks Tesla's rules ({'; '.join(problems[:3])}); not posted", ours=False)


def keep_own_tariff(records: Records, site_id: str, tesla: TeslaSite, now: datetime) -> None:
    """Before the first post to a site, keep the live tariff it replaces, in the durable records (after
    our post, the live tariff is ours and the user's would be gone). Our own tariff, found live on a
    site we have no record of, is not the user's: it is noted, never kept as theirs."""
    from iops.app.store import OwnTariff
    from iops.core.tariff import TARIFF_CODE

    store = records.store()
    if store.own_tariff(site_id) is not None:
        return
    live = tesla.site_info(site_id).get("tariff_content_v2")
    if isinstance(live, dict) and live.get("code") == TARIFF_CODE:
        own = OwnTariff(None, now.timestamp(), note="the site already had the scheduler's tariff when first seen")
        log.warning(
            "Site %s already has the scheduler's tariff and no record of the user's own: "
            "--restore will have nothing to put back",
            site_id,
        )
    else:
        own = OwnTariff(live if isinstance(live, dict) else None, now.timestamp())
        name = live.get("name") if isinstance(live, dict) else None
        log.info("Kept the site's own tariff (%s) for --restore", name or "none set")
    store.keep_own_tariff(site_id, own)
