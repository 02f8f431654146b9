"""--check against the fake servers: one test per finding that can go wrong, and it never posts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import AT, Result
from fakes import DEVICE_ID, FakeKraken, FakeTessie


def check(cli: Callable[..., Result], config: Path) -> Result:
    return cli(config, "--check", "--at", AT)


def lines(result: Result, mark: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(mark)]


def test_everything_fine(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.device_states = {DEVICE_ID: "SMART_CONTROL_CAPABLE"}
    result = check(cli, make_config())
    assert result.code == 0, result.stdout
    assert lines(result, "✗") == [] and lines(result, "⚠") == []
    assert f"✓ EV {DEVICE_ID}: SMART_CONTROL_CAPABLE" in result.stdout
    assert (
        "✓ Import tariff E-1R-INTELLI-VAR-24-10-29-A (meter 1000000000000): Intelligent Octopus Go (original), "
        "dispatch_trust = planned" in result.stdout
    )
    assert "✓ Tesla token works; energy site 2252357221831636 (Home Powerwall) found" in result.stdout
    assert "✓ Powerwall is in Time-Based Control" in result.stdout
    assert all(r["method"] == "GET" for r in tessie.requests) and tessie.posted == []
    assert not Path(str(make_config()) + ".state.json").exists()  # it writes nothing


def test_iog_smb_shows_the_rules_that_follow(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.import_tariff = ("IOG-SMB-TOU-25-12-12", "E-1R-IOG-SMB-TOU-25-12-12-H")
    result = check(cli, make_config())
    assert "dispatch_trust = started, car allowance 12 half-hours a day" in result.stdout


def test_config_problems(tmp_path: Path, cli: Callable[..., Result]) -> None:
    config = tmp_path / "config.txt"
    config.write_text("[tariff]\nimport_peak = lots\n")
    result = check(cli, config)
    assert result.code == 2
    assert f"✗ {config}: [octopus] api_key: missing" in result.stdout
    assert f"✗ {config}: [tariff] import_peak: 'lots' is not a number" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "setup", "expected", "code"),
    [
        ({"octopus": {"api_key": "sk_live_wrong"}}, None, "✗ Octopus API key: Octopus: API key rejected", 2),
        ({"octopus": {"account_number": "A-99999999"}}, None, "✗ Octopus refuses this key access to account", 2),
        ({}, "octopus_down", "✗ Octopus API key: Octopus: HTTP 503: try again later", 1),
        (
            {"tesla": {"api_key": "wrong-token"}},
            None,
            "✗ Tesla: Tesla: HTTP 401: token refused: check [tesla] api_key",
            2,
        ),
        ({"tesla": {"site_id": "9999888877776666"}}, None, "check [tesla] site_id", 2),
        ({}, "tesla_down", "✗ Tesla: Tesla: HTTP 503: try again later", 1),
    ],
)
def test_each_failure_names_its_fix(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    overrides: dict[str, dict[str, str]],
    setup: str | None,
    expected: str,
    code: int,
) -> None:
    if setup == "octopus_down":
        kraken.inject("obtainKrakenToken", "http", status=503, times=5)
    if setup == "tesla_down":
        tessie.inject("read", "http", status=503, times=5)
    result = check(cli, make_config(**overrides))
    assert result.code == code, result.stdout
    assert any(expected in line for line in lines(result, "✗")), result.stdout
    assert tessie.posted == []


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("no_ev", "⚠ No live EV or charger on the Octopus account: only 23:30-05:30 will be cheap: finish setting up"),
        ("lost", f"⚠ EV {DEVICE_ID}: LOST_CONNECTION: reconnect the car or charger in the Octopus app"),
        ("no_agreement", "⚠ No import agreement valid now: dispatch_trust = planned"),
        ("self_powered", "⚠ Powerwall is in self_consumption mode, not Time-Based Control: it ignores the tariff"),
        ("no_grid_charging", "⚠ Grid charging is off: the Powerwall will not charge from the grid in cheap slots"),
        ("reserve_high", "⚠ Backup reserve 80% is at or above the charge level (60%): the reserve overrides"),
        ("reserve_equal", "⚠ Backup reserve 60% is at or above the charge level (60%)"),
        (
            "no_mode",
            "⚠ Tesla does not say which mode the Powerwall is in (no default_real_mode): taken as Self-Powered",
        ),
    ],
)
def test_warnings_name_their_fix_and_do_not_fail(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    setup: str,
    expected: str,
) -> None:
    if setup == "no_ev":
        kraken.data.devices = [d for d in kraken.data.devices if d["deviceType"] != "ELECTRIC_VEHICLES"]
    elif setup == "lost":
        kraken.data.device_states = {DEVICE_ID: "LOST_CONNECTION"}
    elif setup == "no_agreement":
        kraken.data.import_valid_to = "2026-01-01T00:00:00+00:00"
    elif setup == "self_powered":
        tessie.mode = "self_consumption"
    elif setup == "no_grid_charging":
        tessie.grid_charging = False
    elif setup == "reserve_high":
        tessie.reserve = 80
    elif setup == "reserve_equal":
        tessie.reserve = 60
    elif setup == "no_mode":
        tessie.mode = None
    result = check(cli, make_config())
    assert result.code == 0, result.stdout
    assert any(line.startswith(expected) for line in lines(result, "⚠")), result.stdout
    assert lines(result, "✗") == []


def test_the_powerwall_settings_are_read_as_tesla_means_them(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """An absent grid-charging flag means allowed; Cost Saving is said plainly (the API cannot set it);
    a reserve below the charge level is fine; an unreadable charge level says so."""
    tessie.grid_charging = None
    result = check(cli, make_config())
    assert result.code == 0 and lines(result, "⚠") == [], result.stdout
    assert "✓ Grid charging is allowed (Tesla leaves the flag out when it is)" in result.stdout
    assert '"Cost Saving"' in result.stdout and "the API can neither set" in result.stdout
    assert "✓ Backup reserve 20% is below the charge level (60%)" in result.stdout
    tessie.charge_percent = None
    assert "Backup reserve 20% (the charge level could not be read to compare)" in check(cli, make_config()).stdout


def test_a_site_without_a_battery_is_an_error_naming_the_fix(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    tessie.has_battery = False
    result = check(cli, make_config())
    assert result.code == 2
    assert any("no battery on this energy site" in line and "get_site_id.py" in line for line in lines(result, "✗"))


def test_an_unknown_tariff_code_says_which_rules_were_applied_and_why(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.import_tariff = ("IOG-NEW-26-11-01", "E-1R-IOG-NEW-26-11-01-H")
    config = make_config()
    result = check(cli, config)
    assert (
        "⚠ Import tariff E-1R-IOG-NEW-26-11-01-H (meter 1000000000000): dispatch_trust = planned, car allowance "
        "no limit because E-1R-IOG-NEW-26-11-01-H is not a code this version knows and does not name IOG-SMB: the "
        "original Intelligent Octopus Go rules are assumed" in result.stdout
    ), result.stdout
    assert "set [tariff] dispatch_trust and car_allowance_half_hours" in result.stdout
    first = cli(config, "--at", AT)
    second = cli(config, "--at", "2026-11-24T12:03:00+00:00")  # the next poll
    assert first.code == second.code == 0
    said = "is not a code this version knows and does not name IOG-SMB"
    assert second.log.count(said) == 1  # in the log once, not every poll
    kraken.data.import_tariff = ("IOG-SMB-ZZZ-26-11-01", "E-1R-IOG-SMB-ZZZ-26-11-01-H")
    named = check(cli, config)
    assert "dispatch_trust = started, car allowance 12 half-hours a day because" in named.stdout
    assert "is not a code this version knows, but it names IOG-SMB" in named.stdout


# ---- know before Octopus removes a field (introspection) ------------------------------------------


def test_the_schema_check_is_clean_on_todays_schema(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    result = check(cli, make_config())
    assert "✓ Octopus's schema has all 84 fields the tool uses, none deprecated" in result.stdout, result.stdout
    asked = [r for r in kraken.requests if r["operations"] and r["operations"][0] == "__type"]
    assert asked and all(set(r["variables"]) == {f"t{i}" for i in range(8)} for r in asked)
    assert all("Query" not in r["query"] for r in asked)  # type names travel as variables


def test_a_deprecated_field_and_a_removed_one_are_named(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    reason = "Please use plannedDispatches instead. This field will be removed on or after 2027-03-01."
    kraken.deprecate("Query", "flexPlannedDispatches", reason)
    result = check(cli, make_config())
    assert f"⚠ Octopus marks Query.flexPlannedDispatches deprecated: {reason}" in result.stdout, result.stdout
    assert result.code == 0  # a warning: the runs still work
    kraken.remove("UpsideDispatchMetaType", "location")
    kraken.deprecate("JoinedEvent", "eventId", "Use code.", backend=True)
    result = check(cli, make_config())
    assert "⚠ Octopus's schema has no UpsideDispatchMetaType.location: the queries that use it will fail" in (
        result.stdout
    )
    assert "⚠ Octopus marks JoinedEvent.eventId deprecated: Use code." in result.stdout


def test_a_server_that_refuses_introspection_gets_one_line(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.refuse_introspection = True
    result = check(cli, make_config())
    schema_lines = [line for line in result.stdout.splitlines() if "schema" in line]
    assert len(schema_lines) == 1 and schema_lines[0].startswith("⚠ Octopus's schema could not be checked")
    assert result.code == 0


def test_the_schema_check_covers_exactly_what_the_queries_select() -> None:
    """The trees in kraken_schema against every query document, walked with graphql-core."""
    from fakes import BACKEND_SDL, MAIN_SDL, _schema
    from graphql import (
        FieldNode,
        FragmentDefinitionNode,
        FragmentSpreadNode,
        InlineFragmentNode,
        OperationDefinitionNode,
        parse,
        validate,
    )

    from iops.services import kraken_queries as q
    from iops.services.kraken_schema import BACKEND_USED, MAIN_USED

    def tree(selections: Any, fragments: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in selections:
            if isinstance(s, FieldNode):
                inner = tree(s.selection_set.selections, fragments) if s.selection_set else {}
                out[s.name.value] = {**out.get(s.name.value, {}), **inner}
            elif isinstance(s, FragmentSpreadNode):
                out.update(tree(fragments[s.name.value].selection_set.selections, fragments))
            elif isinstance(s, InlineFragmentNode) and s.type_condition is not None:
                out[f"... on {s.type_condition.name.value}"] = tree(s.selection_set.selections, fragments)
        return out

    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return {k: merge(a.get(k, {}), b.get(k, {})) for k in {*a, *b}}

    documents = [
        q.TOKEN_MUTATION,
        q.DEVICES_QUERY,
        q.POWER_UPS_QUERY,
        q.ACCOUNT_QUERY,
        q.MEASUREMENTS_QUERY,
        q.SAVING_SESSIONS_QUERY,
        q.JOIN_SAVING_SESSION_MUTATION,
        *q.DISPATCH_QUERIES.values(),
    ]
    found: dict[str, dict[str, Any]] = {"main": {}, "backend": {}}
    schemas = {"main": _schema(MAIN_SDL), "backend": _schema(BACKEND_SDL)}
    for text in documents:
        document = parse(text)
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        host = next(h for h in ("main", "backend") if not validate(schemas[h], document))
        for d in document.definitions:
            if isinstance(d, OperationDefinitionNode):
                root = "Mutation" if d.operation.value == "mutation" else "Query"
                found[host] = merge(found[host], {root: tree(d.selection_set.selections, fragments)})

    def plain(t: Any) -> Any:
        return {k: plain(v) for k, v in t.items()}

    assert plain(MAIN_USED) == found["main"]
    assert plain(BACKEND_USED) == found["backend"]
