"""The Tesla side of a run: carry out what the call policy decided (post, or read back and compare)."""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from iops.app.clients import save_now, tesla_site
from iops.core.call_policy import MISMATCH_DELAYS, TeslaCalls, TeslaPlan, after_post, after_verify, first_difference
from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.app.logs import RedactSecrets

log = logging.getLogger(__name__)


def apply(
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

    from iops.app.restore import keep_original
    from iops.core.decision import tariffs_match
    from iops.core.tariff import price_grid

    site = config.tesla.site_id
    with requests.Session() as session:
        tesla = tesla_site(session, config, state, redactor, now)
        if plan.action == "post" and plan.tariff is not None:
            save = functools.partial(save_now, config, state, redactor)
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
