"""Timeouts and bounded retries shared by the Octopus and Tesla clients.

Only transport failures, 5xx and 429 are retried, a small fixed number of times: the job runs
every minute, so giving up quickly and trying again next minute beats waiting here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from errors import RateLimited, ServiceUnavailable

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

ATTEMPTS = 2
BACKOFF_SECONDS = 0.5
MAX_RETRY_AFTER_SECONDS = 5.0


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    service: str,
    timeout: float,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> requests.Response:
    """Send one request, retrying outages; raise ServiceUnavailable when they persist."""
    import requests  # deferred: not needed by dry runs on sample data

    reason = "no attempt made"
    status: int | None = None
    for attempt in range(1, attempts + 1):
        try:
            response = session.request(method, url, timeout=timeout, **kwargs)
        except requests.Timeout:
            reason, status = f"no answer within {timeout:g} s", None
        except requests.RequestException as err:
            reason, status = f"connection failed ({type(err).__name__})", None
        else:
            if response.status_code < 500 and response.status_code != 429:
                return response
            status = response.status_code
            reason = f"HTTP {status}"
            if status == 429:
                wait = _retry_after(response)
                if wait is None or wait > MAX_RETRY_AFTER_SECONDS:
                    raise RateLimited(service, "rate limited (HTTP 429)", status=429, retry_after=wait)
                if attempt < attempts:
                    sleep(wait)
                continue
        log.debug("%s %s attempt %d failed: %s", service, method, attempt, reason)
        if attempt < attempts:
            sleep(BACKOFF_SECONDS * attempt)
    raise ServiceUnavailable(service, reason, status=status)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return 1.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
