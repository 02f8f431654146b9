"""Octopus Kraken client: token cache, GraphQL and REST through one request function.

Queries are constants sent with ``variables``; values are never put into query text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import http_retry
from config import OctopusConfig
from errors import BadResponse, CredentialsRejected, RateLimited, ServiceUnavailable
from tariff import Slot

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)
SERVICE = "Octopus"
USER_AGENT = "io-powerwall-scheduler/1.0"
TOKEN_MARGIN = timedelta(minutes=5)
DEVICE_TTL = timedelta(hours=24)
ACCOUNT_TTL = timedelta(hours=24)
FREE_ELECTRICITY_CAMPAIGN = "free_electricity"

TOKEN_MUTATION = """
mutation ObtainToken($input: ObtainJSONWebTokenInput!) {
  obtainKrakenToken(input: $input) { token refreshToken refreshExpiresIn payload }
}
"""

DEVICES_QUERY = """
query Devices($accountNumber: String!) {
  devices(accountNumber: $accountNumber) { id deviceType status { current } }
}
"""

# One request per run in steady state: device state, planned and completed dispatches.
DISPATCHES_QUERY = """
query Dispatches($accountNumber: String!, $deviceId: String!) {
  devices(accountNumber: $accountNumber, deviceId: $deviceId) { id status { currentState } }
  flexPlannedDispatches(deviceId: $deviceId) { start end type energyAddedKwh }
  completedDispatches(accountNumber: $accountNumber) { start end delta meta { source location } }
}
"""

# The same, with Power Up events batched in when the feature is on.
DISPATCHES_AND_POWER_UPS_QUERY = """
query DispatchesAndPowerUps($accountNumber: String!, $deviceId: String!, $mpan: String!, $campaignSlug: String!) {
  devices(accountNumber: $accountNumber, deviceId: $deviceId) { id status { currentState } }
  flexPlannedDispatches(deviceId: $deviceId) { start end type energyAddedKwh }
  completedDispatches(accountNumber: $accountNumber) { start end delta meta { source location } }
  customerFlexibilityCampaignEvents(
    accountNumber: $accountNumber, campaignSlug: $campaignSlug, supplyPointIdentifier: $mpan, first: 20
  ) { edges { node { code name startAt endAt isEventParticipant } } }
}
"""

POWER_UPS_QUERY = """
query PowerUps($accountNumber: String!, $mpan: String!, $campaignSlug: String!) {
  customerFlexibilityCampaignEvents(
    accountNumber: $accountNumber, campaignSlug: $campaignSlug, supplyPointIdentifier: $mpan, first: 20
  ) { edges { node { code name startAt endAt isEventParticipant } } }
}
"""

ACCOUNT_QUERY = """
query Account($accountNumber: String!) {
  account(accountNumber: $accountNumber) {
    electricityAgreements(active: true) {
      meterPoint {
        mpan
        direction
        agreements(includeInactive: false) {
          validFrom validTo tariff { ... on TariffType { productCode tariffCode } }
        }
      }
    }
  }
}
"""

# Saving sessions moved to the backend host in February 2026; it wants the raw token.
SAVING_SESSIONS_QUERY = """
query SavingSessions($accountNumber: String!) {
  savingSessions {
    events(includeDev: false) {
      id code rewardPerKwhInOctoPoints startAt endAt eventType targetRegion { regionId }
    }
    account(accountNumber: $accountNumber) {
      signedUpMeterPoint { regionId }
      hasJoinedCampaign
      joinedEvents { eventId startAt endAt }
    }
  }
}
"""

JOIN_SAVING_SESSION_MUTATION = """
mutation JoinSavingSession($accountNumber: String!, $eventCode: String!) {
  joinSavingSessionsEvent(input: {accountNumber: $accountNumber, eventCode: $eventCode}) { joinedEventCodes }
}
"""

# Kraken codes meaning "get a new token and try once more".
REAUTH_CODES = frozenset({"KT-CT-1124", "KT-CT-1120", "KT-CT-1143", "KT-CT-1111", "KT-CT-1112"})
KEY_REJECTED_CODES = frozenset({"KT-CT-1139"})
REFRESH_REJECTED_CODES = frozenset({"KT-CT-1134", "KT-CT-1135"})
RATE_LIMIT_CODES = frozenset({"KT-CT-1199"})


class _Reauthenticate(Exception):
    """Internal: the token was refused; mint a new one and retry once."""


def check_graphql(body: Any, accepted_codes: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Return ``data`` from a GraphQL envelope or raise the error for whoever is at fault."""
    if not isinstance(body, dict):
        raise BadResponse(SERVICE, "GraphQL answer is not a JSON object")
    errors = body.get("errors") or []
    for err in errors if isinstance(errors, list) else [errors]:
        entry = err if isinstance(err, dict) else {}
        code = str((entry.get("extensions") or {}).get("errorCode") or "")
        message = str(entry.get("message") or "")
        if code in accepted_codes:
            continue
        if code in RATE_LIMIT_CODES:
            raise RateLimited(SERVICE, f"rate limited ({code})")
        if code in KEY_REJECTED_CODES:
            raise CredentialsRejected(SERVICE, f"API key rejected ({code})", key="[octopus] api_key")
        if code in REAUTH_CODES or code in REFRESH_REJECTED_CODES:
            raise _Reauthenticate(code)
        raise BadResponse(SERVICE, f"GraphQL error {code or 'without code'}: {message}".rstrip(": "))
    data = body.get("data")
    if not isinstance(data, dict):
        raise BadResponse(SERVICE, "GraphQL answer has no data")
    return data


def parse_time(value: Any) -> datetime:
    """Kraken time strings: ISO 8601 with offset (also the legacy space-separated form)."""
    if not isinstance(value, str):
        raise BadResponse(SERVICE, f"expected a time string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError as err:
        raise BadResponse(SERVICE, f"unreadable time {value!r}") from err
    if parsed.tzinfo is None:
        raise BadResponse(SERVICE, f"time without offset {value!r}")
    return parsed


def _is_smart(source: Any) -> bool:
    # A missing source counts as a smart charge; bump charges and boosts are billed at peak.
    return source is None or str(source).lower() in ("smart", "smart-charge")


def parse_dispatches(data: Mapping[str, Any]) -> list[Slot]:
    """Smart dispatches at home, planned and completed, as slots (BOOST/TEST/away excluded)."""
    planned = data.get("flexPlannedDispatches")
    completed = data.get("completedDispatches")
    if not isinstance(planned, list) or not isinstance(completed, list):
        raise BadResponse(SERVICE, "dispatch lists missing from the answer")
    slots: list[Slot] = []
    for item in planned:
        if not isinstance(item, dict):
            raise BadResponse(SERVICE, "planned dispatch is not an object")
        if str(item.get("type") or "SMART").upper() != "SMART":
            continue
        slots.append(Slot(parse_time(item.get("start")), parse_time(item.get("end"))))
    for item in completed:
        if not isinstance(item, dict):
            raise BadResponse(SERVICE, "completed dispatch is not an object")
        meta = item.get("meta") or {}
        location = meta.get("location")
        if location not in (None, "AT_HOME") or not _is_smart(meta.get("source")):
            continue
        slots.append(Slot(parse_time(item.get("start")), parse_time(item.get("end"))))
    return sorted(set(slots), key=lambda s: (s.start, s.end))


@dataclass(frozen=True)
class Agreement:
    mpan: str
    direction: str
    product_code: str
    tariff_code: str


def parse_agreements(data: Mapping[str, Any]) -> list[Agreement]:
    account = data.get("account")
    if not isinstance(account, dict):
        raise BadResponse(SERVICE, "account missing from the answer")
    out = []
    for entry in account.get("electricityAgreements") or []:
        point = (entry or {}).get("meterPoint") or {}
        for agreement in point.get("agreements") or []:
            tariff = (agreement or {}).get("tariff") or {}
            if point.get("mpan") and tariff.get("tariffCode"):
                out.append(
                    Agreement(
                        mpan=str(point["mpan"]),
                        direction=str(point.get("direction") or "IMPORT").upper(),
                        product_code=str(tariff.get("productCode") or ""),
                        tariff_code=str(tariff["tariffCode"]),
                    )
                )
    return out


def _jwt_expiry(token: str) -> float | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


class Kraken:
    """Talks to Octopus. ``state`` is the caller's dict; it is updated in place for saving."""

    def __init__(
        self,
        session: requests.Session,
        config: OctopusConfig,
        state: dict[str, Any],
        *,
        timeout: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = session
        self.config = config
        self.state = state.setdefault("octopus", {})
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.requests_made = 0
        # Cached entries are only valid for the key and account they were made with.
        self.identity = hashlib.sha256(f"{config.api_key}|{config.account_number}".encode()).hexdigest()[:16]
        if self.state.get("identity") != self.identity:
            self.state.clear()
            self.state["identity"] = self.identity

    # ---- the one way out -----------------------------------------------------------------

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
        self.requests_made += 1
        response = http_retry.send(
            self.session,
            method,
            url,
            service=SERVICE,
            timeout=self.timeout,
            sleep=self.sleep,
            headers=headers,
            **kwargs,
        )
        if response.status_code in (401, 403):
            if "json" not in response.headers.get("Content-Type", ""):
                # CloudFront/nginx block pages are an outage at their edge, not a bad key.
                raise ServiceUnavailable(
                    SERVICE, f"HTTP {response.status_code} block page", status=response.status_code
                )
            raise _Reauthenticate(str(response.status_code))
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise BadResponse(SERVICE, f"HTTP {response.status_code}", status=response.status_code)
        try:
            return response.json()
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
    ) -> dict[str, Any]:
        """Run an authenticated query; on a refused token, mint a new one and retry once."""
        url = self.config.backend_graphql_url if backend else self.config.graphql_url
        for attempt in (1, 2):
            headers = {"Authorization": self.token(force_new=attempt == 2)}
            try:
                body = self._request("POST", url, json={"query": query, "variables": dict(variables)}, headers=headers)
                return check_graphql(body, accepted_codes)
            except _Reauthenticate as why:
                log.info("Octopus refused the token (%s); getting a new one", why)
        raise CredentialsRejected(SERVICE, "token refused twice", key="[octopus] api_key")

    def rest_get(self, path: str, params: Mapping[str, str]) -> Any:
        """GET a public REST resource; None when it does not exist (404)."""
        try:
            return self._request("GET", self.config.rest_url.rstrip("/") + "/" + path.lstrip("/"), params=dict(params))
        except _Reauthenticate as err:
            raise BadResponse(SERVICE, f"REST {path} refused ({err})") from err

    # ---- token ---------------------------------------------------------------------------

    def token(self, *, force_new: bool = False) -> str:
        now = self.clock()
        cached = self.state.get("token")
        if not force_new and cached and now < float(self.state.get("token_expires", 0)) - TOKEN_MARGIN.total_seconds():
            return str(cached)
        refresh = self.state.get("refresh_token")
        if not force_new and refresh and now < float(self.state.get("refresh_expires", 0)) - 60:
            try:
                return self._mint({"refreshToken": refresh})
            except CredentialsRejected:
                log.info("Octopus refresh token refused; using the API key")
        return self._mint({"APIKey": self.config.api_key})

    def _mint(self, auth_input: Mapping[str, str]) -> str:
        body = self._request_token(auth_input)
        try:
            data = check_graphql(body)
        except _Reauthenticate as err:
            if "refreshToken" in auth_input:
                raise CredentialsRejected(SERVICE, "refresh token refused", key="[octopus] api_key") from err
            raise CredentialsRejected(SERVICE, f"API key rejected ({err})", key="[octopus] api_key") from err
        result = data.get("obtainKrakenToken") or {}
        token = result.get("token")
        if not isinstance(token, str) or not token:
            raise BadResponse(SERVICE, "obtainKrakenToken returned no token")
        raw_payload = result.get("payload")
        payload = raw_payload if isinstance(raw_payload, dict) else {}
        expires = payload.get("exp") or _jwt_expiry(token) or self.clock() + 3600
        self.state.update(
            token=token,
            token_expires=float(expires),
            refresh_token=result.get("refreshToken") or self.state.get("refresh_token"),
            refresh_expires=float(result.get("refreshExpiresIn") or self.state.get("refresh_expires") or 0),
        )
        return token

    def _request_token(self, auth_input: Mapping[str, str]) -> Any:
        try:
            return self._request(
                "POST",
                self.config.graphql_url,
                json={"query": TOKEN_MUTATION, "variables": {"input": dict(auth_input)}},
            )
        except _Reauthenticate as err:
            raise CredentialsRejected(SERVICE, f"token request refused ({err})", key="[octopus] api_key") from err

    # ---- cached look-ups -----------------------------------------------------------------

    def cached(self, key: str, ttl: timedelta, produce: Callable[[], Any]) -> Any:
        """A value kept in the state for ``ttl``; ``produce`` runs only when it is stale."""
        entry = self.state.get(key)
        if isinstance(entry, dict) and self.clock() - float(entry.get("at", 0)) < ttl.total_seconds():
            value = entry.get("value")
            if value is not None:
                return value
        value = produce()
        self.state[key] = {"at": self.clock(), "value": value}
        return value

    def device_id(self) -> str | None:
        """The account's live smart-charging device, cached for a day."""
        return str(self.cached("device", DEVICE_TTL, self._find_device)) or None

    def _find_device(self) -> str:
        """The first live EV or charger on the account; '' (cached too) when there is none."""
        data = self.graphql(DEVICES_QUERY, {"accountNumber": self.config.account_number})
        devices = data.get("devices")
        if not isinstance(devices, list):
            raise BadResponse(SERVICE, "devices missing from the answer")
        live = [
            d
            for d in devices
            if isinstance(d, dict)
            and d.get("deviceType") == "ELECTRIC_VEHICLES"
            and ((d.get("status") or {}).get("current") or "LIVE") == "LIVE"
        ]
        device = str(live[0].get("id") or "") if live else ""
        if not device:
            log.warning("No live smart-charging device on the account; only the fixed window is used")
        return device

    def agreements(self) -> list[Agreement]:
        """Electricity agreements (import and export), cached for a day."""

        def fetch() -> list[dict[str, str]]:
            data = self.graphql(ACCOUNT_QUERY, {"accountNumber": self.config.account_number})
            return [a.__dict__ for a in parse_agreements(data)]

        return [Agreement(**a) for a in self.cached("agreements", ACCOUNT_TTL, fetch)]

    def import_mpan(self) -> str | None:
        return next((a.mpan for a in self.agreements() if a.direction == "IMPORT"), None)

    def dispatches_and_power_ups(self, *, power_ups: bool) -> tuple[list[Slot], dict[str, Any] | None]:
        """Smart dispatches, plus the raw Power Up data when asked (batched into one request)."""
        device = self.device_id()
        mpan = self.import_mpan() if power_ups else None
        account = self.config.account_number
        if device is None:
            if mpan is None:
                return [], None
            data = self.graphql(
                POWER_UPS_QUERY, {"accountNumber": account, "mpan": mpan, "campaignSlug": FREE_ELECTRICITY_CAMPAIGN}
            )
            return [], data
        if mpan is None:
            data = self.graphql(DISPATCHES_QUERY, {"accountNumber": account, "deviceId": device})
            return parse_dispatches(data), None
        data = self.graphql(
            DISPATCHES_AND_POWER_UPS_QUERY,
            {"accountNumber": account, "deviceId": device, "mpan": mpan, "campaignSlug": FREE_ELECTRICITY_CAMPAIGN},
        )
        return parse_dispatches(data), data

    def saving_sessions(self) -> dict[str, Any]:
        return self.graphql(SAVING_SESSIONS_QUERY, {"accountNumber": self.config.account_number}, backend=True)

    def join_saving_session(self, code: str) -> Sequence[str]:
        data = self.graphql(
            JOIN_SAVING_SESSION_MUTATION, {"accountNumber": self.config.account_number, "eventCode": code}, backend=True
        )
        joined = (data.get("joinSavingSessionsEvent") or {}).get("joinedEventCodes") or []
        return [str(c) for c in joined]
