"""Unit rates in force: the config's prices, with those read from Octopus (rates = auto) filling
the gaps. Pure: the Octopus client reads the rates (iops.services.octopus.fetch_auto_rates)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from iops.core.errors import ConfigError
from iops.core.settings import TariffConfig
from iops.core.tariff import Rates


@dataclass(frozen=True)
class AutoRates:
    import_peak: float | None = None
    import_off_peak: float | None = None
    export: float | None = None
    source: str = ""


def resolve_rates(config: TariffConfig, auto: AutoRates | None) -> Rates:
    """Config numbers win; auto fills the rest; anything still unknown is a config problem."""
    auto = auto or AutoRates()
    values: Mapping[str, float | None] = {
        "import_peak": config.import_peak if config.import_peak is not None else auto.import_peak,
        "import_off_peak": config.import_off_peak if config.import_off_peak is not None else auto.import_off_peak,
        "export": config.export_peak if config.export_peak is not None else auto.export,
    }
    missing: Sequence[str] = [k for k, v in values.items() if v is None]
    if missing:
        raise ConfigError(
            [
                f"[tariff] {k}: could not be read from Octopus ({auto.source or 'no agreements'}); set it in the config"
                for k in missing
            ]
        )
    export = float(values["export"] or 0)
    return Rates(
        import_peak=float(values["import_peak"] or 0),
        import_off_peak=float(values["import_off_peak"] or 0),
        export_peak=export,
        export_off_peak=config.export_off_peak if config.export_off_peak is not None else export,
    )
