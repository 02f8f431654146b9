"""A command's durable records: the store, opened on first use, and the Fleet token chain kept in it.

A quiet cron minute never gets here. The first command of this version to open the store moves in
the durable sections an older version kept in the cache (the token chain, own tariffs, the pause).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from iops.app.cache import LEGACY_DURABLE, State

if TYPE_CHECKING:  # a quiet minute makes a Records but never opens the store: these load when it does
    from pathlib import Path

    from iops.app.logs import RedactSecrets
    from iops.app.store import Store
    from iops.services.tesla import FleetChain

log = logging.getLogger(__name__)


class Records:
    """The store of one command (context manager: closed at the end)."""

    def __init__(self, path: Path, state: State, redactor: RedactSecrets | None = None) -> None:
        self.path = path
        self.redactor = redactor
        self.legacy: Mapping[str, Any] = {k: state.legacy(k) for k in LEGACY_DURABLE if state.legacy(k) is not None}
        self.moved = False  # the cache's legacy sections now live in the store: drop them from the cache
        self._store: Store | None = None

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *_: object) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def store(self) -> Store:
        """The store, made if missing; the legacy sections moved in the first time."""
        if self._store is None:
            from iops.app.store import Store

            store = Store.open(self.path)
            if store is None:  # Store.open makes a missing file; a None here is a bug
                raise RuntimeError(f"the durable records {self.path} could not be made")
            self._store = store
            if self.legacy:
                moved = store.take_over(self.legacy)
                if moved:
                    log.info("Moved %s from the state file to the durable records %s", ", ".join(moved), self.path)
                self.moved = True
        return self._store

    def existing(self) -> Store | None:
        """The store if it exists, without making one (for commands that only read)."""
        if self._store is None:
            from iops.app.store import Store

            self._store = Store.open(self.path, create=False)
        return self._store

    def finish(self, state: State) -> State:
        """The cache to save: without the sections the store has taken over."""
        return state.without_legacy() if self.moved else state

    # ---- the Fleet token chain (a ChainKeeper for iops.services.tesla) ---------------------

    def fleet_chain(self, now: float) -> FleetChain | None:
        chain = self.store().fleet_chain(now)
        self._redact(chain)
        return chain

    def ready(self) -> None:
        self.store().ready()

    def keep(self, chain: FleetChain) -> None:
        self._redact(chain)  # first: a failure to keep it must not print it
        self.store().keep_fleet_chain(chain)

    def _redact(self, chain: FleetChain | None) -> None:
        if chain is not None and self.redactor is not None:
            for token in (chain.refresh_token, chain.access_token):
                self.redactor.add(token)
