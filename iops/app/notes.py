"""What has been said once in the log and need not be said every minute (the "notes" section)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Notes:
    """Things worth one warning, not 1,440 a day."""

    no_agreement: bool = False  # Octopus knows no import agreement: smart slots follow the plan
    config_mode: int | None = None  # the config's mode when it was found readable by others
    unknown_tariff: str = ""  # an import tariff code this version does not know, once said
