"""Tesla energy-site client (Tessie, Teslemetry and the Fleet API differ only in base URL and token)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from iops.core.errors import BadResponse, CredentialsRejected
from iops.services import http

if TYPE_CHECKING:
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
        components = product.get("components") or {}
        battery = bool(components.get("battery")) or product.get("resource_type") == "battery"
        if not battery and not components.get("solar"):
            continue  # e.g. a Wall Connector-only site
        sites.append(
            EnergySite(
                # Kept as text: 16-digit IDs must never pass through a float.
                site_id=str(product["energy_site_id"]),
                name=str(product.get("site_name") or ""),
                has_battery=battery,
                resource_type=str(product.get("resource_type") or ""),
            )
        )
    return sites


def tou_settings_body(tariff: Mapping[str, Any]) -> dict[str, Any]:
    """The body of POST .../time_of_use_settings; --dry-run prints exactly this."""
    return {"tou_settings": {"tariff_content_v2": dict(tariff)}}


class FleetTokens:
    """Access tokens for the Tesla Fleet API from a refresh token (config ``refresh_token`` and ``client_id``).

    Access tokens last about 8 hours. Refresh tokens are single-use: each refresh returns a new one
    and the old one stops working, so the new one is saved (``save``, atomic) before it is used.
    ``memory`` is this config's part of the state: access_token, expires_at, refresh_token, seed.
    """

    MARGIN = 300.0  # refresh this many seconds before expiry

    def __init__(
        self,
        session: requests.Session,
        config: TeslaConfig,
        memory: dict[str, Any],
        save: Callable[[], None],
        *,
        clock: Callable[[], float],
        timeout: float,
    ) -> None:
        self.session, self.config, self.memory, self.save = session, config, memory, save
        self.clock, self.timeout = clock, timeout
        self.requests_made = 0
        if memory.get("seed") != _fingerprint(config.refresh_token):
            # A refresh token newly pasted into the config starts a new chain.
            memory.clear()
            memory["seed"] = _fingerprint(config.refresh_token)

    def __call__(self, *, renew: bool = False) -> str:
        token = self.memory.get("access_token")
        expires = self.memory.get("expires_at")
        fresh = isinstance(expires, int | float) and self.clock() < expires - self.MARGIN
        if isinstance(token, str) and token and fresh and not renew:
            return token
        return self._refresh()

    def _refresh(self) -> str:
        current = self.memory.get("refresh_token")
        refresh = current if isinstance(current, str) and current else self.config.refresh_token
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
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in (400, 401, 403):
            error = _lower_keys(body).get("error") or f"HTTP {response.status_code}"
            raise CredentialsRejected(
                SERVICE,
                f"refresh token refused ({error}); sign in again and paste the new refresh token",
                key="[tesla] refresh_token",
                status=response.status_code,
            )
        fields = _lower_keys(body)
        access, rotated, lifetime = fields.get("access_token"), fields.get("refresh_token"), fields.get("expires_in")
        if response.status_code >= 400 or not isinstance(access, str) or not access:
            raise BadResponse(SERVICE, f"token endpoint answered HTTP {response.status_code} without a token")
        self.memory.update(
            access_token=access,
            expires_at=self.clock() + (float(lifetime) if isinstance(lifetime, int | float) else 3600.0),
            refresh_token=rotated if isinstance(rotated, str) and rotated else refresh,
        )
        self.save()
        log.info("Tesla access token renewed; it lasts until %s UTC", _when(self.memory["expires_at"]))
        return access


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

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """The one way to Tesla: timeout, bounded retries, failures split by who is at fault.

        With Fleet tokens, a refused access token is renewed once and the request sent again.
        """
        try:
            return self._send(method, path, body, renew=False)
        except CredentialsRejected as err:
            if not isinstance(self.token, FleetTokens) or err.status != 401:
                raise
            log.info("Tesla refused the access token; renewing it once")
            return self._send(method, path, body, renew=True)

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None, *, renew: bool) -> Any:
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
            allow_redirects=False,  # never hand a token to wherever a redirect points
            **extra,
        )
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        if response.status_code in (401, 403):
            raise CredentialsRejected(
                SERVICE,
                f"HTTP {response.status_code}: token refused",
                key="[tesla] api_key",
                status=response.status_code,
            )
        if response.status_code == 404:
            raise CredentialsRejected(SERVICE, "HTTP 404: no such energy site", key="[tesla] site_id", status=404)
        if response.status_code >= 400:
            message = (_lower_keys(parsed).get("error") if parsed else None) or response.reason
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

    def post_tariff(self, site_id: str, tariff: Mapping[str, Any]) -> None:
        self._request("POST", f"/api/1/energy_sites/{site_id}/time_of_use_settings", tou_settings_body(tariff))


def connect(
    session: requests.Session,
    config: TeslaConfig,
    memory: dict[str, Any],
    save: Callable[[], None],
    *,
    clock: Callable[[], float],
    timeout: float,
) -> TeslaSite:
    """The Tesla client for a config: a fixed token (Tessie, Teslemetry, Fleet) or Fleet refresh tokens.

    ``memory`` is the Fleet token chain's part of the state; ``save`` keeps it (the caller holds the lock).
    """
    if not config.refresh_token:
        return TeslaSite(session, config.api_base_url, config.api_key, timeout=timeout)
    tokens = FleetTokens(session, config, memory, save, clock=clock, timeout=timeout)
    return TeslaSite(session, config.api_base_url, tokens, timeout=timeout)
