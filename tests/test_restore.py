"""The user's own tariff: kept before the first post, put back by --restore; --resume; --status."""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from conftest import AT, Result
from fakes import SITE_ID, TESSIE_TOKEN, FakeKraken, FakeTessie, readback_form

from iops.core.tariff import Rates, TariffInputs, build_tariff, price_grid

START = datetime.fromisoformat(AT)


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def users_own_tariff() -> dict[str, Any]:
    """A flat-rate plan the user had chosen in the Tesla app before installing the scheduler."""
    _, tariff = build_tariff(
        TariffInputs(
            now=START,
            time_zone="Europe/London",
            off_peak_start=time(0, 0),
            off_peak_end=time(0, 0),
            rates=Rates(0.245, 0.245, 0.12, 0.12),
            name="Octopus Flexible",
        )
    )
    tariff["code"] = "OCTOPUS-FLEX"  # the user's own plan, not the scheduler's (whose code is IOPS:IOG)
    return tariff


def live_grid(tessie: FakeTessie) -> Any:
    assert tessie.live_tariff is not None
    return price_grid(tessie.live_tariff)


def kept_in_store(config: Path) -> dict[str, Any]:
    """The durable records, read with plain sqlite3 (as a user could, with the sqlite3 command)."""
    with sqlite3.connect(str(config) + ".db") as db:
        own = {
            row[0]: (json.loads(row[1]) if row[1] else None, row[2])
            for row in db.execute("SELECT site_id, tariff, note FROM own_tariff")
        }
        pause = db.execute("SELECT since, why, put_back FROM pause").fetchone()
    return {"own": own, "pause": pause}


def test_restore_puts_back_the_users_tariff_and_pauses_until_resume(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    own = users_own_tariff()
    tessie.live_tariff = own
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    assert kept_in_store(config)["own"][SITE_ID][0] == readback_form(own)  # kept before our post
    assert stat.S_IMODE(Path(str(config) + ".db").stat().st_mode) == 0o600
    assert live_grid(tessie) != price_grid(own)
    restored = cli(config, "--restore", "--at", at(5))
    assert restored.code == 0, restored.stderr
    assert "Put back Octopus Flexible on site 2252357221831636" in restored.stdout
    assert live_grid(tessie) == price_grid(own)
    kraken.clear_log()
    tessie.clear_log()
    assert cli(config, "--at", at(6)).code == 0  # paused: a cron run does nothing
    assert kraken.requests == [] and tessie.requests == []
    status = cli(config, "--status", "--at", at(7))
    assert status.code == 0 and "Paused:       since 2026-11-24 12:05 UTC" in status.stdout
    resumed = cli(config, "--resume", "--at", at(8))
    assert resumed.code == 0 and "Resumed" in resumed.stdout
    assert cli(config, "--at", at(9)).code == 0
    assert live_grid(tessie) != price_grid(own) and len(tessie.posted) == 3  # ours, theirs, ours again
    assert kept_in_store(config)["own"][SITE_ID][0] == readback_form(own)  # still theirs, not ours


def test_restore_within_the_post_spacing_pauses_at_once_and_puts_back_at_the_first_allowed_run(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    own = users_own_tariff()
    tessie.live_tariff = own
    config = make_config()
    assert cli(config, "--at", AT).code == 0 and len(tessie.posted) == 1
    restored = cli(config, "--restore", "--at", at(1))
    assert restored.code == 0, restored.stderr
    assert "Paused" in restored.stdout and "not before 12:04 UTC" in restored.stdout
    assert len(tessie.posted) == 1  # Tesla takes one change per 4 minutes: not yet
    assert kept_in_store(config)["pause"][2] == 1  # paused, the put-back pending
    for minute in (2, 3):
        tessie.clear_log()
        assert cli(config, "--at", at(minute)).code == 0
        assert tessie.requests == []
    status = cli(config, "--status", "--at", at(3))
    assert "your own tariff waits to go back" in status.stdout
    assert cli(config, "--at", at(4)).code == 0
    assert len(tessie.posted) == 2 and live_grid(tessie) == price_grid(own)
    assert kept_in_store(config)["pause"][2] == 0
    tessie.clear_log()
    assert cli(config, "--at", at(9)).code == 0  # paused: nothing more
    assert tessie.requests == []


def test_restore_with_nothing_kept_says_why(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    never_posted = cli(config, "--restore", "--at", AT)
    assert never_posted.code == 2 and "the scheduler has not posted to it" in never_posted.stderr
    assert cli(config, "--at", AT).code == 0  # the site had no tariff before ours
    no_tariff = cli(config, "--restore", "--at", at(5))
    assert no_tariff.code == 2 and "had no tariff before" in no_tariff.stderr
    assert len(tessie.posted) == 1 and kept_in_store(config)["pause"] is None


def test_our_own_tariff_found_live_is_never_kept_as_the_users(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """D3: a state lost after our first post must not make our tariff "the user's own"."""
    ours = users_own_tariff()
    ours["code"] = "IOPS:IOG"  # what a site shows once the scheduler has posted to it
    tessie.live_tariff = ours
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    assert kept_in_store(config)["own"][SITE_ID] == (
        None,
        "the site already had the scheduler's tariff when first seen",
    )
    refused = cli(config, "--restore", "--at", at(5))
    assert refused.code == 2 and "already had the scheduler's tariff" in refused.stderr
    assert len(tessie.posted) == 1


def test_restore_with_an_unwritable_state_posts_nothing_and_pauses_nothing(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """D18: the pause is recorded before the post, and the cache proven writable before both."""
    tessie.live_tariff = users_own_tariff()
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    state = Path(str(config) + ".state.json")
    state.unlink()
    state.mkdir()  # the cache cannot be written
    result = cli(config, "--restore", "--at", at(5))
    assert result.code == 1 and "Cannot write the state file" in result.stderr
    assert len(tessie.posted) == 1 and kept_in_store(config)["pause"] is None


def test_status_tells_a_cron_user_what_is_failing(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    fine = cli(config, "--status", "--at", at(1))
    assert fine.code == 0
    assert "Last run:     2026-11-24 12:00 UTC (1 minute ago)" in fine.stdout
    assert "Last post:    2026-11-24 12:00 UTC (1 minute ago), tariff " in fine.stdout
    assert "Failing:      no" in fine.stdout
    kraken.inject("flexPlannedDispatches", "http", status=500, times=10)
    assert cli(config, "--at", at(3)).code == 1
    assert cli(config, "--at", at(6)).code == 1
    failing = cli(config, "--status", "--at", at(7))
    assert failing.code == 1
    assert "Failing:      since 2026-11-24 12:03 UTC (4 minutes ago), 2 run(s): Octopus: HTTP 500" in failing.stdout
    assert "Last success: 2026-11-24 12:00 UTC" in failing.stdout


def test_the_users_tariff_is_kept_at_once_and_never_overwritten(tessie: FakeTessie, tmp_path: Path) -> None:
    """Kept and committed before the post: if the run died after posting, the user's tariff would be gone."""
    import requests

    from iops.app.apply import keep_own_tariff
    from iops.app.cache import State
    from iops.app.records import Records
    from iops.services.tesla import TeslaSite

    own = users_own_tariff()
    tessie.live_tariff = own
    config = tmp_path / "config.txt"
    with requests.Session() as session, Records(Path(str(config) + ".db"), State()) as records:
        tesla = TeslaSite(session, tessie.url, TESSIE_TOKEN, timeout=2)
        keep_own_tariff(records, SITE_ID, tesla, START)
        assert kept_in_store(config)["own"][SITE_ID][0] == readback_form(own)  # committed, before any post
        tessie.live_tariff = users_own_tariff() | {"name": "Ours by now"}
        keep_own_tariff(records, SITE_ID, tesla, START)  # kept once: never overwritten
    assert kept_in_store(config)["own"][SITE_ID][0] == readback_form(own)
