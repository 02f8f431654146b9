"""--check: what a user runs after editing the config. Reads everything, posts nothing.

Each finding is one line: ✓ works, ✗ must be fixed before the scheduler can work, ⚠ works but is
worth changing. Exit 0 when nothing needed is broken, 2 when the config or a key must change, 1
when a service could not be reached (try again later).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from iops.app.args import invocation
from iops.app.config import load_config
from iops.app.exits import EXIT_CONFIG, EXIT_OK, EXIT_SERVICE
from iops.app.protected import Job, run_command
from iops.core.dispatch_rules import resolve_rules, tariff_family
from iops.core.errors import ConfigError, CredentialsRejected, SchedulerError
from iops.core.settings import Config

if TYPE_CHECKING:
    import requests

    from iops.core.battery_check import LiveReading
    from iops.services.kraken_answers import Agreement
    from iops.services.octopus import Kraken

Mark = Literal["ok", "fail", "warn"]
SYMBOLS = {"ok": "✓", "fail": "✗", "warn": "⚠"}
PLAIN = {"ok": "OK  ", "fail": "FAIL", "warn": "WARN"}
TROUBLED_STATES = {
    "LOST_CONNECTION": "reconnect the car or charger in the Octopus app",
    "AUTHENTICATION_FAILED": "sign in to the car or charger again in the Octopus app",
    "SMART_CONTROL_OFF": "turn smart charging back on in the Octopus app",
    "SMART_CONTROL_NOT_AVAILABLE": "check the car's connection in the Octopus app",
    "RETIRED": "this device is retired; add your current car in the Octopus app",
}


@dataclass(frozen=True)
class Finding:
    mark: Mark
    text: str
    fix: str = ""
    outage: bool = False  # a failure on their side, not the config's

    def line(self, symbols: dict[str, str]) -> str:
        return f"{symbols[self.mark]} {self.text}" + (f": {self.fix}" if self.fix else "")


def run_check(path: Path, now: datetime | None = None) -> int:
    """Check the config, Octopus, the car(s), the tariff rules, Tesla and the Powerwall's settings."""
    symbols = SYMBOLS if _can_print("✓✗⚠") else PLAIN
    try:
        load_config(path)
    except ConfigError as err:
        for problem in err.problems:
            print(Finding("fail", problem).line(symbols), flush=True)
        return EXIT_CONFIG

    def work(job: Job) -> int:
        findings: list[Finding] = []

        def say(finding: Finding) -> None:
            findings.append(finding)
            job.say(finding.line(symbols))

        config = job.config
        say(Finding("ok", f"Config {path} reads cleanly"))
        import requests

        with requests.Session() as session:
            _check_octopus(job, session, say)
            _check_tesla(job, session, say)
        if config.mqtt.enabled:
            _check_mqtt(config, say)
        failures = [f for f in findings if f.mark == "fail"]
        if not failures:
            return EXIT_OK
        return EXIT_SERVICE if all(f.outage for f in failures) else EXIT_CONFIG

    # Under the run lock: a Fleet refresh token may rotate on the way, and is then kept.
    return run_command(path, work, now=now, log_to_file=False)


def _can_print(text: str) -> bool:
    try:
        text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _failure(err: SchedulerError, config: Config, what: str) -> Finding:
    if isinstance(err, CredentialsRejected):
        return Finding("fail", f"{what}: {err}", f"check {err.key} in {config.path}")
    return Finding("fail", f"{what}: {err}", "try again later; if it lasts, see the service's status page", True)


def _check_octopus(job: Job, session: requests.Session, say: Callable[[Finding], None]) -> None:
    from iops.services.kraken_answers import import_agreement
    from iops.services.kraken_cache import KrakenCache
    from iops.services.kraken_queries import DEVICES_QUERY
    from iops.services.octopus import Kraken

    config, now = job.config, job.now
    # The check may reuse a cached token, but writes nothing back (job.state is left as it is).
    kraken = Kraken(session, config.octopus, job.state.get(KrakenCache), timeout=config.debug.timeout_seconds)
    try:
        job.redactor.add(kraken.token())
    except SchedulerError as err:
        say(_failure(err, config, "Octopus API key"))
        return
    say(Finding("ok", "Octopus API key works"))
    account = config.octopus.account_number
    try:
        data = kraken.graphql(DEVICES_QUERY, {"accountNumber": account})
    except CredentialsRejected:
        say(Finding("fail", f"Octopus refuses this key access to account {account}", "check [octopus] account_number"))
        return
    except SchedulerError as err:
        say(_failure(err, config, f"Octopus account {account}"))
        return
    say(Finding("ok", f"Octopus account {account} found"))
    _report_devices(data.get("devices"), say)
    try:
        agreement = import_agreement(kraken.agreements(), now)
    except SchedulerError as err:
        say(_failure(err, config, "Octopus agreements"))
        return
    _check_tariff(config, agreement, say)
    _check_schema(kraken, say)


def _check_tariff(config: Config, agreement: Agreement | None, say: Callable[[Finding], None]) -> None:
    from iops.core.schedule_view import OVERRIDE_HINT, describe_allowance

    tariff = config.tariff
    code = agreement.tariff_code if agreement else None
    rules = resolve_rules(tariff.dispatch_trust, tariff.car_allowance_half_hours, code)
    allowance = describe_allowance(rules)
    if agreement is None:
        say(
            Finding(
                "warn",
                f"No import agreement valid now: dispatch_trust = {rules.trust}, car allowance {allowance}",
                "ask Octopus to check your tariff, or set [tariff] dispatch_trust yourself",
            )
        )
    else:
        family = tariff_family(code)
        known = family is None or family.known
        say(
            Finding(
                "ok" if known else "warn",
                f"Import tariff {agreement.tariff_code} (meter {agreement.mpan}): "
                + (f"{family.name}, " if family is not None and family.known else "")
                + f"dispatch_trust = {rules.trust}, car allowance {allowance}"
                + ("" if known or family is None else f" because {family.why}"),
                "" if known else OVERRIDE_HINT,
            )
        )


def _check_schema(kraken: Kraken, say: Callable[[Finding], None]) -> None:
    """Ask the live schema about every type and field the tool's queries use (introspection)."""
    from functools import partial

    from iops.services.kraken_schema import BACKEND_USED, MAIN_USED, fetch_types, walk

    problems, checked = [], 0
    try:
        for backend, used in ((False, MAIN_USED), (True, BACKEND_USED)):
            found, count = walk(used, fetch_types(partial(kraken.graphql, backend=backend)))
            problems += found
            checked += count
    except SchedulerError as err:
        say(Finding("warn", f"Octopus's schema could not be checked ({err})", "nothing to do; the runs are unaffected"))
        return
    if not problems:
        say(Finding("ok", f"Octopus's schema has all {checked} fields the tool uses, none deprecated"))
    for problem in problems:
        if problem.deprecated:
            say(
                Finding(
                    "warn",
                    f"Octopus marks {problem.where} deprecated: {problem.reason}",
                    "the tool keeps working until Octopus removes it; update the tool before that date",
                )
            )
        else:
            say(
                Finding(
                    "warn",
                    f"Octopus's schema has no {problem.where}: the queries that use it will fail",
                    "update the tool, or report it if this version is the newest",
                )
            )


def _report_devices(devices: Any, say: Callable[[Finding], None]) -> None:
    from iops.services.kraken_answers import live_evs

    evs = live_evs(devices if isinstance(devices, list) else [])
    if not evs:
        say(
            Finding(
                "warn",
                "No live EV or charger on the Octopus account: only 23:30-05:30 will be cheap",
                "finish setting up smart charging in the Octopus app",
            )
        )
    for device, state in evs.items():
        fix = TROUBLED_STATES.get(state, "")
        say(Finding("warn" if fix else "ok", f"EV {device}: {state or 'state unknown'}", fix))


def _check_tesla(job: Job, session: requests.Session, say: Callable[[Finding], None]) -> None:
    from iops.app.clients import tesla_site

    config = job.config
    site_id = config.tesla.site_id
    try:
        info = tesla_site(session, config, job.records, time.time).site_info(site_id)
    except CredentialsRejected as err:
        fix = f"check {err.key} in {config.path}"
        if err.key == "[tesla] site_id":
            fix += f" ({invocation('get_site_id.py')} {config.path} --write finds it)"
        say(Finding("fail", f"Tesla: {err}", fix))
        return
    except SchedulerError as err:
        say(_failure(err, config, "Tesla"))
        return
    name = info.get("site_name") or "unnamed"
    say(Finding("ok", f"Tesla token works; energy site {site_id} ({name}) found"))
    live = None
    try:  # the charge level, for the reserve (read only)
        from iops.services.tesla_answers import parse_live_status

        live = parse_live_status(tesla_site(session, config, job.records, time.time).live_status(site_id))
    except SchedulerError as err:
        say(Finding("warn", f"Tesla live status: {err}", "the reserve could not be compared with the charge level"))
    for finding in site_settings(info, live):
        say(finding)


COST_SAVING = (
    'make sure "Cost Saving" is chosen there in the Tesla app, not "Balanced" (the API can neither set nor, '
    "on current sites, read it)"
)


def site_settings(info: dict[str, Any], live: LiveReading | None = None) -> Sequence[Finding]:
    """What the live site settings mean for the tariff: read only, never changed."""
    raw = info.get("components")
    components: dict[str, Any] = raw if isinstance(raw, dict) else {}
    out = []
    mode = info.get("default_real_mode")
    if mode == "autonomous":
        out.append(Finding("ok", "Powerwall is in Time-Based Control, so it follows the tariff", COST_SAVING))
    elif mode is None:
        out.append(
            Finding(
                "warn",
                "Tesla does not say which mode the Powerwall is in (no default_real_mode): taken as Self-Powered, "
                "which ignores the tariff",
                "in the Tesla app choose Time-Based Control, then Cost Saving",
            )
        )
    else:
        out.append(
            Finding(
                "warn",
                f"Powerwall is in {mode} mode, not Time-Based Control: it ignores the tariff",
                "in the Tesla app choose Time-Based Control, then Cost Saving",
            )
        )
    if components.get("battery") is False:
        out.append(
            Finding(
                "fail",
                "Tesla reports no battery on this energy site: a tariff changes nothing here",
                f"choose the Powerwall's site ({invocation('get_site_id.py')} lists them)",
            )
        )
    out.extend(_reserve(info, live))
    flag = components.get("disallow_charge_from_grid_with_solar_installed")
    if flag is True:
        out.append(
            Finding(
                "warn",
                "Grid charging is off: the Powerwall will not charge from the grid in cheap slots",
                "allow grid charging in the Tesla app (some systems need the installer)",
            )
        )
    elif flag is None:
        out.append(Finding("ok", "Grid charging is allowed (Tesla leaves the flag out when it is)"))
    else:
        out.append(Finding("ok", "Grid charging is allowed"))
    if components.get("tou_capable") is False:
        out.append(Finding("warn", "Tesla reports the site as not time-of-use capable", "check with your installer"))
    tariff = info.get("tariff_content_v2")
    current = tariff.get("name") if isinstance(tariff, dict) else None
    out.append(Finding("ok", f"Live tariff: {current or 'none set'} (the check changes nothing)"))
    return out


def _reserve(info: dict[str, Any], live: LiveReading | None) -> list[Finding]:
    """A backup reserve at or above the charge level overrides the tariff: the battery holds (or
    charges) whatever the tariff says, so a quiet battery then proves nothing."""
    reserve = info.get("backup_reserve_percent")
    if isinstance(reserve, bool) or not isinstance(reserve, int | float):
        return []
    level = live.charge_percent if live is not None else None
    if level is None:
        return [Finding("ok", f"Backup reserve {reserve:g}% (the charge level could not be read to compare)")]
    if reserve >= level:
        return [
            Finding(
                "warn",
                f"Backup reserve {reserve:g}% is at or above the charge level ({level:.0f}%): the reserve overrides "
                "the tariff, so the battery holds or charges whatever it says",
                "lower the backup reserve in the Tesla app",
            )
        ]
    return [Finding("ok", f"Backup reserve {reserve:g}% is below the charge level ({level:.0f}%)")]


def _check_mqtt(config: Config, say: Callable[[Finding], None]) -> None:
    from iops.services.mqtt import read_enable_flag

    flag = read_enable_flag(config.mqtt)
    if not flag.reachable:
        say(Finding("warn", f"MQTT broker: {flag.reason}", "check [mqtt] host, port, username and password"))
    else:
        state = "on" if flag.enabled else "off: runs are skipped"
        say(Finding("ok", f"MQTT broker reachable; the switch on {config.mqtt.enable_topic} is {state}"))
