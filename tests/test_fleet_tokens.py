"""Tesla Fleet API tokens: refreshed before expiry and once on a 401, the rotated refresh token kept."""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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


def chain(config: Path) -> dict[str, Any]:
    """The token chain in the durable records, read with plain sqlite3."""
    with sqlite3.connect(str(config) + ".db") as db:
        row = db.execute("SELECT seed, refresh_token, access_token, expires_at FROM fleet_chain").fetchone()
    return dict(zip(("seed", "refresh_token", "access_token", "expires_at"), row, strict=True)) if row else {}


def oauth_calls(tessie: FakeTessie) -> int:
    return sum(r["operations"] == ["oauth"] for r in tessie.requests)


def test_refreshes_before_expiry_and_keeps_each_rotated_token(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(tesla=fleet(tessie))
    first = cli(config, "--at", AT, "--debug")
    assert first.code == 0, first.log
    assert len(tessie.posted) == 1
    assert chain(config)["refresh_token"] == "NA_fleet-refresh-0001"  # the rotated one, kept
    assert stat.S_IMODE(Path(str(config) + ".db").stat().st_mode) == 0o600
    assert "tesla_auth" not in read_state(config)  # the cache holds no part of the chain
    tessie.clear_log()
    assert cli(config, "--at", at(1)).code == 0
    assert oauth_calls(tessie) == 0  # the access token is reused for its lifetime
    later = cli(config, "--at", at(8 * 60 - 4), "--force", "--debug")  # 4 minutes before it expires
    assert later.code == 0, later.log
    assert tessie.refresh_log == [FLEET_REFRESH_TOKEN, "NA_fleet-refresh-0001"]
    assert chain(config)["refresh_token"] == "NA_fleet-refresh-0002"
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
    assert chain(config)["refresh_token"] == "NA_fleet-refresh-0001"
    assert cli(config, "--at", at(5)).code == 0  # the old refresh token is dead; the saved one is not needed yet
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
    tessie.revoke_access_tokens()  # the user signed out everywhere, then in again:
    make_config(tesla=fleet(tessie, "NA_fleet-refresh-from-the-app"))  # ...and pasted the new token
    assert cli(config, "--at", at(5), "--force").code == 0  # the next renewal starts from it
    assert tessie.refresh_log == [FLEET_REFRESH_TOKEN, "NA_fleet-refresh-from-the-app"]


def test_site_id_helper_uses_and_keeps_the_rotated_token(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(tesla=fleet(tessie))
    listed = cli(config, script="get_site_id.py")
    assert listed.code == 0, listed.stderr
    assert "2252357221831636" in listed.stdout
    assert chain(config)["refresh_token"] == "NA_fleet-refresh-0001"


class Keeper:
    """A ChainKeeper that records what it was asked to keep."""

    def __init__(self, ready: bool = True) -> None:
        self.kept: list[Any] = []
        self.is_ready = ready

    def ready(self) -> None:
        if not self.is_ready:
            raise OSError("read-only")

    def keep(self, chain: Any) -> None:
        self.kept.append(chain)


def fleet_config(tessie: FakeTessie, refresh_token: str = FLEET_REFRESH_TOKEN) -> Any:
    from iops.core.settings import TeslaConfig

    return TeslaConfig(
        api_key="",
        site_id="1",
        api_base_url=tessie.url,
        verify_hours=1,
        refresh_token=refresh_token,
        client_id=FLEET_CLIENT_ID,
        token_url=tessie.token_url,
    )


def test_the_rotated_token_is_kept_before_anything_else_can_fail(tessie: FakeTessie) -> None:
    """D1: the rotated refresh token is kept at once, even when the answer's access token is unusable."""
    import pytest
    import requests

    from iops.core.errors import BadResponse
    from iops.services.tesla import FleetTokens

    keeper = Keeper()
    tessie.odd_access_token = True
    with requests.Session() as session:
        tokens = FleetTokens(session, fleet_config(tessie), None, keeper, clock=lambda: 0, timeout=2)
        with pytest.raises(BadResponse):
            tokens()
    assert [k.refresh_token for k in keeper.kept] == ["NA_fleet-refresh-0001"]
    assert tokens.chain.refresh_token == "NA_fleet-refresh-0001"


def test_no_rotation_is_asked_for_when_the_chain_could_not_be_kept(tessie: FakeTessie) -> None:
    """D1: the keeper must be ready before Tesla is asked to rotate (and spend) the refresh token."""
    import pytest
    import requests

    from iops.services.tesla import FleetTokens

    with requests.Session() as session:
        tokens = FleetTokens(session, fleet_config(tessie), None, Keeper(ready=False), clock=lambda: 0, timeout=2)
        with pytest.raises(OSError):
            tokens()
    assert tessie.refresh_log == []  # the old token is not spent


def test_an_unwritable_store_stops_the_run_before_any_rotation(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(tesla=fleet(tessie))
    Path(str(config) + ".db").mkdir()  # the durable records cannot be used
    result = cli(config, "--at", AT)
    assert result.code == 1 and "Cannot read the durable records" in result.log
    assert tessie.refresh_log == [] and tessie.posted == []
    assert Path(str(config) + ".db").is_dir()  # left as it is


def test_a_good_refresh_token_with_an_odd_access_token_is_kept(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """D1, end to end: the next run carries on from the rotated token, with no new sign-in."""
    config = make_config(tesla=fleet(tessie))
    tessie.odd_access_token = True
    assert cli(config, "--at", AT).code == 1
    assert chain(config)["refresh_token"] == "NA_fleet-refresh-0001"
    tessie.odd_access_token = False
    result = cli(config, "--at", at(1))
    assert result.code == 0, result.log
    assert tessie.refresh_log == [FLEET_REFRESH_TOKEN, "NA_fleet-refresh-0001"] and len(tessie.posted) == 1


def test_a_token_exported_for_one_run_never_wipes_the_saved_chain(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """D2: a different token for one run (a typo, an old export) is tried; refused, the chain stands."""
    config = make_config(tesla=fleet(tessie))
    assert cli(config, "--at", AT).code == 0
    tessie.revoke_access_tokens()  # so that the next run must renew
    typo = cli(config, "--at", at(5), "--force", env={"TESLA_REFRESH_TOKEN": "NA_fleet-refresh-typo"})
    assert typo.code == 0, typo.log
    assert "refused the refresh_token in the config" in typo.log and "NA_fleet-refresh-typo" not in typo.log
    assert tessie.refresh_log == [FLEET_REFRESH_TOKEN, "NA_fleet-refresh-typo", "NA_fleet-refresh-0001"]
    assert chain(config)["refresh_token"] == "NA_fleet-refresh-0003"  # the chain carried on
    tessie.revoke_access_tokens()
    assert cli(config, "--at", at(10), "--force").code == 0  # and the next ordinary run carries on from it
    assert tessie.refresh_log[-1] == "NA_fleet-refresh-0003"


def test_an_unknown_client_id_names_client_id(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """D16: invalid_client is about [tesla] client_id, not the refresh token."""
    config = make_config(tesla={**fleet(tessie), "client_id": "someone-elses-app"})
    result = cli(config, "--at", AT)
    assert result.code == 2 and "check [tesla] client_id" in result.log
    assert "[tesla] refresh_token" not in result.log


def test_a_chain_kept_by_version_1_1_moves_into_the_durable_records(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """Upgrading keeps the chain (no new sign-in) and takes it out of the cache."""
    from iops.services.tesla import _fingerprint

    config = make_config(tesla=fleet(tessie))
    tessie.refresh_tokens = {"NA_fleet-refresh-kept-by-1.1"}
    legacy = {"seed": _fingerprint(FLEET_REFRESH_TOKEN), "refresh_token": "NA_fleet-refresh-kept-by-1.1"}
    Path(str(config) + ".state.json").write_text(json.dumps({"tesla_auth": legacy}))
    result = cli(config, "--at", AT)
    assert result.code == 0, result.log
    assert tessie.refresh_log == ["NA_fleet-refresh-kept-by-1.1"]
    assert "tesla_auth" not in read_state(config)
    assert chain(config)["refresh_token"] == "NA_fleet-refresh-0001"  # rotated from the moved one
