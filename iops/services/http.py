"""The one HTTP entry point of the Octopus and Tesla clients: timeouts, an overall deadline per
request, a body cap, and bounded retries.

Only transport failures, 5xx and 429 are retried, a small fixed number of times: the job runs
every minute, so giving up quickly and trying again next minute beats waiting here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from iops.core.errors import RateLimited, ServiceUnavailable

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

ATTEMPTS = 2
BACKOFF_SECONDS = 0.5
MAX_RETRY_AFTER_SECONDS = 5.0
DEADLINE_FACTOR = 3  # a whole request (connect, headers and body) may take this many timeouts
CHUNK = 16384
MAX_BODY = 8 * 1024 * 1024  # far above any real answer


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
            response = _bounded(session, method, url, timeout, **kwargs)
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


def _bounded(session: requests.Session, method: str, url: str, timeout: float, **kwargs: Any) -> requests.Response:
    """One request within an overall deadline: ``timeout`` alone bounds each socket read, so a server
    trickling a byte a second would hold a run for ever. The body is read here, against the clock."""
    import requests

    deadline = time.monotonic() + timeout * DEADLINE_FACTOR
    response = session.request(method, url, timeout=timeout, stream=True, **kwargs)
    body = bytearray()
    raw = response.raw
    # read1: at most one socket read per call (each bounded by ``timeout``), so the clock is checked
    # between bytes; read() would wait for a whole chunk. urllib3 1.x has no read1: read() instead.
    read = getattr(raw, "read1", None) or raw.read
    try:
        while chunk := read(CHUNK, decode_content=True):
            body += chunk
            if time.monotonic() > deadline:
                raise requests.Timeout(f"the answer took over {timeout * DEADLINE_FACTOR:g} s")
            if len(body) > MAX_BODY:
                raise requests.ConnectionError("the answer is implausibly large")
    except requests.RequestException:
        raise
    except Exception as err:  # urllib3's own errors, read raw: as requests would say them
        if "timed out" in str(err).lower():
            raise requests.Timeout(str(err)) from err
        raise requests.ConnectionError(str(err)) from err
    finally:
        response.close()
    response._content = bytes(body)  # what .json() and .text read; requests keeps it there itself
    return response


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return 1.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
