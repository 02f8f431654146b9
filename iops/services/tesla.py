"""Tesla energy-site client (Tessie, Teslemetry and the Fleet API differ only in base URL and token)."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any, Protocol

from iops.core.errors import BadResponse, CredentialsRejected
from iops.services import http

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import requests

    from iops.core.settings import TeslaConfig

log = logging.getLogger(__name__)
SERVICE = "Tesla"


def _lower_keys(value: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}


def check_tesla_body(body: Any) -> Any:
    """The ``response`` of a Tesla-style body; raise when the body reports a failure.

    Success bodies vary in key case ({"response": {"code": 201}} or {"Code": 201}); a 200 can
    still carry an error, so both an ``error`` key and a code of 400 or more count as failure.
    """
    top = _lower_keys(body)
    if not top:
        raise BadResponse(SERVICE, "answer is not a JSON object")
    if top.get("error"):
        detail = top.get("error_description") or top.get("messages") or ""
        raise BadResponse(SERVICE, f"error: {top['error']} {detail}".strip())
    inner = top.get("response", body)
    for candidate in (_lower_keys(inner), top):
        code = candidate.get("code")
        if isinstance(code, int | float) and code >= 400:
            raise BadResponse(SERVICE, f"code {int(code)}: {candidate.get('message') or ''}".strip())
    return inner


@dataclass(frozen=True)
class EnergySite:
    """An energy site on the account, as the products list shows it."""

    site_id: str
    name: str
    has_battery: bool
    resource_type: str


def parse_products(body: Any) -> list[EnergySite]:
    """Energy sites among the account's products (vehicles and empty sites skipped)."""
    products = check_tesla_body(body)
    if not isinstance(products, list):
        raise BadResponse(SERVICE, "products answer is not a list")
    sites = []
    for product in products:
        if not isinstance(product, dict) or "energy_site_id" not in product:
            continue
        components = product.get("components")
        components = components if isinstance(components, dict) else {}
        battery = bool(components.get("battery")) or product.get("resource_type") == "battery"
        if not battery and not components.get("solar"):
            continue  # e.g. a Wall Connector-only site
        raw_id = product["energy_site_id"]
        site_id = str(raw_id) if isinstance(raw_id, int | str) and not isinstance(raw_id, bool) else ""
        if not site_id.isdigit():
            log.warning("Skipped an energy site whose ID is not a number (%s)", type(raw_id).__name__)
            continue
        sites.append(
            EnergySite(
                # Kept as text: 16-digit IDs must never pass through a float.
                site_id=site_id,
                name=str(product.get("site_name") or ""),
                has_battery=battery,
                resource_type=str(product.get("resource_type") or ""),
            )
        )
    return sites


def tou_settings_body(tariff: Mapping[str, Any]) -> dict[str, Any]:
    """The body of POST .../time_of_use_settings; --dry-run prints exactly this."""
    return {"tou_settings": {"tariff_content_v2": dict(tariff)}}


@dataclass(frozen=True)
class FleetChain:
    """The Fleet API token chain: the refresh token in force (single-use: each renewal returns the
    next), the access token it last gave, and the fingerprint of the config token that began it."""

    seed: str = ""
    refresh_token: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    expires_at: float = 0.0


class ChainKeeper(Protocol):
    """Where the chain is kept: durably, since a rotated refresh token exists nowhere else."""

    def ready(self) -> None:
        """Raise unless a rotated chain can be kept (asked before each rotation)."""

    def keep(self, chain: FleetChain) -> None:
        """Keep the chain at once; raise if it cannot be kept."""


class FleetTokens:
    """Access tokens for the Tesla Fleet API from a refresh token (config ``refresh_token`` and ``client_id``).

    Access tokens last about 8 hours. Refresh tokens are single-use: each renewal returns a new one
    and the old one stops working. So the keeper must be ready before a renewal is asked for, and
    the rotated token is kept before anything else can fail. A different token in the config (one
    newly pasted, or exported for one run) starts a new chain only once Tesla accepts it; until then
    the saved chain stands.
    """

    MARGIN = 300.0  # renew this many seconds before expiry
    LONGEST = 24 * 3600.0  # an expires_in beyond this is not believed

    def __init__(
        self,
        session: requests.Session,
        config: TeslaConfig,
        chain: FleetChain | None,
        keeper: ChainKeeper,
        *,
        clock: Callable[[], float],
        timeout: float,
    ) -> None:
        self.session, self.config, self.keeper = session, config, keeper
        self.chain = chain or FleetChain()
        self.clock, self.timeout = clock, timeout
        self.requests_made = 0

    def __call__(self, *, renew: bool = False) -> str:
        chain = self.chain
        if chain.access_token and not renew and self.clock() < chain.expires_at - self.MARGIN:
            return chain.access_token
        seed = _fingerprint(self.config.refresh_token)
        saved = chain if chain.refresh_token else None
        if saved is not None and saved.seed == seed:
            return self._renew(saved.refresh_token, seed)
        try:  # the config names a token the saved chain did not start from (or there is no chain yet)
            return self._renew(self.config.refresh_token, seed)
        except CredentialsRejected as err:
            if saved is None or err.key != "[tesla] refresh_token":
                raise
            log.warning(
                "Tesla refused the refresh_token in the config (%s); carrying on with the saved token chain", err.reason
            )
            return self._renew(saved.refresh_token, saved.seed)

    def _renew(self, refresh: str, seed: str) -> str:
        self.keeper.ready()  # the token about to be rotated must not be lost for want of a place to keep it
        self.requests_made += 1
        response = http.send(
            self.session,
            "POST",
            self.config.token_url,
            service=SERVICE,
            timeout=self.timeout,
            data={"grant_type": "refresh_token", "client_id": self.config.client_id, "refresh_token": refresh},
            allow_redirects=False,  # never hand a token to wherever a redirect points
        )
        try:
            fields = _lower_keys(http.json_of(response, lenient=True))
        except ValueError:
            fields = {}
        if response.status_code in (400, 401, 403):
            error = str(fields.get("error") or f"HTTP {response.status_code}")[:80]
            if error == "invalid_client":
                raise CredentialsRejected(
                    SERVICE, "client_id refused (invalid_client)", key="[tesla] client_id", status=response.status_code
                )
            raise CredentialsRejected(
                SERVICE,
                f"refresh token refused ({error}); sign in again and paste the new refresh token",
                key="[tesla] refresh_token",
                status=response.status_code,
            )
        rotated = fields.get("refresh_token")
        if response.status_code < 400 and isinstance(rotated, str) and rotated:
            # The old token is spent now: keep the new one before anything else can fail.
            self.chain = FleetChain(seed=seed, refresh_token=rotated)
            self.keeper.keep(self.chain)
            refresh = rotated
        access, lifetime = fields.get("access_token"), _finite(fields.get("expires_in"))
        if response.status_code >= 400 or not isinstance(access, str) or not access:
            raise BadResponse(SERVICE, f"token endpoint answered HTTP {response.status_code} without a token")
        if lifetime is None or not 0 < lifetime <= self.LONGEST:
            lifetime = 3600.0
        self.chain = FleetChain(
            seed=seed, refresh_token=refresh, access_token=access, expires_at=self.clock() + lifetime
        )
        self.keeper.keep(self.chain)
        log.info("Tesla access token renewed; it lasts until %s UTC", _when(self.chain.expires_at))
        return access


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


class TeslaSite:
    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        token: str | FleetTokens,
        *,
        timeout: float,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.sleep = sleep
        self.requests_made = 0

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """The one way to Tesla: timeout, bounded retries, failures split by who is at fault.

        With Fleet tokens, a refused access token is renewed once and the request sent again.
        """
        try:
            return self._send(method, path, body, params, renew=False)
        except CredentialsRejected as err:
            if not isinstance(self.token, FleetTokens) or err.status != 401:
                raise
            log.info("Tesla refused the access token; renewing it once")
            return self._send(method, path, body, params, renew=True)

    def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        *,
        renew: bool,
    ) -> Any:
        token = self.token(renew=renew) if isinstance(self.token, FleetTokens) else self.token
        self.requests_made += 1
        extra: dict[str, Any] = {} if self.sleep is None else {"sleep": self.sleep}
        response = http.send(
            self.session,
            method,
            f"{self.base_url}{path}",
            service=SERVICE,
            timeout=self.timeout,
            headers={"Authorization": f"Bearer {token}"},
            json=body,
            params=params,  # requests encodes them: a "+01:00" offset must not arrive as a space
            allow_redirects=False,  # never hand a token to wherever a redirect points
            **extra,
        )
        try:
            parsed = http.json_of(response)
        except ValueError:
            parsed = None
        if response.status_code in (401, 403):
            fleet = isinstance(self.token, FleetTokens)
            # With a token chain the access token is ours to mint: a refusal is about the app's
            # sign-in (a 403 most often about its scopes), not an api_key the user typed.
            scopes = "; the sign-in must grant energy_device_data and energy_cmds" if fleet else ""
            raise CredentialsRejected(
                SERVICE,
                f"HTTP {response.status_code}: token refused{scopes if response.status_code == 403 else ''}",
                key="[tesla] refresh_token" if fleet else "[tesla] api_key",
                status=response.status_code,
            )
        if response.status_code == 404:
            raise CredentialsRejected(SERVICE, "HTTP 404: no such energy site", key="[tesla] site_id", status=404)
        if response.status_code >= 400:
            message = str((_lower_keys(parsed).get("error") if parsed else None) or response.reason)[:200]
            raise BadResponse(SERVICE, f"HTTP {response.status_code}: {message}", status=response.status_code)
        if parsed is None:
            raise BadResponse(SERVICE, "answer is not JSON", status=response.status_code)
        return check_tesla_body(parsed)

    def products(self) -> list[EnergySite]:
        return parse_products({"response": self._request("GET", "/api/1/products")})

    def site_info(self, site_id: str) -> dict[str, Any]:
        info = self._request("GET", f"/api/1/energy_sites/{site_id}/site_info")
        if not isinstance(info, dict):
            raise BadResponse(SERVICE, "site_info answer is not an object")
        return info

    def energy_history(self, site_id: str, day: date, tz: ZoneInfo) -> Any:
        """One local day of the site's energy history (``calendar_history``, 5-minute rows in Wh).
        The end is 23:59:59, never midnight (Tesla answers a midnight end with nothing), and each end
        carries its own offset (they differ on a clock-change day)."""
        start = datetime.combine(day, time(0), tz)
        end = datetime.combine(day, time(23, 59, 59), tz)
        params = {
            "kind": "energy",
            "period": "day",
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "time_zone": tz.key,
        }
        return self._request("GET", f"/api/1/energy_sites/{site_id}/calendar_history", params=params)

    def live_status(self, site_id: str) -> Any:
        return self._request("GET", f"/api/1/energy_sites/{site_id}/live_status")

    def post_tariff(self, site_id: str, tariff: Mapping[str, Any]) -> None:
        self._request("POST", f"/api/1/energy_sites/{site_id}/time_of_use_settings", tou_settings_body(tariff))


def connect(
    session: requests.Session,
    config: TeslaConfig,
    chain: FleetChain | None,
    keeper: ChainKeeper,
    *,
    clock: Callable[[], float],
    timeout: float,
) -> TeslaSite:
    """The Tesla client for a config: a fixed token (Tessie, Teslemetry, Fleet) or a Fleet token chain."""
    if not config.refresh_token:
        return TeslaSite(session, config.api_base_url, config.api_key, timeout=timeout)
    tokens = FleetTokens(session, config, chain, keeper, clock=clock, timeout=timeout)
    return TeslaSite(session, config.api_base_url, tokens, timeout=timeout)
