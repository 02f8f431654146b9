"""The service clients of a command, built from its config and given their own part of the state."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from iops.app.state import TESLA_AUTH, load_state, run_lock, save_state, tokens_in
from iops.core.errors import ServiceUnavailable, StateUnwritable
from iops.core.settings import Config

if TYPE_CHECKING:
    import requests

    from iops.app.logs import RedactSecrets
    from iops.services.tesla import TeslaSite


def tesla_site(
    session: requests.Session, config: Config, state: dict[str, Any], redactor: RedactSecrets | None, now: datetime
) -> TeslaSite:
    """The Tesla client of a run: tokens it rotates are saved at once and redacted from then on."""
    from iops.services.tesla import connect

    memory = state.get(TESLA_AUTH)
    if not isinstance(memory, dict):
        memory = state[TESLA_AUTH] = {}
    save = functools.partial(save_now, config, state, redactor)
    return connect(session, config.tesla, memory, save, clock=now.timestamp, timeout=config.debug.timeout_seconds)


def save_now(config: Config, state: dict[str, Any], redactor: RedactSecrets | None) -> None:
    """Save at once (a rotated Tesla refresh token must not be lost), and redact the new tokens."""
    try:
        save_state(config.state_path, state)
    except OSError as err:
        raise StateUnwritable(config.state_path, err) from err
    redact_tokens(state, redactor)


def redact_tokens(state: dict[str, Any], redactor: RedactSecrets | None) -> None:
    for token in tokens_in(state):
        if redactor is not None:
            redactor.add(token)


@contextlib.contextmanager
def locked_site(config: Config, session: requests.Session) -> Iterator[TeslaSite]:
    """For the helper commands: the Tesla client under the config's run lock, so that a Fleet refresh
    token rotated on the way is saved where the scheduler will find it."""
    from iops.services.tesla import connect

    with run_lock(config.lock_path) as acquired:
        if not acquired:
            raise ServiceUnavailable("Tesla", "a scheduler run for this config is under way; try again in a moment")
        state = load_state(config.state_path)
        memory = state.get(TESLA_AUTH)
        if not isinstance(memory, dict):
            memory = state[TESLA_AUTH] = {}
        yield connect(
            session,
            config.tesla,
            memory,
            lambda: save_state(config.state_path, state),
            clock=time.time,
            timeout=config.debug.timeout_seconds,
        )
