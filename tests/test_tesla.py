"""Tesla side: site lookup, read-back verification, drift repair and failures, against fake Tessie."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import AT, Result, read_state
from fakes import SITE_ID, TESSIE_TOKEN, FakeKraken, FakeTessie

from iops.app import run as scheduler
from iops.app.config import load_config
from iops.app.site_id import set_ini_value
from iops.core import decision
from iops.core.errors import BadResponse
from iops.core.tariff import price_grid
from iops.services.tesla import check_tesla_body

START = datetime.fromisoformat(AT)


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def reads(tessie: FakeTessie) -> int:
    return sum(1 for r in tessie.requests if r["method"] == "GET" and r["path"].endswith("/site_info"))


# ---- get_site_id.py --------------------------------------------------------------------------


def test_lists_energy_sites_and_writes_the_only_powerwall(
    tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    tessie.products.append({"energy_site_id": 98765, "components": {"battery": False, "solar": False}})
    config = make_config(tesla={"site_id": "<your energy site id>"})
    before = config.read_text()
    listed = cli(config, script="get_site_id.py")
    assert listed.code == 0, listed.stderr
    assert f"{SITE_ID}  " in listed.stdout and "Home Powerwall" in listed.stdout
    assert "98765" not in listed.stdout  # a site with no battery and no solar
    assert "LRW3F7EK4NC700000" not in listed.stdout  # the car
    assert config.read_text() == before
    written = cli(config, "--write", script="get_site_id.py")
    assert written.code == 0, written.stderr
    after = config.read_text()
    assert f"site_id = {SITE_ID}\n" in after
    assert after.replace(f"site_id = {SITE_ID}", "site_id = <your energy site id>") == before
    assert load_config(config).tesla.site_id == SITE_ID


def test_several_powerwalls_need_a_choice(
    tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    tessie.products.insert(
        0,
        {
            "energy_site_id": 1111222233334444,
            "resource_type": "battery",
            "site_name": "Barn",
            "components": {"battery": True},
        },
    )
    config = make_config(tesla={"site_id": "<your energy site id>"})
    result = cli(config, "--write", script="get_site_id.py")
    assert result.code == 2 and "2 Powerwall sites; pick one with --site ID" in result.stderr
    assert "<your energy site id>" in config.read_text()
    chosen = cli(config, "--write", "--site", "1111222233334444", script="get_site_id.py")
    assert chosen.code == 0
    assert "site_id = 1111222233334444\n" in config.read_text()


def test_site_lookup_with_a_bad_token_names_the_key(
    tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    result = cli(make_config(tesla={"api_key": "nope"}), script="get_site_id.py")
    assert result.code == 2 and "[tesla] api_key" in result.stderr and "nope" not in result.stderr


def test_set_ini_value_keeps_comments_and_other_keys() -> None:
    text = "# top\n[octopus]\napi_key = k ; not a comment\n\n[tesla]\n# the site\napi_key = t\n[mqtt]\nhost = h"
    assert set_ini_value(text, "tesla", "site_id", "42") == (
        "# top\n[octopus]\napi_key = k ; not a comment\n\n[tesla]\n# the site\napi_key = t\nsite_id = 42\n"
        "[mqtt]\nhost = h"
    )
    assert set_ini_value("[tesla]\nsite_id = 1\n", "tesla", "site_id", "2") == "[tesla]\nsite_id = 2\n"
    assert set_ini_value("[octopus]\na = 1", "tesla", "site_id", "3") == "[octopus]\na = 1\n\n[tesla]\nsite_id = 3\n"
    assert set_ini_value("[tesla]\napi_key = t", "tesla", "site_id", "4") == "[tesla]\napi_key = t\nsite_id = 4\n"


# ---- responses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "inner"),
    [
        ({"response": {"code": 201, "message": "Updated"}}, {"code": 201, "message": "Updated"}),
        ({"Message": "Updated", "Code": 201}, {"Message": "Updated", "Code": 201}),  # Teslemetry's own case
        ({"response": {"Code": 201, "Message": "Updated"}}, {"Code": 201, "Message": "Updated"}),
        ({"response": {"reason": "", "result": True}}, {"reason": "", "result": True}),
        ({"response": {"code": 200, "message": "Updated"}}, {"code": 200, "message": "Updated"}),
        ({"response": [{"energy_site_id": 1}]}, [{"energy_site_id": 1}]),
    ],
)
def test_success_bodies_give_their_response(body: dict[str, Any], inner: Any) -> None:
    assert check_tesla_body(body) == inner


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"response": None, "error": "invalid_resource", "error_description": "bad"}, "invalid_resource bad"),
        ({"response": {"code": 400, "message": "Must provide either a valid TOU setting"}}, "code 400: Must provide"),
        ({"Code": 500, "Message": "boom"}, "code 500: boom"),
        ({"ERROR": "not_found"}, "not_found"),
        ([], "not a JSON object"),
    ],
)
def test_failure_bodies(body: Any, message: str) -> None:
    with pytest.raises(BadResponse, match=message):
        check_tesla_body(body)


# ---- verification and drift ----------------------------------------------------------------


def test_post_is_read_back_and_capitalised_success_accepted(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    tessie.capitalised_success = True
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    # The site's own tariff is read once, before the first post (for --restore); then the post.
    # Tesla's read-back lags a post by minutes: it is checked 5 minutes later, not in the same run.
    assert [r["method"] for r in tessie.requests] == ["GET", "POST"]
    for minute in range(1, 5):
        assert cli(config, "--at", at(minute)).code == 0
    assert [r["method"] for r in tessie.requests] == ["GET", "POST"]
    assert cli(config, "--at", at(5)).code == 0
    assert [r["method"] for r in tessie.requests] == ["GET", "POST", "GET"]
    assert cli(config, "--at", at(6)).code == 0
    assert len(tessie.requests) == 3  # verified: nothing more until the hourly check


def test_app_edit_is_repaired_within_the_hour_with_one_extra_read(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", at(0)).code == 0
    ours = tessie.posted[-1]["tou_settings"]["tariff_content_v2"]
    # Someone changes the rate plan in the Tesla app.
    edited = json.loads(json.dumps(ours))
    edited["energy_charges"]["Summer"]["rates"]["ON_PEAK"] = 0.99
    tessie.live_tariff = edited
    tessie.clear_log()
    repaired_at = None
    for minute in range(1, 62):
        assert cli(config, "--at", at(minutes=minute)).code == 0
        live = tessie.live_tariff
        if repaired_at is None and live is not None and price_grid(live) == price_grid(ours):
            repaired_at = minute
    assert repaired_at is not None and repaired_at <= 60
    assert reads(tessie) == 2  # the hourly check, and the read-back after the repair post
    assert len(tessie.posted) == 2
    log = Path(str(config) + ".log").read_text()
    assert "live tariff differs from the one we posted (first at Mon 05:30: ours ('ON_PEAK', 0.3, 0.15), " in log


def test_post_that_does_not_stick_is_posted_again_with_back_off(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    tessie.inject("post", "swallow", times=2)  # Tesla says OK but keeps the old tariff, twice
    post_minutes = []
    for minute in range(40):
        before = len(tessie.posted)
        assert cli(config, "--at", at(minute)).code == 0
        if len(tessie.posted) > before:
            post_minutes.append(minute)
    # Read back 5 minutes after each post; a mismatch reposts 5, then 15 minutes later; the third sticks.
    assert post_minutes == [0, 10, 30]
    assert tessie.live_tariff == tessie.posted[-1]["tou_settings"]["tariff_content_v2"]
    log = Path(str(config) + ".log").read_text()
    assert "(no tariff could be read back); posting ours again in 5 minutes" in log
    assert "posting ours again in 15 minutes" in log


@pytest.mark.parametrize(
    ("fault", "status", "code", "logged"),
    [
        ("http", 401, 2, "[tesla] api_key"),
        ("http", 429, 1, "rate limited (HTTP 429)"),
        ("http", 500, 1, "Tesla: HTTP 500"),
        ("http", 503, 1, "Tesla: HTTP 503"),
        ("hang", 0, 1, "Tesla: no answer within 1 s"),
        ("error_body", 0, 1, "Couldn't update config syncer"),
    ],
)
def test_tesla_failures(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    fault: str,
    status: int,
    code: int,
    logged: str,
) -> None:
    config = make_config()
    tessie.inject("post", fault, status=status, times=5)
    started = time.monotonic()
    result = cli(config, "--at", AT)
    assert time.monotonic() - started < 10
    assert result.code == code, result.log
    assert logged in result.log
    assert TESSIE_TOKEN not in result.log
    assert tessie.live_tariff is None
    state = read_state(config)
    assert "posted_hash" not in state.get("tesla", {})
    assert "backoff" not in state  # a Tesla failure never stops the Octopus polling


def test_unknown_site_is_a_config_error(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    result = cli(make_config(tesla={"site_id": "1234"}), "--at", AT)
    assert result.code == 2 and "[tesla] site_id" in result.log


def test_base_url_with_trailing_slash(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    # Teslemetry and the Fleet API differ from Tessie only in this URL and the token.
    assert cli(make_config(tesla={"api_base_url": tessie.url + "/"}), "--at", AT).code == 0
    assert tessie.requests[1]["path"] == f"/api/1/energy_sites/{SITE_ID}/time_of_use_settings"


def test_invalid_tariff_is_logged_and_never_posted(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_build = decision.build_tariff  # type: ignore[attr-defined]  # the name decide() looks up

    def broken(inputs: Any) -> Any:
        plan, tariff = real_build(inputs)
        tariff["seasons"]["Summer"]["tou_periods"]["ON_PEAK"]["periods"].pop()
        return plan, tariff

    monkeypatch.setattr(decision, "build_tariff", broken)
    config = load_config(make_config())
    code = scheduler.run(config, scheduler.Options(), START)
    assert code == 1
    assert tessie.requests == []
    assert "Built an invalid tariff (a bug, nothing posted)" in caplog.text and "uncovered" in caplog.text
