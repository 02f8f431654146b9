"""Tesla energy-site client (Tessie, Teslemetry and the Fleet API differ only in base URL and token)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import http_retry
from errors import BadResponse, CredentialsRejected

if TYPE_CHECKING:
    import requests

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


class TeslaSite:
    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        token: str,
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
        """The one way to Tesla: timeout, bounded retries, failures split by who is at fault."""
        self.requests_made += 1
        extra: dict[str, Any] = {} if self.sleep is None else {"sleep": self.sleep}
        response = http_retry.send(
            self.session,
            method,
            f"{self.base_url}{path}",
            service=SERVICE,
            timeout=self.timeout,
            headers={"Authorization": f"Bearer {self.token}"},
            json=body,
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
