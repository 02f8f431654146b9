"""The settings a config file gives, as frozen records. Pure: parsing and checking the INI is
iops.app.config's job; these types are shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the idle minute loads the settings, never the rules
    from iops.core.dispatch_rules import TrustSetting


@dataclass(frozen=True)
class OctopusConfig:
    """[octopus]: the account and where Kraken answers."""

    api_key: str = field(repr=False)
    account_number: str
    graphql_url: str
    backend_graphql_url: str
    rest_url: str
    poll_minutes: float = 3  # between polls when nothing is happening (every minute when something is)


@dataclass(frozen=True)
class TeslaConfig:
    """[tesla]: the site, the back end (Tessie, Teslemetry, Fleet API) and its credentials."""

    api_key: str = field(repr=False)
    site_id: str
    api_base_url: str
    verify_hours: float
    # Tesla Fleet API with a refresh token: access tokens are minted (and the refresh token rotated) here.
    refresh_token: str = field(default="", repr=False)
    client_id: str = ""
    token_url: str = "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"
    live_check: bool = True  # one live_status read 10-15 minutes into each daytime cheap block


@dataclass(frozen=True)
class TariffConfig:
    """[tariff]: prices, the fixed off-peak window, and how smart slots are billed."""

    rates_auto: bool
    import_peak: float | None
    import_off_peak: float | None
    export_peak: float | None
    export_off_peak: float | None
    off_peak_start: time
    off_peak_end: time
    time_zone: str
    name: str
    utility: str
    dispatch_trust: TrustSetting = "auto"
    car_allowance_half_hours: int | None = None  # None: automatic from the tariff code; 0: no limit


@dataclass(frozen=True)
class FeaturesConfig:
    """[features]: Power Ups, saving sessions, auto-join."""

    free_electricity: bool
    saving_sessions: bool
    min_saving_offset: float
    saving_sessions_poll_minutes: int
    auto_join_saving_sessions: bool
    auto_join_min_reward: float


@dataclass(frozen=True)
class MqttConfig:
    """[mqtt]: the on/off switch, the status and Home Assistant discovery."""

    enabled: bool
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    tls: bool
    ca_certs: str
    enable_topic: str
    state_topic: str
    wait_seconds: float
    default_when_no_flag: bool
    default_when_unreachable: bool
    discovery: bool
    discovery_prefix: str
    node_id: str = "io_powerwall_scheduler"  # per config: in topics, unique_ids and the device
    device_name: str = "IO Powerwall Scheduler"
    stale_after_minutes: float = 10
    restore_when_off: bool = False  # switching off over MQTT puts the user's own tariff back, once


@dataclass(frozen=True)
class DebugConfig:
    """[debug]: previews, logging and timeouts."""

    dry_run: bool
    force: bool
    debug: bool
    log_file: Path
    timeout_seconds: float


@dataclass(frozen=True)
class HistoryConfig:
    """[history]: what the durable records keep, and the daily bill check."""

    bill_check: bool = True  # read what Octopus billed each half-hour, once a day
    keep_days: int = 400  # history older than this is dropped
    battery_check: bool = True  # read the battery's energy history from Tesla, once a day


@dataclass(frozen=True)
class Config:
    """A whole config file, checked; where its cache, durable records, lock and log live."""

    path: Path
    octopus: OctopusConfig
    tesla: TeslaConfig
    tariff: TariffConfig
    features: FeaturesConfig
    mqtt: MqttConfig
    debug: DebugConfig
    history: HistoryConfig = HistoryConfig()

    @property
    def state_path(self) -> Path:
        # The cache (JSON), one per config, beside it, so several configs never share one.
        return self.path.with_name(self.path.name + ".state.json")

    @property
    def store_path(self) -> Path:
        # The durable records (SQLite): what cannot be rebuilt, kept apart from the cache.
        return self.path.with_name(self.path.name + ".db")

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def secrets(self) -> list[str]:
        """Values that must never reach a log line or the terminal."""
        values = [self.octopus.api_key, self.tesla.api_key, self.tesla.refresh_token, self.mqtt.password]
        return [v for v in values if v]
