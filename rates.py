"""Unit rates: from the config, or read from the account's Octopus agreements (rates = auto)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from config import TariffConfig
from errors import BadResponse, ConfigError
from tariff import Rates

if TYPE_CHECKING:
    from octopus import Kraken

RATES_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class AutoRates:
    import_peak: float | None = None
    import_off_peak: float | None = None
    export: float | None = None
    source: str = ""


def band_prices(body: Any) -> list[float]:
    """GBP/kWh values (inc. VAT) from a REST unit-rate page, direct-debit rows preferred."""
    if body is None:
        return []
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise BadResponse("Octopus", "unit-rate answer has no results list")
    rows = [r for r in results if isinstance(r, dict) and r.get("payment_method") in (None, "DIRECT_DEBIT")]
    try:
        return [float(r["value_inc_vat"]) / 100 for r in rows]
    except (KeyError, TypeError, ValueError) as err:
        raise BadResponse("Octopus", "unit-rate row without a usable value_inc_vat") from err


def fetch_auto_rates(kraken: Kraken, now: datetime) -> AutoRates:
    """Today's import peak/off-peak and export rate for the account (no cache; see cached_auto_rates)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {
        "period_from": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "period_to": (day + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    from octopus import agreements_now

    found: dict[str, float | None] = {"import_peak": None, "import_off_peak": None, "export": None}
    codes = []
    for agreement in agreements_now(kraken.agreements(), now):
        base = f"products/{agreement.product_code}/electricity-tariffs/{agreement.tariff_code}"
        codes.append(agreement.tariff_code)
        standard = band_prices(kraken.rest_get(f"{base}/standard-unit-rates/", window))
        if agreement.direction == "EXPORT":
            found["export"] = max(standard) if standard else None
            continue
        if len(set(standard)) >= 2:  # time-banded IOG series: cheapest band is the off-peak
            found["import_peak"], found["import_off_peak"] = max(standard), min(standard)
            continue
        # 2026 IOG-SMB-TOU products publish only day and night rates.
        day_rates = band_prices(kraken.rest_get(f"{base}/day-unit-rates/", window))
        night_rates = band_prices(kraken.rest_get(f"{base}/night-unit-rates/", window))
        if day_rates and night_rates:
            found["import_peak"], found["import_off_peak"] = max(day_rates), min(night_rates)
    return AutoRates(**found, source=", ".join(codes))


def cached_auto_rates(kraken: Kraken, now: datetime) -> AutoRates:
    """Rates cached for a day, and read again at once when another agreement takes over."""
    from octopus import agreements_now

    codes = ", ".join(a.tariff_code for a in agreements_now(kraken.agreements(), now))
    entry = kraken.state.get("auto_rates")
    if isinstance(entry, dict) and (entry.get("value") or {}).get("source") != codes:
        kraken.state.pop("auto_rates")
    value = kraken.cached("auto_rates", RATES_TTL, lambda: fetch_auto_rates(kraken, now).__dict__)
    return AutoRates(**value)


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
