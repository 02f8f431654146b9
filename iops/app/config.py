"""Reading and checking the INI config; every problem is collected and reported at once."""

from __future__ import annotations

import configparser
import math
import os
import re
from collections.abc import Callable, Mapping
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iops.app.args import invocation
from iops.core.errors import ConfigError
from iops.core.settings import (
    Config,
    DebugConfig,
    FeaturesConfig,
    HistoryConfig,
    MqttConfig,
    OctopusConfig,
    TariffConfig,
    TeslaConfig,
)

if TYPE_CHECKING:
    from iops.core.dispatch_rules import TrustSetting

T = TypeVar("T")

# Package data: in a clone a link to the config.txt.example at the top; installed, a copy.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
EXAMPLE_PATH = DATA_DIR / "config.txt.example"

# Environment variables that may hold secrets instead of the file (they win over the file).
ENV_SECRETS = {
    ("octopus", "api_key"): "OCTOPUS_API_KEY",
    ("tesla", "api_key"): "TESLA_API_KEY",
    ("tesla", "refresh_token"): "TESLA_REFRESH_TOKEN",
    ("mqtt", "password"): "MQTT_PASSWORD",
}
TRUST_SETTINGS = ("auto", "planned", "started")
MAX_PRICE = 10.0  # GBP/kWh: anything above is a typo (pence instead of pounds, say)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
NODE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOKEN_PATTERN = re.compile(r"[\x21-\x7e]+")  # keys and tokens: printable ASCII, no spaces or line breaks
MAX_TIMEOUT = 30.0  # seconds: a request may take 3 of them, and a run must end within its minute
REQUIRED_FOR_RUN = [("octopus", "api_key"), ("octopus", "account_number")]
REQUIRED_FOR_POST = [("tesla", "api_key"), ("tesla", "site_id")]


def default_node_id(site_id: str, path: Path) -> str:
    """A stable identity per config for MQTT: from the Tesla site, else from the config's path.

    Hashed, so the topics show nothing about the site; stable, so Home Assistant keeps its entities.
    """
    import hashlib  # only here: a plain run does not need it

    source = f"site:{site_id}" if site_id.isdigit() else f"path:{path.resolve()}"
    return "iops_" + hashlib.sha256(source.encode()).hexdigest()[:8]


def is_placeholder(value: str) -> bool:
    v = value.strip()
    return not v or v.startswith("<") or "XXXX" in v.upper()


class _Reader:
    """Typed access to the parsed INI that records problems instead of raising on the first."""

    def __init__(self, parser: configparser.ConfigParser, path: Path, env: Mapping[str, str]) -> None:
        self.parser = parser
        self.path = path
        self.env = env
        self.problems: list[str] = []

    def raw(self, section: str, key: str, default: str = "") -> str:
        env_name = ENV_SECRETS.get((section, key))
        if env_name and self.env.get(env_name):
            return self.env[env_name].strip()
        return self.parser.get(section, key, fallback=default).strip()

    def problem(self, section: str, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: [{section}] {key}: {message}")

    def convert(self, section: str, key: str, default: str, parse: Callable[[str], T], hint: str, fallback: T) -> T:
        value = self.raw(section, key, default)
        try:
            return parse(value)
        except ValueError:
            self.problem(section, key, f"{self.quote(value)} is not {hint}")
            return fallback

    def quote(self, value: str) -> str:
        """A bad value, quoted only when short and not one of the secrets (a key pasted in the wrong place)."""
        secrets = [self.raw(s, k) for s, k in ENV_SECRETS]
        if len(value) <= 16 and not any(value and value in secret for secret in secrets if secret):
            return repr(value)
        return "the value given"

    def number(
        self, section: str, key: str, default: str, *, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        value = self.convert(section, key, default, float, "a number (e.g. 0.30)", minimum)
        if not math.isfinite(value):
            self.problem(section, key, "must be a finite number")
            return minimum
        if value < minimum:
            self.problem(section, key, f"{value:g} must be at least {minimum:g}")
        if maximum is not None and value > maximum:
            self.problem(section, key, f"{value:g} is above {maximum:g}; a typo? (prices are in GBP per kWh)")
        return value

    def positive(self, section: str, key: str, default: str) -> float:
        value = self.number(section, key, default)
        if value == 0:
            self.problem(section, key, "must be above 0")
        return value

    def price(self, section: str, key: str) -> float | None:
        if not self.raw(section, key):
            return None
        return self.number(section, key, "", maximum=MAX_PRICE)

    def url(self, section: str, key: str, default: str) -> str:
        """Secrets travel to these addresses: https only, except to this machine (the test fakes)."""
        value = self.raw(section, key, default)
        parsed = urlparse(value)
        if parsed.scheme == "https" and parsed.hostname:
            return value
        if parsed.scheme == "http" and parsed.hostname in LOOPBACK:
            return value
        self.problem(section, key, f"{self.quote(value)} must be an https:// address (http:// only to this machine)")
        return default

    def boolean(self, section: str, key: str, default: str) -> bool:
        return self.convert(section, key, default, _parse_bool, "true or false", False)

    def clock(self, section: str, key: str, default: str) -> time:
        return self.convert(section, key, default, _parse_time, "a time HH:MM on :00 or :30", time(0, 0))


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(value)


def _parse_time(value: str) -> time:
    parsed = time.fromisoformat(value)
    if parsed.minute not in (0, 30) or parsed.second:
        raise ValueError(value)
    return parsed


def load_config(
    path: Path, env: Mapping[str, str] | None = None, *, need_octopus: bool = True, need_tesla: bool = True
) -> Config:
    """Parse and check the config; raise ConfigError listing every problem found."""
    env = os.environ if env is None else env
    parser = configparser.ConfigParser(interpolation=None)
    try:
        # utf-8-sig: a byte-order mark (Windows Notepad) is accepted and dropped.
        with path.open(encoding="utf-8-sig") as handle:
            parser.read_file(handle)
    except configparser.Error as err:
        raise ConfigError([f"{path}: not a valid INI file: {err}"]) from err
    except UnicodeDecodeError as err:
        raise ConfigError([f"{path}: not UTF-8 text (saved as Latin-1 or UTF-16?): save it as UTF-8"]) from err
    except IsADirectoryError as err:
        raise ConfigError([f"{path}: is a folder, not a config file: give the path of config.txt"]) from err
    except OSError as err:
        raise ConfigError(
            [f"{path}: cannot be read ({err.strerror or err}): check the path and that this user may read it"]
        ) from err
    r = _Reader(parser, path, env)
    refresh_token = r.raw("tesla", "refresh_token")
    required = (REQUIRED_FOR_RUN if need_octopus else []) + (REQUIRED_FOR_POST if need_tesla else [])
    if refresh_token and not is_placeholder(refresh_token):
        # Fleet API with a refresh token: the access token is minted, so api_key may stay empty.
        required = [(s, k) for s, k in required if (s, k) != ("tesla", "api_key")] + [("tesla", "client_id")]
    for section, key in required:
        if is_placeholder(r.raw(section, key)):
            env_name = ENV_SECRETS.get((section, key))
            alt = f" (or set {env_name})" if env_name else ""
            r.problem(section, key, f"missing or still a placeholder; fill it in{alt}")

    zone = r.raw("tariff", "time_zone", "Europe/London")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        r.problem("tariff", "time_zone", f"{r.quote(zone)} is not an IANA time zone such as Europe/London")
        zone = "Europe/London"

    rates_mode = r.raw("tariff", "rates", "manual").lower()
    if rates_mode not in ("auto", "manual"):
        r.problem("tariff", "rates", f"{r.quote(rates_mode)} must be auto or manual")
    rates_auto = rates_mode == "auto"
    trust = r.raw("tariff", "dispatch_trust", "auto").lower()
    if trust not in TRUST_SETTINGS:
        r.problem("tariff", "dispatch_trust", f"{r.quote(trust)} must be auto, planned or started")
        trust = "auto"
    allowance: int | None = None
    if r.raw("tariff", "car_allowance_half_hours"):
        count = r.number("tariff", "car_allowance_half_hours", "")
        if not count.is_integer() or count > 48:
            r.problem("tariff", "car_allowance_half_hours", "must be a whole number of half-hours from 0 to 48")
        else:
            allowance = int(count)
    import_peak = r.price("tariff", "import_peak")
    import_off_peak = r.price("tariff", "import_off_peak")
    export_peak = r.price("tariff", "export")
    export_off_peak = r.price("tariff", "export_off_peak")
    off_peak_start = r.clock("tariff", "off_peak_start", "23:30")
    off_peak_end = r.clock("tariff", "off_peak_end", "05:30")
    if off_peak_start == off_peak_end:
        r.problem("tariff", "off_peak_end", "equals off_peak_start; the IOG window is 23:30 to 05:30")
    site_id = r.raw("tesla", "site_id")
    if site_id and not is_placeholder(site_id) and not site_id.isdigit():
        r.problem("tesla", "site_id", f"must be digits only; {invocation('get_site_id.py')} {path} --write finds it")
    if not rates_auto:
        for key, value in (("import_peak", import_peak), ("import_off_peak", import_off_peak), ("export", export_peak)):
            if value is None and r.raw("tariff", key) == "":
                r.problem("tariff", key, "missing; give a price in GBP/kWh or set rates = auto")

    state_dir = path.parent
    log_default = str(state_dir / (path.name + ".log"))
    site = r.raw("tesla", "site_id")
    # Derived (a hash) only when MQTT is on: a plain run skips the work.
    mqtt_enabled = r.boolean("mqtt", "enabled", "false")
    node = r.raw("mqtt", "node_id") or (default_node_id(site, path) if mqtt_enabled else "io_powerwall_scheduler")
    if not NODE_ID_PATTERN.fullmatch(node):
        r.problem("mqtt", "node_id", "use only letters, digits, _ and - (at most 64)")
    device_name = "IO Powerwall Scheduler " + (f"(site …{site[-4:]})" if site.isdigit() else f"({node})")
    if mqtt_enabled and not r.raw("mqtt", "host"):
        r.problem("mqtt", "host", "missing; needed when enabled = true")

    config = Config(
        path=path,
        octopus=OctopusConfig(
            api_key=r.raw("octopus", "api_key"),
            account_number=r.raw("octopus", "account_number"),
            graphql_url=r.url("octopus", "graphql_url", "https://api.octopus.energy/v1/graphql/"),
            backend_graphql_url=r.url(
                "octopus", "backend_graphql_url", "https://api.backend.octopus.energy/v1/graphql/"
            ),
            rest_url=r.url("octopus", "rest_url", "https://api.octopus.energy/v1/"),
            poll_minutes=r.number("octopus", "poll_minutes", "3", minimum=1),
        ),
        tesla=TeslaConfig(
            api_key=r.raw("tesla", "api_key"),
            site_id=site_id,
            api_base_url=r.url("tesla", "api_base_url", "https://api.tessie.com").rstrip("/"),
            verify_hours=r.number("tesla", "verify_hours", "1"),
            refresh_token=refresh_token,
            client_id=r.raw("tesla", "client_id"),
            token_url=r.url("tesla", "token_url", "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"),
            live_check=r.boolean("tesla", "live_check", "true"),
        ),
        tariff=TariffConfig(
            rates_auto=rates_auto,
            import_peak=import_peak,
            import_off_peak=import_off_peak,
            export_peak=export_peak,
            export_off_peak=export_off_peak,
            off_peak_start=off_peak_start,
            off_peak_end=off_peak_end,
            time_zone=zone,
            name=r.raw("tariff", "name", "Intelligent Octopus Go"),
            utility=r.raw("tariff", "utility", "Octopus Energy"),
            dispatch_trust=cast("TrustSetting", trust),
            car_allowance_half_hours=allowance,
        ),
        features=FeaturesConfig(
            free_electricity=r.boolean("features", "free_electricity", "true"),
            saving_sessions=r.boolean("features", "saving_sessions", "true"),
            min_saving_offset=r.number("features", "min_saving_offset", "0.10"),
            saving_sessions_poll_minutes=int(r.number("features", "saving_sessions_poll_minutes", "60")),
            auto_join_saving_sessions=r.boolean("features", "auto_join_saving_sessions", "false"),
            auto_join_min_reward=r.number("features", "auto_join_min_reward", "1.00"),
        ),
        mqtt=MqttConfig(
            enabled=mqtt_enabled,
            host=r.raw("mqtt", "host"),
            port=int(r.number("mqtt", "port", "1883", minimum=1)),
            username=r.raw("mqtt", "username"),
            password=r.raw("mqtt", "password"),
            tls=r.boolean("mqtt", "tls", "false"),
            ca_certs=r.raw("mqtt", "ca_certs"),
            # Empty topics get a per-config default, so several configs can share one broker.
            enable_topic=r.raw("mqtt", "enable_topic") or f"io_powerwall_scheduler/{node}/enabled",
            state_topic=r.raw("mqtt", "state_topic") or f"io_powerwall_scheduler/{node}/state",
            wait_seconds=r.positive("mqtt", "wait_seconds", "3"),
            default_when_no_flag=r.boolean("mqtt", "run_when_no_flag", "true"),
            default_when_unreachable=r.boolean("mqtt", "run_when_unreachable", "true"),
            discovery=r.boolean("mqtt", "discovery", "false"),
            discovery_prefix=r.raw("mqtt", "discovery_prefix", "homeassistant"),
            node_id=node,
            device_name=device_name,
            stale_after_minutes=r.number("mqtt", "stale_after_minutes", "10", minimum=1),
            restore_when_off=r.boolean("mqtt", "restore_when_off", "false"),
        ),
        history=HistoryConfig(
            bill_check=r.boolean("history", "bill_check", "true"),
            keep_days=_whole(r, "history", "keep_days", "400", minimum=30),
            battery_check=r.boolean("history", "battery_check", "true"),
        ),
        debug=DebugConfig(
            dry_run=r.boolean("debug", "dry_run", "false"),
            force=r.boolean("debug", "force", "false"),
            debug=r.boolean("debug", "debug", "false"),
            log_file=Path(r.raw("debug", "log_file", log_default) or log_default),
            timeout_seconds=r.number("debug", "timeout_seconds", "10", minimum=0.1, maximum=MAX_TIMEOUT),
        ),
    )
    _check_what_would_break_every_run(r, config)
    if r.problems:
        raise ConfigError(r.problems)
    return config


def _whole(r: _Reader, section: str, key: str, default: str, *, minimum: int) -> int:
    value = r.number(section, key, default, minimum=minimum)
    if not value.is_integer():
        r.problem(section, key, "must be a whole number")
    return int(value)


def _check_what_would_break_every_run(r: _Reader, config: Config) -> None:
    """Values that read well but would fail every run, far from the config: caught here instead."""
    for (section, key), value in (
        (("octopus", "api_key"), config.octopus.api_key),
        (("octopus", "account_number"), config.octopus.account_number),
        (("tesla", "api_key"), config.tesla.api_key),
        (("tesla", "refresh_token"), config.tesla.refresh_token),
        (("tesla", "client_id"), config.tesla.client_id),
    ):
        if value and not is_placeholder(value) and not TOKEN_PATTERN.fullmatch(value):
            r.problem(
                section,
                key,
                "has a character no key or token has (a line break, a space or a non-ASCII letter): paste it again",
            )
    mqtt = config.mqtt
    if mqtt.enabled:
        for key, topic in (
            ("enable_topic", mqtt.enable_topic),
            ("state_topic", mqtt.state_topic),
            ("discovery_prefix", mqtt.discovery_prefix),
        ):
            if "+" in topic or "#" in topic or not topic.strip("/"):
                r.problem("mqtt", key, "a topic to publish to cannot hold the MQTT wildcards + or #, nor be empty")
        if mqtt.tls and mqtt.ca_certs:
            problem = _unusable_ca_file(Path(mqtt.ca_certs).expanduser())
            if problem:
                r.problem(
                    "mqtt",
                    "ca_certs",
                    f"{problem}: give the path of a PEM file of CA certificates, or leave it empty for the system's",
                )
    log_file = config.debug.log_file
    if len(str(log_file)) > 4000 or any(len(part.encode()) > 255 for part in log_file.parts):
        r.problem("debug", "log_file", "the path is too long for the file system")


def _unusable_ca_file(path: Path) -> str:
    import ssl  # only for a TLS config with its own CA file

    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        return f"{path} does not exist"
    except (OSError, ssl.SSLError, ValueError) as err:
        return f"{path} cannot be used ({type(err).__name__})"
    return ""


def write_template(path: Path) -> None:
    """Create a config from the documented example, readable only by its owner (it will hold keys)."""
    text = EXAMPLE_PATH.read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
