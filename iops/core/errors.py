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


class StoreUnusable(SchedulerError):
    """The durable records cannot be read or written: the command stops (exit 1) and leaves the file
    as it is, since it holds what nothing can rebuild."""

    def __init__(self, path: object, reason: str, *, writing: bool = False) -> None:
        self.path = path
        what = "write to" if writing else "read"
        fix = (
            "check that this user may write it and its folder, and that the disk has space"
            if writing
            else f"restore it from a backup, or move it aside (mv {path} {path}.broken) to start afresh: "
            "you would then sign in to Tesla again (Fleet API), and --restore would have nothing to put back"
        )
        super().__init__(
            f"Cannot {what} the durable records {path} ({reason}); nothing posted. They hold the Fleet API "
            f"token chain, your own tariff and the pause, which nothing can rebuild, so the file is left as it is. "
            f"Fix: {fix}"
        )


class InvalidTariff(SchedulerError):
    """A tariff that breaks Tesla's rules, never posted: one we built (a bug in this program), or,
    with ``ours=False``, one taken from elsewhere (a damaged or foreign state, the user's own)."""

    def __init__(self, message: str, *, ours: bool = True) -> None:
        self.ours = ours
        super().__init__(message)
