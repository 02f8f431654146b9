"""The user's own tariff: kept before the first post, put back by --restore; --resume; --status."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from conftest import AT, Result, read_state
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
    return tariff


def live_grid(tessie: FakeTessie) -> Any:
    assert tessie.live_tariff is not None
    return price_grid(tessie.live_tariff)


def test_restore_puts_back_the_users_tariff_and_pauses_until_resume(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    own = users_own_tariff()
    tessie.live_tariff = own
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    assert read_state(config)["originals"][SITE_ID]["tariff"] == readback_form(own)  # kept before our post
    assert live_grid(tessie) != price_grid(own)
    restored = cli(config, "--restore", "--at", at(1))
    assert restored.code == 0, restored.stderr
    assert "Put back Octopus Flexible on site 2252357221831636" in restored.stdout
    assert live_grid(tessie) == price_grid(own)
    kraken.clear_log()
    tessie.clear_log()
    assert cli(config, "--at", at(2)).code == 0  # paused: a cron run does nothing
    assert kraken.requests == [] and tessie.requests == []
    status = cli(config, "--status", "--at", at(3))
    assert status.code == 0 and "Paused:       since 2026-11-24 12:01 UTC" in status.stdout
    resumed = cli(config, "--resume", "--at", at(4))
    assert resumed.code == 0 and "Resumed" in resumed.stdout
    assert cli(config, "--at", at(5)).code == 0
    assert live_grid(tessie) != price_grid(own) and len(tessie.posted) == 3  # ours, theirs, ours again
    assert read_state(config)["originals"][SITE_ID]["tariff"] == readback_form(own)  # still theirs, not ours


def test_restore_with_nothing_kept_says_why(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    never_posted = cli(config, "--restore", "--at", AT)
    assert never_posted.code == 2 and "the scheduler has not posted to it" in never_posted.stderr
    assert cli(config, "--at", AT).code == 0  # the site had no tariff before ours
    no_tariff = cli(config, "--restore", "--at", at(1))
    assert no_tariff.code == 2 and "had no tariff before" in no_tariff.stderr
    assert len(tessie.posted) == 1 and "paused" not in read_state(config)


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


def test_the_users_tariff_is_saved_before_the_first_post(tessie: FakeTessie) -> None:
    """Kept and written at once: if the run died after posting, the user's tariff would be gone."""
    import requests

    from iops.app.restore import keep_original
    from iops.services.tesla import TeslaSite

    own = users_own_tariff()
    tessie.live_tariff = own
    state: dict[str, Any] = {}
    saved: list[dict[str, Any]] = []
    with requests.Session() as session:
        tesla = TeslaSite(session, tessie.url, TESSIE_TOKEN, timeout=2)
        keep_original(state, SITE_ID, tesla, START, lambda: saved.append(json.loads(json.dumps(state))))
        keep_original(state, SITE_ID, tesla, START, lambda: saved.append({}))  # kept once: never overwritten
    assert len(saved) == 1 and saved[0]["originals"][SITE_ID]["tariff"] == readback_form(own)
