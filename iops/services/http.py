"""The one HTTP entry point of the Octopus and Tesla clients: timeouts, an overall deadline per
request, a body cap, and bounded retries.

Only transport failures, 5xx and 429 are retried, a small fixed number of times: the job runs
every minute, so giving up quickly and trying again next minute beats waiting here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
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
                if wait is None or wait > MAX_RETRY_AFTER_SECONDS or attempt == attempts:
                    raise RateLimited(service, "rate limited (HTTP 429)", status=429, retry_after=wait)
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

    limit = timeout * DEADLINE_FACTOR
    deadline = time.monotonic() + limit
    try:
        with _alarm(limit):  # the headers too: a server trickling them a byte at a time never trips ``timeout``
            response = session.request(method, url, timeout=timeout, stream=True, **kwargs)
    except _Overdue:
        raise requests.Timeout(f"no answer within {limit:g} s") from None
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
    """Seconds to wait, from Retry-After as seconds or as an HTTP date; None when it says nothing usable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return 1.0
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def json_of(response: requests.Response, *, lenient: bool = False) -> Any:
    """The body as JSON. NaN and Infinity are not JSON (RFC 8259): the body is refused like any bad
    one (ValueError), as is one nested too deeply to parse. ``lenient``: they read as null instead,
    for an answer whose other fields must not be lost (a rotated refresh token)."""
    try:
        return json.loads(response.content, parse_constant=_as_null if lenient else _refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _as_null(name: str) -> Any:
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _Overdue(Exception):
    """The request's own deadline passed (raised from the alarm)."""


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """An alarm for one request, nested inside the run's own (which is restored after it). Only the
    main thread can take signals: elsewhere the socket timeouts and the body's clock stand alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer_left = signal.getitimer(signal.ITIMER_REAL)[0]
    if outer_left and outer_left <= seconds:  # the run's deadline comes first: let it speak
        yield
        return
    outer_handler = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()

    def expire(signum: int, frame: Any) -> None:
        raise _Overdue

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - started), 0.001))
