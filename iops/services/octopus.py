"""Octopus Kraken client: token cache, GraphQL and REST through one request function.

Queries are constants (iops.services.kraken_queries) sent with ``variables``; answers are read into
records by iops.services.kraken_answers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from iops import USER_AGENT
from iops.core.bill_check import Settled
from iops.core.dispatch_rules import DispatchData
from iops.core.errors import BadResponse, CredentialsRejected, ServiceUnavailable
from iops.core.rates import AutoRates
from iops.core.settings import OctopusConfig
from iops.services import http
from iops.services.kraken_answers import (
    POWER_UP_KEYS,
    Agreement,
    Reauthenticate,
    agreements_now,
    band_prices,
    band_rate_now,
    check_graphql,
    import_agreement,
    live_evs,
    merge_power_ups,
    parse_agreements,
    parse_dispatch_data,
    parse_measurements,
)
from iops.services.kraken_cache import (
    REFRESH_LIFETIME_BOUND,
    TOKEN_LIFETIME_BOUND,
    CachedList,
    CachedObject,
    KrakenCache,
)
from iops.services.kraken_queries import (
    ACCOUNT_QUERY,
    DEVICES_QUERY,
    DISPATCH_QUERIES,
    FREE_ELECTRICITY_CAMPAIGN,
    JOIN_SAVING_SESSION_MUTATION,
    MAX_EVS,
    MEASUREMENTS_QUERY,
    POWER_UPS_QUERY,
    SAVING_SESSIONS_QUERY,
    TOKEN_MUTATION,
)

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)
SERVICE = "Octopus"
TOKEN_MARGIN = timedelta(minutes=5)
DEVICE_TTL = timedelta(hours=24)
ACCOUNT_TTL = timedelta(hours=24)
RATES_TTL = timedelta(hours=24)
BAND_LOOK_BACK = timedelta(days=7)  # how far back a lagging day/night feed's last rate is looked for
PAGE_SIZE, MAX_PAGES = 100, 4  # a settlement day is 46-62 half-hours: one page, bounded
# Kraken codes that, after a fresh token, mean the key may not see this account.
ACCOUNT_REFUSED_CODES = frozenset({"KT-CT-1111"})


@dataclass(frozen=True)
class PowerUpAnswer:
    """The Power Up part of an answer: the events, or why there are none."""

    data: dict[str, Any] | None  # {"customerFlexibilityCampaignEvents": {"edges": [...]}}
    asked: bool  # False when the account has no import meter point to ask about
    failed: bool = False  # Octopus answered the rest of the query but not this field


def finite(value: Any) -> float | None:
    """A number from a service, or None: booleans, text, NaN, infinities and absurd sizes are refused."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and abs(value) < 1e12:
        return float(value)
    return None


def _jwt_expiry(token: str) -> float | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return finite(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


_LISTS = frozenset({"devices", "electricity_agreements"})  # cached answers that are JSON arrays


class Kraken:
    """Talks to Octopus. It takes its part of the state (``cache``) and keeps it up to date in
    ``self.cache``, a new frozen value after every change, for the caller to save."""

    def __init__(
        self,
        session: requests.Session,
        config: OctopusConfig,
        cache: KrakenCache,
        *,
        timeout: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = session
        self.config = config
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.requests_made = 0
        # Cached entries are only valid for the key and account they were made with.
        identity = hashlib.sha256(f"{config.api_key}|{config.account_number}".encode()).hexdigest()[:16]
        self.cache = cache if cache.identity == identity else KrakenCache(identity=identity)

    # ---- the one way out -----------------------------------------------------------------

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
        self.requests_made += 1
        response = http.send(
            self.session,
            method,
            url,
            service=SERVICE,
            timeout=self.timeout,
            sleep=self.sleep,
            headers=headers,
            allow_redirects=False,  # a token must never follow a redirect to another host
            **kwargs,
        )
        if response.status_code in (401, 403):
            if "json" not in response.headers.get("Content-Type", ""):
                # CloudFront/nginx block pages are an outage at their edge, not a bad key.
                raise ServiceUnavailable(
                    SERVICE, f"HTTP {response.status_code} block page", status=response.status_code
                )
            raise Reauthenticate(str(response.status_code))
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise BadResponse(SERVICE, f"HTTP {response.status_code}", status=response.status_code)
        try:
            return http.json_of(response)
        except ValueError as err:
            raise ServiceUnavailable(
                SERVICE, "answer is not JSON (an error page?)", status=response.status_code
            ) from err

    def graphql(
        self,
        query: str,
        variables: Mapping[str, Any],
        *,
        backend: bool = False,
        accepted_codes: frozenset[str] = frozenset(),
        optional: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Run an authenticated query; on a refused token, mint a new one and retry once."""
        url = self.config.backend_graphql_url if backend else self.config.graphql_url
        why = ""
        for attempt in (1, 2):
            headers = {"Authorization": self.token(force_new=attempt == 2)}
            try:
                body = self._request("POST", url, json={"query": query, "variables": dict(variables)}, headers=headers)
                return check_graphql(body, accepted_codes, optional)
            except Reauthenticate as refused:
                why = str(refused)
                log.info("Octopus refused the token (%s); getting a new one", why)
        if why in ACCOUNT_REFUSED_CODES:  # a token minted this moment still may not see the account
            raise CredentialsRejected(
                SERVICE,
                f"this key may not use account {self.config.account_number} ({why})",
                key="[octopus] account_number",
            )
        raise CredentialsRejected(SERVICE, "token refused twice", key="[octopus] api_key")

    def rest_get(self, path: str, params: Mapping[str, str]) -> Any:
        """GET a public REST resource; None when it does not exist (404)."""
        try:
            return self._request("GET", self.config.rest_url.rstrip("/") + "/" + path.lstrip("/"), params=dict(params))
        except Reauthenticate as err:
            raise BadResponse(SERVICE, f"REST {path} refused ({err})") from err

    # ---- token ---------------------------------------------------------------------------

    def token(self, *, force_new: bool = False) -> str:
        now, cache = self.clock(), self.cache
        if not force_new and cache.token and now < cache.token_expires - TOKEN_MARGIN.total_seconds():
            return cache.token
        if not force_new and cache.refresh_token and now < cache.refresh_expires - 60:
            try:
                return self._mint({"refreshToken": cache.refresh_token})
            except CredentialsRejected:
                log.info("Octopus refresh token refused; using the API key")
        return self._mint({"APIKey": self.config.api_key})

    def _mint(self, auth_input: Mapping[str, str]) -> str:
        body = self._request_token(auth_input)
        try:
            data = check_graphql(body)
        except Reauthenticate as err:
            if "refreshToken" in auth_input:
                raise CredentialsRejected(SERVICE, "refresh token refused", key="[octopus] api_key") from err
            raise CredentialsRejected(SERVICE, f"API key rejected ({err})", key="[octopus] api_key") from err
        result = data.get("obtainKrakenToken")
        result = result if isinstance(result, dict) else {}
        token = result.get("token")
        if not isinstance(token, str) or not token:
            raise BadResponse(SERVICE, "obtainKrakenToken returned no token")
        raw_payload = result.get("payload")
        payload = raw_payload if isinstance(raw_payload, dict) else {}
        now = self.clock()
        # A claimed expiry that is not a sane time is not trusted: an hour, as Kraken's tokens last.
        claimed = finite(payload.get("exp")) or _jwt_expiry(token)
        expires = claimed if claimed is not None and now < claimed <= now + TOKEN_LIFETIME_BOUND else now + 3600
        refresh = result.get("refreshToken")
        refresh_expires = finite(result.get("refreshExpiresIn"))
        keep_refresh = isinstance(refresh, str) and bool(refresh) and refresh_expires is not None
        self.cache = replace(
            self.cache,
            token=token,
            token_expires=expires,
            refresh_token=refresh if keep_refresh and isinstance(refresh, str) else self.cache.refresh_token,
            refresh_expires=min(refresh_expires, now + REFRESH_LIFETIME_BOUND)
            if keep_refresh and refresh_expires is not None
            else self.cache.refresh_expires,
        )
        return token

    def _request_token(self, auth_input: Mapping[str, str]) -> Any:
        try:
            return self._request(
                "POST",
                self.config.graphql_url,
                json={"query": TOKEN_MUTATION, "variables": {"input": dict(auth_input)}},
            )
        except Reauthenticate as err:
            raise CredentialsRejected(SERVICE, f"token request refused ({err})", key="[octopus] api_key") from err

    # ---- cached look-ups -----------------------------------------------------------------

    def cached(self, key: str, ttl: timedelta, produce: Callable[[], Any]) -> Any:
        """An answer kept in the cache for ``ttl``; ``produce`` runs only when it is stale."""
        entry = getattr(self.cache, key)
        if entry is not None and self.clock() - entry.at < ttl.total_seconds() and entry.value is not None:
            return list(entry.value) if key in _LISTS else entry.value
        value = produce()
        self.keep(key, value)
        return value

    def keep(self, key: str, value: Any) -> None:
        """Keep an answer (read now) in the cache."""
        at = self.clock()
        changes: dict[str, Any] = {key: CachedList(at, tuple(value)) if key in _LISTS else CachedObject(at, value)}
        self.cache = replace(self.cache, **changes)

    def forget(self, key: str) -> None:
        """Drop a cached answer, so that the next use asks again."""
        changes: dict[str, Any] = {key: None}
        self.cache = replace(self.cache, **changes)

    def devices(self) -> list[str]:
        """The account's live EVs and chargers (at most MAX_EVS), cached for a day."""
        found = self.cached("devices", DEVICE_TTL, self._find_devices)
        return [str(d) for d in found] if isinstance(found, list) else []

    def _find_devices(self) -> list[str]:
        data = self.graphql(DEVICES_QUERY, {"accountNumber": self.config.account_number})
        return self._remember_devices(data.get("devices"), known=None)

    def _remember_devices(self, devices: Any, known: Sequence[str] | None) -> list[str]:
        """The live EVs in an answer; the warnings about them are logged when the list changes."""
        evs = sorted(live_evs(devices))
        if known is None or evs[:MAX_EVS] != list(known):
            if not evs:
                log.warning("No live smart-charging device on the account; only the fixed window is used")
            elif len(evs) > MAX_EVS:
                log.warning("%d EVs on the account; only the first %d are followed", len(evs), MAX_EVS)
        return evs[:MAX_EVS]

    def agreements(self) -> list[Agreement]:
        """Electricity agreements (import and export, current and future), cached for a day."""

        def fetch() -> list[dict[str, str]]:
            data = self.graphql(ACCOUNT_QUERY, {"accountNumber": self.config.account_number})
            return [a.__dict__ for a in parse_agreements(data)]

        try:
            return [Agreement(**a) for a in self.cached("electricity_agreements", ACCOUNT_TTL, fetch)]
        except (TypeError, BadResponse):
            self.forget("electricity_agreements")  # a cache from another version: ask again
            return [Agreement(**a) for a in self.cached("electricity_agreements", ACCOUNT_TTL, fetch)]

    def dispatches_and_power_ups(self, now: datetime, *, power_ups: bool) -> tuple[DispatchData, PowerUpAnswer]:
        """Every EV's dispatches and state, plus Power Up events when asked, in one request.

        An error confined to the Power Up fields does not fail the run: the answer then says so
        (``PowerUpAnswer.failed``) and the caller falls back on the last good list.
        """
        devices = self.devices()
        agreement = import_agreement(self.agreements(), now) if power_ups else None
        variables: dict[str, str] = {"accountNumber": self.config.account_number}
        variables.update({f"device{i}": device for i, device in enumerate(devices)})
        if agreement is not None:
            variables.update(mpan=agreement.mpan, campaignSlug=FREE_ELECTRICITY_CAMPAIGN)
        query = DISPATCH_QUERIES[(len(devices), agreement is not None)]
        data = self.graphql(query, variables, optional=frozenset(POWER_UP_KEYS))
        if data.get("devices") is not None:
            seen = self._remember_devices(data["devices"], known=devices)
            if seen != devices:  # a car added or removed: follow it from the next run
                self.keep("devices", seen)
        if agreement is None:
            return parse_dispatch_data(data, devices), PowerUpAnswer(None, asked=False)
        merged = merge_power_ups(data)
        return parse_dispatch_data(data, devices), PowerUpAnswer(merged, asked=True, failed=merged is None)

    def power_ups(self, now: datetime) -> PowerUpAnswer:
        """Power Up events alone, for the listing helper."""
        agreement = import_agreement(self.agreements(), now)
        if agreement is None:
            return PowerUpAnswer(None, asked=False)
        variables = {
            "accountNumber": self.config.account_number,
            "mpan": agreement.mpan,
            "campaignSlug": FREE_ELECTRICITY_CAMPAIGN,
        }
        merged = merge_power_ups(self.graphql(POWER_UPS_QUERY, variables, optional=frozenset(POWER_UP_KEYS)))
        return PowerUpAnswer(merged, asked=True, failed=merged is None)

    def saving_sessions(self) -> dict[str, Any]:
        return self.graphql(SAVING_SESSIONS_QUERY, {"accountNumber": self.config.account_number}, backend=True)

    def measurements(
        self, mpan: str, start: datetime, end: datetime, *, max_pages: int = MAX_PAGES
    ) -> tuple[list[Settled], bool]:
        """The import meter's settled half-hours from start to end, paged (100 a page), filtered to the
        window here (whether Octopus counts an interval starting at ``end`` is not documented); and
        whether a property of the account holds the meter at all."""
        variables: dict[str, Any] = {
            "accountNumber": self.config.account_number,
            "mpan": mpan,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "first": PAGE_SIZE,
            "after": None,
        }
        found: dict[datetime, Settled] = {}
        for _ in range(max_pages):
            page = parse_measurements(self.graphql(MEASUREMENTS_QUERY, variables), mpan)
            if not page.found_meter:
                return [], False
            found.update((s.start, s) for s in page.settled if start <= s.start < end)
            if page.next_cursor is None:
                break
            variables["after"] = page.next_cursor
        return [found[k] for k in sorted(found)], True

    def join_saving_session(self, code: str) -> Sequence[str]:
        data = self.graphql(
            JOIN_SAVING_SESSION_MUTATION, {"accountNumber": self.config.account_number, "eventCode": code}, backend=True
        )
        joined = (data.get("joinSavingSessionsEvent") or {}).get("joinedEventCodes") or []
        return [str(c) for c in joined]


# ---- unit rates (rates = auto) -------------------------------------------------------------


def fetch_auto_rates(kraken: Kraken, now: datetime) -> AutoRates:
    """Today's import peak/off-peak and export rate for the account (no cache; see cached_auto_rates)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {
        "period_from": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "period_to": (day + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    found: dict[str, float | None] = {"import_peak": None, "import_off_peak": None, "export": None}
    codes = []
    for agreement in agreements_now(kraken.agreements(), now):
        base = f"products/{agreement.product_code}/electricity-tariffs/{agreement.tariff_code}"
        codes.append(agreement.tariff_code)
        standard = band_prices(kraken.rest_get(f"{base}/standard-unit-rates/", window))
        if agreement.direction == "EXPORT":
            found["export"] = max(standard) if standard else None
            continue
        if len(set(standard)) >= 2:  # time-banded IOG series: cheapest band is the off-peak
            found["import_peak"], found["import_off_peak"] = max(standard), min(standard)
            continue
        # The 2026 products (IOG-SMB-*, INTELLI-FIX-OEV) publish day and night rates with no times:
        # each band's rate valid now comes from its own feed (the window is always 23:30-05:30 local,
        # never derived from a feed), and a feed that lags keeps its own last rate.
        recent = {
            "period_from": (now - BAND_LOOK_BACK).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "period_to": window["period_to"],
        }
        for band, key in (("day", "import_peak"), ("night", "import_off_peak")):
            rate = band_rate_now(kraken.rest_get(f"{base}/{band}-unit-rates/", recent), now)
            if rate is None:
                continue
            found[key] = rate[0]
            if rate[1]:
                log.warning(
                    "Octopus has not published today's %s rate for %s yet: using its last one, £%.4f",
                    band,
                    agreement.tariff_code,
                    rate[0],
                )
    return AutoRates(**found, source=", ".join(codes))


def cached_auto_rates(kraken: Kraken, now: datetime) -> AutoRates:
    """Rates cached for a day, and read again at once when another agreement takes over."""
    codes = ", ".join(a.tariff_code for a in agreements_now(kraken.agreements(), now))
    entry = kraken.cache.auto_rates
    if entry is not None and (entry.value or {}).get("source") != codes:
        kraken.forget("auto_rates")
    value = kraken.cached("auto_rates", RATES_TTL, lambda: fetch_auto_rates(kraken, now).__dict__)
    try:
        return AutoRates(**value)
    except TypeError:  # a cache of another version's making: read the rates again
        kraken.forget("auto_rates")
        return AutoRates(**kraken.cached("auto_rates", RATES_TTL, lambda: fetch_auto_rates(kraken, now).__dict__))
