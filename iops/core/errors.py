"""Exception tree, split by who has to act: the user (config), the remote service, or us.

The app maps these to exit codes (iops.app.exits): ConfigError -> 2, ServiceError -> 1.
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Base of every error the scheduler raises on purpose."""


class ConfigError(SchedulerError):
    """The user's config (or credentials) must change before a run can succeed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class ServiceError(SchedulerError):
    """A remote service failed; the next run may succeed without any change on our side."""

    def __init__(self, service: str, reason: str, *, status: int | None = None) -> None:
        self.service = service
        self.reason = reason
        self.status = status
        super().__init__(f"{service}: {reason}")


class ServiceUnavailable(ServiceError):
    """Their outage: timeouts, connection errors, HTTP 5xx, HTML error pages, rate limits."""


class RateLimited(ServiceUnavailable):
    """The service asked us to slow down (HTTP 429, KT-CT-1199); ``retry_after`` in seconds when it said."""

    def __init__(
        self, service: str, reason: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(service, reason, status=status)


class BadResponse(ServiceError):
    """The service answered, but with data we cannot trust (wrong shape, error body)."""


class CredentialsRejected(ServiceError):
    """The service refused our credentials; the user has to fix a key in the config."""

    def __init__(self, service: str, reason: str, *, key: str, status: int | None = None) -> None:
        self.key = key
        super().__init__(service, reason, status=status)


class StateUnwritable(SchedulerError):
    """The state file cannot be written: nothing is posted, since the post could not be recorded."""

    def __init__(self, path: object, err: OSError) -> None:
        super().__init__(
            f"Cannot write the state file {path} ({err.strerror or err}); nothing posted. "
            "Check that its folder exists, is writable by this user and has free space"
        )


class InvalidTariff(SchedulerError):
    """We built a tariff that breaks Tesla's rules: a bug in this program, never posted."""
