"""Tesla Fleet API tokens: refreshed before expiry and once on a 401, the rotated refresh token kept."""

from __future__ import annotations

import stat
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from conftest import AT, Result, read_state
from fakes import FLEET_CLIENT_ID, FLEET_REFRESH_TOKEN, FakeKraken, FakeTessie

START = datetime.fromisoformat(AT)


def at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def fleet(tessie: FakeTessie, refresh_token: str = FLEET_REFRESH_TOKEN) -> dict[str, str]:
    return {
        "api_key": "",
        "refresh_token": refresh_token,
        "client_id": FLEET_CLIENT_ID,
        "token_url": tessie.token_url,
    }


def oauth_calls(tessie: FakeTessie) -> int:
    return sum(r["operations"] == ["oauth"] for r in tessie.requests)


def test_refreshes_before_expiry_and_keeps_each_rotated_token(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(tesla=fleet(tessie))
    first = cli(config, "--at", AT, "--debug")
    assert first.code == 0, first.log
    assert len(tessie.posted) == 1
    auth = read_state(config)["tesla_auth"]
    assert auth["refresh_token"] == "NA_fleet-refresh-0001"  # the rotated one, saved
    assert stat.S_IMODE(Path(str(config) + ".state.json").stat().st_mode) == 0o600
    tessie.clear_log()
    assert cli(config, "--at", at(1)).code == 0
    assert oauth_calls(tessie) == 0  # the access token is reused for its lifetime
    later = cli(config, "--at", at(8 * 60 - 4), "--force", "--debug")  # 4 minutes before it expires
    assert later.code == 0, later.log
    assert tessie.refresh_log == [FLEET_REFRESH_TOKEN, "NA_fleet-refresh-0001"]
    assert read_state(config)["tesla_auth"]["refresh_token"] == "NA_fleet-refresh-0002"
    secrets = [FLEET_REFRESH_TOKEN, *tessie.refresh_tokens, *tessie.refresh_log, *tessie.access_tokens]
    for result in (first, later):
        for text in (result.stdout, result.stderr, result.log):
            assert not any(secret in text for secret in secrets)
    assert "Tesla access token renewed" in later.log


def test_a_refused_access_token_is_renewed_once(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(tesla=fleet(tessie))
    assert cli(config, "--at", AT).code == 0
    tessie.revoke_access_tokens()  # e.g. the user signed out everywhere
    tessie.clear_log()
    result = cli(config, "--at", at(1), "--force")
    assert result.code == 0, result.log
    assert oauth_calls(tessie) == 1 and len(tessie.posted) == 2


def test_the_new_refresh_token_survives_a_failed_post(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(tesla=fleet(tessie))
    tessie.inject("post", "http", status=500, times=2)
    assert cli(config, "--at", AT).code == 1
    assert read_state(config)["tesla_auth"]["refresh_token"] == "NA_fleet-refresh-0001"
    assert cli(config, "--at", at(1)).code == 0  # the old refresh token is dead; the saved one is not needed yet
    assert tessie.refresh_log == [FLEET_REFRESH_TOKEN] and len(tessie.posted) == 1


def test_a_refused_refresh_token_names_the_key(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(tesla=fleet(tessie, "NA_fleet-refresh-revoked"))
    result = cli(config, "--at", AT)
    assert result.code == 2
    assert "check [tesla] refresh_token" in result.log and "sign in again" in result.log
    assert "NA_fleet-refresh-revoked" not in result.log and tessie.posted == []


def test_a_refresh_token_pasted_into_the_config_starts_a_new_chain(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(tesla=fleet(tessie))
    assert cli(config, "--at", AT).code == 0
    tessie.refresh_tokens.add("NA_fleet-refresh-from-the-app")
    make_config(tesla=fleet(tessie, "NA_fleet-refresh-from-the-app"))  # the user signed in again
    assert cli(config, "--at", at(1), "--force").code == 0  # the next Tesla request starts from it
    assert tessie.refresh_log == [FLEET_REFRESH_TOKEN, "NA_fleet-refresh-from-the-app"]


def test_site_id_helper_uses_and_keeps_the_rotated_token(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(tesla=fleet(tessie))
    listed = cli(config, script="get_site_id.py")
    assert listed.code == 0, listed.stderr
    assert "2252357221831636" in listed.stdout
    assert read_state(config)["tesla_auth"]["refresh_token"] == "NA_fleet-refresh-0001"


def test_the_rotated_token_is_saved_before_the_new_access_token_is_used(tessie: FakeTessie) -> None:
    """If the run dies right after a refresh, the state already holds the only working refresh token."""
    import requests

    from iops.core.settings import TeslaConfig
    from iops.services.tesla import FleetTokens

    config = TeslaConfig(
        api_key="",
        site_id="1",
        api_base_url=tessie.url,
        verify_hours=1,
        refresh_token=FLEET_REFRESH_TOKEN,
        client_id=FLEET_CLIENT_ID,
        token_url=tessie.token_url,
    )
    memory: dict[str, object] = {}
    saved: list[dict[str, object]] = []
    with requests.Session() as session:
        tokens = FleetTokens(session, config, memory, lambda: saved.append(dict(memory)), clock=lambda: 0, timeout=2)
        access = tokens()
    assert len(saved) == 1
    assert saved[0]["refresh_token"] == "NA_fleet-refresh-0001" and saved[0]["access_token"] == access
