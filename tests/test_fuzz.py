"""Arbitrary state files and arbitrary answers, through the real CLI: never a traceback, never a leak."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import AT, Result
from fakes import API_KEY, TESSIE_TOKEN, FakeKraken, FakeTessie
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NAMES = itertools.count()

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**13), max_value=10**13)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["2026-11-24T14:00:00+00:00", "9999-12-31T23:59:59+00:00", "SMART", "AT_HOME", "lots"])
)
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=16,
)
SECTIONS = ["octopus", "tesla", "octopus_calls", "failing", "mqtt", "dispatch", "originals", "paused", "notes"]


def check(result: Result, state_path: Path, kraken: FakeKraken, posts: int) -> None:
    assert result.code in (0, 1, 2), result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    saved = state_path.read_text() if state_path.is_file() else ""
    for secret in (API_KEY, TESSIE_TOKEN):  # the config's secrets never reach the state
        assert secret not in saved
    for secret in (API_KEY, TESSIE_TOKEN, *kraken.tokens):  # the token cache lives only in the 0600 state
        assert secret not in result.stdout + result.stderr + result.log
    assert posts <= 1


@SETTINGS
@given(state=st.dictionaries(st.sampled_from(SECTIONS), json_values, max_size=5) | json_values)
def test_any_state_file(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result], state: Any
) -> None:
    config = make_config(f"state{next(NAMES)}.txt")
    state_path = Path(str(config) + ".state.json")
    state_path.write_text(json.dumps(state))
    before = len(tessie.posted)
    check(cli(config, "--at", AT), state_path, kraken, len(tessie.posted) - before)
    # Whatever the file held, it does not keep the scheduler down: the next poll succeeds.
    after = cli(config, "--at", "2026-11-24T12:06:00+00:00")
    assert after.code == 0, after.log[-600:]


@SETTINGS
@given(
    answer=st.fixed_dictionaries(
        {},
        optional={
            "devices": json_values,
            "ev0": json_values,
            "completedDispatches": json_values,
            "powerUpsFirst": json_values,
            "powerUpsLast": json_values,
        },
    ),
    errors=st.none() | json_values,
)
def test_any_dispatch_answer(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    answer: dict[str, Any],
    errors: Any,
) -> None:
    body: dict[str, Any] = {"data": answer}
    if errors is not None:
        body["errors"] = errors
    kraken.raw_answers = {"flexPlannedDispatches": body}
    config = make_config(f"kraken{next(NAMES)}.txt")
    before = len(tessie.posted)
    check(cli(config, "--at", AT), Path(str(config) + ".state.json"), kraken, len(tessie.posted) - before)


@SETTINGS
@given(
    site_info=json_values
    | st.fixed_dictionaries({"response": st.fixed_dictionaries({"tariff_content_v2": json_values})})
)
def test_any_tesla_read_back(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    site_info: Any,
) -> None:
    tessie.raw_site_info = site_info
    config = make_config(f"tesla{next(NAMES)}.txt")
    state_path = Path(str(config) + ".state.json")
    for minute in ("00", "05"):  # the first post reads the site's tariff; five minutes on, the read-back
        before = len(tessie.posted)
        check(cli(config, "--at", f"2026-11-24T12:{minute}:00+00:00"), state_path, kraken, len(tessie.posted) - before)


COMMANDS = [
    ("io_powerwall_scheduler.py", ("--check",)),
    ("io_powerwall_scheduler.py", ("--status",)),
    ("io_powerwall_scheduler.py", ("--restore",)),
    ("free_electricity.py", ()),
    ("savings_sessions.py", ()),
    ("get_site_id.py", ("--write",)),
]


@SETTINGS
@given(
    state=st.dictionaries(st.sampled_from(SECTIONS), json_values, max_size=5) | json_values,
    command=st.sampled_from(COMMANDS),
)
def test_any_state_file_through_every_command(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    state: Any,
    command: tuple[str, tuple[str, ...]],
) -> None:
    config = make_config(f"cmd-state{next(NAMES)}.txt")
    Path(str(config) + ".state.json").write_text(json.dumps(state))
    script, args = command
    result = cli(config, *args, script=script)
    assert result.code in (0, 1, 2), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for secret in (API_KEY, TESSIE_TOKEN, *kraken.tokens):
        assert secret not in result.stdout + result.stderr + result.log


@SETTINGS
@given(
    answer=json_values,
    where=st.sampled_from(["devices", "savingSessions", "customerFlexibilityCampaignEvents", "account"]),
    products=json_values,
    command=st.sampled_from(COMMANDS),
)
def test_any_answer_through_check_and_the_helpers(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    answer: Any,
    where: str,
    products: Any,
    command: tuple[str, tuple[str, ...]],
) -> None:
    kraken.raw_answers = {where: answer}
    tessie.products = products
    tessie.raw_site_info = answer
    config = make_config(f"cmd-answer{next(NAMES)}.txt")
    script, args = command
    result = cli(config, *args, script=script)
    assert result.code in (0, 1, 2), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "site_id = None" not in config.read_text()
