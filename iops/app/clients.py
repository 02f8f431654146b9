"""The service clients of a command, built from its config and given their own part of the state."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from iops.app import cache
from iops.app.lock import run_lock
from iops.app.records import Records
from iops.core.errors import ServiceUnavailable
from iops.core.settings import Config

if TYPE_CHECKING:
    import requests

    from iops.app.logs import RedactSecrets
    from iops.services.tesla import TeslaSite


def tesla_site(session: requests.Session, config: Config, records: Records, clock: Callable[[], float]) -> TeslaSite:
    """The Tesla client: with a Fleet refresh token, its chain comes from (and goes to) the durable records."""
    from iops.services.tesla import connect

    chain = records.fleet_chain(clock()) if config.tesla.refresh_token else None
    return connect(session, config.tesla, chain, records, clock=clock, timeout=config.debug.timeout_seconds)


@contextlib.contextmanager
def locked_site(
    config: Config, session: requests.Session, redactor: RedactSecrets | None = None
) -> Iterator[TeslaSite]:
    """For the helper commands: the Tesla client under the config's run lock, so that a Fleet refresh
    token rotated on the way is kept where the scheduler will find it."""
    with run_lock(config.lock_path) as acquired:
        if not acquired:
            raise ServiceUnavailable("Tesla", "a scheduler run for this config is under way; try again in a moment")
        state = cache.load(config.state_path, time.time())
        with Records(config.store_path, state, redactor) as records:
            yield tesla_site(session, config, records, time.time)
            if records.moved:
                cache.save(config.state_path, records.finish(state))
