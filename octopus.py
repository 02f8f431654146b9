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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import http_retry
from about import USER_AGENT
from config import OctopusConfig
from dispatch_rules import DispatchData, PlannedDispatch
from errors import BadResponse, CredentialsRejected, RateLimited, ServiceUnavailable
from tariff import Slot

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)
SERVICE = "Octopus"
TOKEN_MARGIN = timedelta(minutes=5)
DEVICE_TTL = timedelta(hours=24)
ACCOUNT_TTL = timedelta(hours=24)
FREE_ELECTRICITY_CAMPAIGN = "free_electricity"

TOKEN_MUTATION = """
mutation ObtainToken($input: ObtainJSONWebTokenInput!) {
  obtainKrakenToken(input: $input) { token refreshToken refreshExpiresIn payload }
}
"""

# Each selection is written once and shared by the queries below: as GraphQL fragments where the
# type name is documented, and as one text constant for devices, whose interface name is not.
DEVICES_FIELD = "devices(accountNumber: $accountNumber) { id deviceType status { current currentState } }"
DEVICES_QUERY = f"""
query Devices($accountNumber: String!) {{
  {DEVICES_FIELD}
}}
"""
PLANNED_FRAGMENT = """
fragment Planned on SmartFlexDispatch { start end type }
"""
COMPLETED_FRAGMENT = """
fragment Completed on UpsideDispatchType { start end delta meta { source location } }
"""
POWER_UPS_FRAGMENT = """
fragment CampaignEvents on CFCampaignEventConnectionTypeConnection {
  edges { node { code name startAt endAt isEventParticipant } }
}
"""
# The order of campaign events is not documented, so both ends of the list are asked for: an
# account with a long history still sees its newest events whichever way the list runs.
POWER_UPS_FIELDS = """
  powerUpsFirst: customerFlexibilityCampaignEvents(
    accountNumber: $accountNumber, campaignSlug: $campaignSlug, supplyPointIdentifier: $mpan, first: 20
  ) { ...CampaignEvents }
  powerUpsLast: customerFlexibilityCampaignEvents(
    accountNumber: $accountNumber, campaignSlug: $campaignSlug, supplyPointIdentifier: $mpan, last: 20
  ) { ...CampaignEvents }
"""
POWER_UP_KEYS = ("powerUpsFirst", "powerUpsLast")
MAX_EVS = 4  # Octopus allows several EVs per account; more than this is not seen in practice


def _dispatch_query(evs: int, *, power_ups: bool) -> str:
    """The one request of a polling run, for ``evs`` devices (aliases ev0, ev1 ...)."""
    params = ["$accountNumber: String!", *(f"$device{i}: String!" for i in range(evs))]
    fields = [
        f"  {DEVICES_FIELD}",
        *(f"  ev{i}: flexPlannedDispatches(deviceId: $device{i}) {{ ...Planned }}" for i in range(evs)),
        "  completedDispatches(accountNumber: $accountNumber) { ...Completed }",
    ]
    fragments = [COMPLETED_FRAGMENT, *([PLANNED_FRAGMENT] if evs else [])]
    if power_ups:
        params += ["$mpan: String!", "$campaignSlug: String!"]
        fields.append(POWER_UPS_FIELDS.rstrip("\n"))
        fragments.append(POWER_UPS_FRAGMENT)
    header = f"query Dispatches({', '.join(params)}) {{"
    return "\n".join([header, *fields, "}", *(f.strip() for f in fragments)]) + "\n"


# Constants, one per shape; values always travel as variables.
DISPATCH_QUERIES: Mapping[tuple[int, bool], str] = {
    (evs, power_ups): _dispatch_query(evs, power_ups=power_ups)
    for evs in range(MAX_EVS + 1)
    for power_ups in (False, True)
}

POWER_UPS_QUERY = (
    """
query PowerUps($accountNumber: String!, $mpan: String!, $campaignSlug: String!) {"""
    + POWER_UPS_FIELDS
    + "}\n"
    + POWER_UPS_FRAGMENT
)

# Agreements that have ended are left out; future ones are kept so that a pending switch takes
# effect at its start even while this answer is cached.
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


def check_graphql(
    body: Any, accepted_codes: frozenset[str] = frozenset(), optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Return ``data`` from a GraphQL envelope or raise the error for whoever is at fault.

    GraphQL can answer some fields and fail others. An ordinary error whose path starts at one of
    the ``optional`` fields leaves that field None in the data; the caller decides what to do.
    Errors about the token, the key or the rate limit always raise, wherever they point.
    """
    if not isinstance(body, dict):
        raise BadResponse(SERVICE, "GraphQL answer is not a JSON object")
    errors = body.get("errors") or []
    failed: set[str] = set()
    for err in errors if isinstance(errors, list) else [errors]:
        entry = err if isinstance(err, dict) else {}
        extensions = entry.get("extensions")
        code = str((extensions if isinstance(extensions, dict) else {}).get("errorCode") or "")
        message = str(entry.get("message") or "")
        path = entry.get("path")
        if code in accepted_codes:
            continue
        if code in RATE_LIMIT_CODES:
            raise RateLimited(SERVICE, f"rate limited ({code})")
        if code in KEY_REJECTED_CODES:
            raise CredentialsRejected(SERVICE, f"API key rejected ({code})", key="[octopus] api_key")
        if code in REAUTH_CODES or code in REFRESH_REJECTED_CODES:
            raise _Reauthenticate(code)
        if isinstance(path, list) and path and path[0] in optional:
            failed.add(str(path[0]))
            log.debug("Octopus could not answer %s (%s)", path[0], code or message)
            continue
        raise BadResponse(SERVICE, f"GraphQL error {code or 'without code'}: {message}".rstrip(": "))
    data = body.get("data")
    if not isinstance(data, dict):
        raise BadResponse(SERVICE, "GraphQL answer has no data")
    return {**data, **dict.fromkeys(failed)}


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
    try:
        parsed.astimezone(UTC)
    except OverflowError as err:
        raise BadResponse(SERVICE, f"time out of range {value!r}") from err
    return parsed


def _is_smart(source: Any) -> bool:
    # A missing source counts as a smart charge; bump charges and boosts are billed at peak.
    return source is None or str(source).lower() in ("smart", "smart-charge")


def _objects(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BadResponse(SERVICE, f"{what} is not a list of objects")
    return value


def live_evs(devices: Any) -> dict[str, str]:
    """Live EV devices (chargers report ELECTRIC_VEHICLES too) -> their current smart-control state."""
    return {
        str(d["id"]): str((d.get("status") or {}).get("currentState") or "")
        for d in _objects(devices, "devices")
        if d.get("id")
        and d.get("deviceType") == "ELECTRIC_VEHICLES"
        and ((d.get("status") or {}).get("current") or "LIVE") == "LIVE"
    }


def parse_dispatch_data(data: Mapping[str, Any], devices: Sequence[str]) -> DispatchData:
    """Planned SMART dispatches per device (aliases ev0, ev1 ... in ``devices`` order), completed
    smart dispatches at home, and each live EV's state. BOOST, TEST and away dispatches are left out."""
    planned = []
    for i, device in enumerate(devices):
        for item in _objects(data.get(f"ev{i}"), "planned dispatches"):
            if str(item.get("type") or "SMART").upper() == "SMART":
                slot = Slot(parse_time(item.get("start")), parse_time(item.get("end")))
                planned.append(PlannedDispatch(device, slot))
    completed = []
    for item in _objects(data.get("completedDispatches"), "completed dispatches"):
        meta = item.get("meta") or {}
        if not isinstance(meta, dict):
            raise BadResponse(SERVICE, "completed dispatch meta is not an object")
        if meta.get("location") not in (None, "AT_HOME") or not _is_smart(meta.get("source")):
            continue
        completed.append(Slot(parse_time(item.get("start")), parse_time(item.get("end"))))
    states = live_evs(data["devices"]) if data.get("devices") is not None else {}
    return DispatchData(
        planned=tuple(sorted(set(planned), key=lambda p: (p.slot.start, p.slot.end, p.device))),
        completed=tuple(sorted(set(completed), key=lambda s: (s.start, s.end))),
        device_states=states,
    )


def merge_power_ups(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """Both ends of the campaign-event list as one connection; None when either end failed."""
    edges: list[Any] = []
    for key in POWER_UP_KEYS:
        part = data.get(key)
        if part is None:
            return None
        found = part.get("edges") if isinstance(part, dict) else part
        # An odd shape is passed on whole, so that the parser reports it.
        edges.extend(found if isinstance(found, list) else [found] if found else [])
    return {"customerFlexibilityCampaignEvents": {"edges": edges}}


@dataclass(frozen=True)
class Agreement:
    mpan: str
    direction: str
    product_code: str
    tariff_code: str
    valid_from: str = ""  # ISO 8601; empty means since ever
    valid_to: str = ""  # ISO 8601; empty means open-ended

    @property
    def starts(self) -> datetime:
        return parse_time(self.valid_from) if self.valid_from else datetime.min.replace(tzinfo=UTC)

    def valid_at(self, moment: datetime) -> bool:
        return self.starts <= moment and (not self.valid_to or moment < parse_time(self.valid_to))


def parse_agreements(data: Mapping[str, Any]) -> list[Agreement]:
    account = data.get("account")
    if not isinstance(account, dict):
        raise BadResponse(SERVICE, "account missing from the answer")
    out = []
    for entry in _objects(account.get("electricityAgreements") or [], "electricity agreements"):
        point = entry.get("meterPoint") or {}
        for agreement in _objects(point.get("agreements") or [], "agreements"):
            tariff = agreement.get("tariff") or {}
            if point.get("mpan") and tariff.get("tariffCode"):
                found = Agreement(
                    mpan=str(point["mpan"]),
                    direction=str(point.get("direction") or "IMPORT").upper(),
                    product_code=str(tariff.get("productCode") or ""),
                    tariff_code=str(tariff["tariffCode"]),
                    valid_from=str(agreement.get("validFrom") or ""),
                    valid_to=str(agreement.get("validTo") or ""),
                )
                for moment in (found.valid_from, found.valid_to):
                    if moment:
                        parse_time(moment)  # unreadable dates fail here, not when the cache is used
                out.append(found)
    return out


def agreements_now(agreements: Sequence[Agreement], now: datetime) -> list[Agreement]:
    """The agreement valid now on each meter point (the latest to start, if several claim it)."""
    chosen: dict[str, Agreement] = {}
    for agreement in agreements:
        if agreement.valid_at(now):
            best = chosen.get(agreement.mpan)
            if best is None or agreement.starts > best.starts:
                chosen[agreement.mpan] = agreement
    return sorted(chosen.values(), key=lambda a: (a.direction != "IMPORT", a.mpan))


def import_agreement(agreements: Sequence[Agreement], now: datetime) -> Agreement | None:
    return next((a for a in agreements_now(agreements, now) if a.direction == "IMPORT"), None)


@dataclass(frozen=True)
class PowerUpAnswer:
    data: dict[str, Any] | None  # {"customerFlexibilityCampaignEvents": {"edges": [...]}}
    asked: bool  # False when the account has no import meter point to ask about
    failed: bool = False  # Octopus answered the rest of the query but not this field


# The token cache's fields and their types; a field of another type is forgotten (and fetched anew).
_CACHE_FIELDS: Mapping[str, type | tuple[type, ...]] = {
    "identity": str,
    "token": str,
    "token_expires": (int, float),
    "refresh_token": str,
    "refresh_expires": (int, float),
    "power_ups_failing": bool,
}


# Cached answers ({"at": time, "value": ...}) and the type of their value.
_CACHED_VALUES: Mapping[str, type | tuple[type, ...]] = {
    "devices": list,
    "electricity_agreements": list,
    "saving_sessions": dict,
    "auto_rates": dict,
    "power_ups": (dict, type(None)),
}


def _drop_odd_cache_fields(cache: dict[str, Any]) -> None:
    for key in list(cache):
        wanted = _CACHE_FIELDS.get(key, dict)  # every other entry is a cached {"at": ..., "value": ...}
        value = cache[key]
        odd = not isinstance(value, wanted) or (isinstance(value, bool) and wanted is not bool)
        if wanted is dict and isinstance(value, dict):
            at = value.get("at", 0)
            odd = not isinstance(at, int | float) or isinstance(at, bool)
            odd = odd or not isinstance(value.get("value"), _CACHED_VALUES.get(key, object))
        if odd:
            log.warning("Forgot the cached Octopus %s: it was of an unexpected type", key)
            del cache[key]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


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
        _drop_odd_cache_fields(self.state)
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
            allow_redirects=False,  # a token must never follow a redirect to another host
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
        optional: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Run an authenticated query; on a refused token, mint a new one and retry once."""
        url = self.config.backend_graphql_url if backend else self.config.graphql_url
        for attempt in (1, 2):
            headers = {"Authorization": self.token(force_new=attempt == 2)}
            try:
                body = self._request("POST", url, json={"query": query, "variables": dict(variables)}, headers=headers)
                return check_graphql(body, accepted_codes, optional)
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
        claimed = payload.get("exp")
        expires = claimed if isinstance(claimed, int | float) else _jwt_expiry(token) or self.clock() + 3600
        self.state.update(
            token=token,
            token_expires=float(expires),
            refresh_token=result.get("refreshToken") or self.state.get("refresh_token"),
            refresh_expires=_number(result.get("refreshExpiresIn")) or _number(self.state.get("refresh_expires")),
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

    def devices(self) -> list[str]:
        """The account's live EVs and chargers (at most MAX_EVS), cached for a day."""
        found = self.cached("devices", DEVICE_TTL, self._find_devices)
        return [str(d) for d in found] if isinstance(found, list) else []

    def _find_devices(self) -> list[str]:
        data = self.graphql(DEVICES_QUERY, {"accountNumber": self.config.account_number})
        return self._remember_devices(data.get("devices"))

    def _remember_devices(self, devices: Any) -> list[str]:
        evs = sorted(live_evs(devices))
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
            self.state.pop("electricity_agreements", None)  # a cache from another version: ask again
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
            seen = self._remember_devices(data["devices"])
            if seen != devices:  # a car added or removed: follow it from the next run
                self.state["devices"] = {"at": self.clock(), "value": seen}
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

    def join_saving_session(self, code: str) -> Sequence[str]:
        data = self.graphql(
            JOIN_SAVING_SESSION_MUTATION, {"accountNumber": self.config.account_number, "eventCode": code}, backend=True
        )
        joined = (data.get("joinSavingSessionsEvent") or {}).get("joinedEventCodes") or []
        return [str(c) for c in joined]
