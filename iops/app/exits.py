"""Exit codes of every command, and how an error maps to one: 0 done, 1 a service failed (try again
later), 2 the config must change."""

from __future__ import annotations

from iops.core.errors import ConfigError, CredentialsRejected, SchedulerError

EXIT_OK, EXIT_SERVICE, EXIT_CONFIG = 0, 1, 2


def cli_failure(err: SchedulerError, config_path: object) -> tuple[int, str]:
    """Exit code and message for a command that failed: 2 when the config must change, else 1."""
    if isinstance(err, CredentialsRejected):
        return EXIT_CONFIG, f"{err}: check {err.key} in {config_path}"
    if isinstance(err, ConfigError):
        return EXIT_CONFIG, "\n".join(err.problems)
    return EXIT_SERVICE, str(err)
