"""The Octopus client's part of the state (the "octopus" section): its token and cached answers.

Kept apart from the client so that loading the state does not load the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iops.core.memory import PAST, ahead

TOKEN_LIFETIME_BOUND = 2 * 3600.0  # Kraken tokens last an hour
REFRESH_LIFETIME_BOUND = 8 * 86400.0  # refresh tokens last a week


@dataclass(frozen=True)
class CachedList:
    """An answer kept from an earlier run (a JSON array), and when it was read."""

    at: float = field(default=0.0, metadata=PAST)
    value: tuple[Any, ...] = ()


@dataclass(frozen=True)
class CachedObject:
    """An answer kept from an earlier run (a JSON object, or null), and when it was read."""

    at: float = field(default=0.0, metadata=PAST)
    value: dict[str, Any] | None = None


@dataclass(frozen=True)
class JoinAttempt:
    """A saving-session join we asked for, and what Octopus answered: a join is its claim, not proof,
    until ``joinedEvents`` lists the event."""

    code: str
    at: float = field(default=0.0, metadata=PAST)
    claimed: bool = False  # Octopus said joined (or "already signed up")
    said: bool = False  # a disagreement with joinedEvents was logged


@dataclass(frozen=True)
class KrakenCache:
    """Valid only for the key and account it was made with (``identity``)."""

    identity: str = ""
    token: str = ""
    token_expires: float = field(default=0.0, metadata=ahead(TOKEN_LIFETIME_BOUND))
    refresh_token: str = ""
    refresh_expires: float = field(default=0.0, metadata=ahead(REFRESH_LIFETIME_BOUND))
    devices: CachedList | None = None
    electricity_agreements: CachedList | None = None
    saving_sessions: CachedObject | None = None
    auto_rates: CachedObject | None = None
    power_ups: CachedObject | None = None  # the last good Power Up list, for when that field alone fails
    power_ups_failing: bool = False
    joins: tuple[JoinAttempt, ...] = ()
