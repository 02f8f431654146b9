"""The typed state: one loader decodes every section into its owner's frozen type, checks each field,
and bounds times by the clock; one writer saves it."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from iops.app import cache
from iops.app.failures import Failure
from iops.app.gather import DispatchMemory
from iops.app.notes import Notes
from iops.app.publish import DiscoverySent, MqttMemory
from iops.core.call_policy import OctopusCalls, TeslaCalls
from iops.services.kraken_cache import CachedList, CachedObject, KrakenCache

NOW = 1_795_521_600.0  # 2026-11-24 12:00 UTC


def load(tmp_path: Path, data: Any, now: float = NOW) -> cache.State:
    path = tmp_path / "config.txt.state.json"
    path.write_text(json.dumps(data))
    return cache.load(path, now)


def test_fields_of_the_wrong_type_fall_back_one_by_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = load(
        tmp_path,
        {
            "octopus_calls": {
                "polled_at": "yesterday",
                "requests": [1, "x"],
                "backoff_until": 1e12,
                "smart_control": 1,
            },
            "tesla": {"posted_hash": "abc", "posted_at": 5.0, "verify_at": [], "posted_tariff": "not a tariff"},
        },
    )
    with caplog.at_level(logging.WARNING):
        assert state.get(OctopusCalls) == OctopusCalls()
        tesla = state.get(TeslaCalls)
        state.get(TeslaCalls)  # decoded once, warned once
    assert (tesla.posted_hash, tesla.posted_at, tesla.verify_at, tesla.posted_tariff) == ("abc", 5.0, 0.0, None)
    assert caplog.text.count("unusable value") == 6
    assert "dropped octopus_calls.polled_at: unusable value" in caplog.text


def test_a_section_of_the_wrong_type_or_a_damaged_file_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert load(tmp_path, {"octopus": ["a list"]}).get(KrakenCache) == KrakenCache()
        assert load(tmp_path, {"surprise": {}}).raw == {}
        path = tmp_path / "damaged.state.json"
        path.write_text('{"tesla": {"posted_hash": "ab')  # truncated
        assert cache.load(path, NOW).get(TeslaCalls) == TeslaCalls()
        path.write_bytes(b"{" * 200_000)  # deep enough to exhaust the parser
        assert cache.load(path, NOW).raw == {}
    assert "dropped section 'octopus' (of an unexpected type)" in caplog.text
    assert "dropped section 'surprise' (unknown)" in caplog.text
    assert caplog.text.count("is damaged") == 2


@pytest.mark.parametrize(
    ("section", "raw", "read", "expected"),
    [
        # D4: a moment recorded as past, yet in the future (clock stepped back, --at ahead): now.
        (OctopusCalls, {"polled_at": NOW + 30 * 86400}, lambda s: s.polled_at, NOW),
        (OctopusCalls, {"requests": [NOW - 60, NOW + 3600]}, lambda s: s.requests, (NOW - 60, NOW)),
        (TeslaCalls, {"posted_at": NOW + 7200}, lambda s: s.posted_at, NOW),
        (TeslaCalls, {"verified_at": NOW + 86400}, lambda s: s.verified_at, NOW),
        # A scheduled moment further ahead than its owner ever waits is not ours: now too.
        (OctopusCalls, {"backoff_until": NOW + 30 * 86400}, lambda s: s.backoff_until, NOW),
        (OctopusCalls, {"backoff_until": NOW + 1200}, lambda s: s.backoff_until, NOW + 1200),  # within: kept
        (TeslaCalls, {"backoff_until": NOW + 30 * 86400}, lambda s: s.backoff_until, NOW),
        (TeslaCalls, {"verify_at": NOW + 86400}, lambda s: s.verify_at, NOW),
        (TeslaCalls, {"repost_at": NOW + 86400}, lambda s: s.repost_at, NOW),
        (KrakenCache, {"token": "t", "token_expires": NOW + 30 * 86400}, lambda s: s.token_expires, NOW),
        (KrakenCache, {"token": "t", "token_expires": NOW + 1800}, lambda s: s.token_expires, NOW + 1800),
        (KrakenCache, {"devices": {"at": NOW + 3600, "value": ["d"]}}, lambda s: s.devices, CachedList(NOW, ("d",))),
        (Failure, {"since": NOW + 10, "logged": NOW + 10, "runs": 3}, lambda s: (s.since, s.logged), (NOW, NOW)),
        (MqttMemory, {"discovery": {"digest": "d", "at": NOW + 86400}}, lambda s: s.discovery.at, NOW),
        # A started half-hour still to come is not believed (it would make a future half-hour cheap).
        (DispatchMemory, {"started": {"car": ["2026-11-25T12:00:00+00:00"]}}, lambda s: s.started, {}),
    ],
)
def test_times_in_the_state_are_bounded_by_the_clock(
    tmp_path: Path, section: type[Any], raw: dict[str, Any], read: Any, expected: Any
) -> None:
    key = next(k for k, owner in cache.SECTIONS.items() if owner.endswith(":" + section.__name__))
    assert read(load(tmp_path, {key: raw}).get(section)) == expected


def test_a_corrected_section_is_written_back_so_the_next_run_is_clean(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A future polled_at taken as now must be saved as now: else each run would take it as its own
    now, never poll again, and the scheduler would freeze for as long as it lay ahead (D4)."""
    path = tmp_path / "config.txt.state.json"
    path.write_text(json.dumps({"octopus_calls": {"polled_at": NOW + 86400, "smart_control": "yes"}}))
    state = cache.load(path, NOW)
    loaded = cache.dumps(state)
    assert state.get(OctopusCalls).polled_at == NOW
    assert cache.dumps(state) != loaded  # the run sees a change, and saves it
    cache.save(path, state)
    later = cache.load(path, NOW + 600)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert later.get(OctopusCalls).polled_at == NOW  # now in the past: the next poll is due
    assert "unusable" not in caplog.text and "in the future" not in caplog.text


def test_a_quiet_state_writes_nothing_new_and_defaults_are_left_out(tmp_path: Path) -> None:
    state = load(tmp_path, {"tesla": {"posted_hash": "abc", "posted_at": NOW - 60}})
    before = cache.dumps(state)
    same = state.put(state.get(TeslaCalls))
    assert same is state and cache.dumps(same) == before
    changed = state.put(dataclasses.replace(state.get(TeslaCalls), posted_hash="def"))
    assert json.loads(cache.dumps(changed))["tesla"] == {"posted_hash": "def", "posted_at": NOW - 60}
    assert "octopus_calls" not in json.loads(cache.dumps(changed.put(OctopusCalls())))


def test_the_state_of_version_1_1_keeps_its_mqtt_memory(tmp_path: Path) -> None:
    state = load(tmp_path, {"mqtt_discovery": "0" * 64, "restored_when_off": True, "mqtt": {"blocks": []}})
    memory = state.get(MqttMemory)
    assert memory.legacy_discovery == "0" * 64 and memory.restored_when_off


finite = st.floats(min_value=0, max_value=NOW, allow_nan=False)
sections = st.one_of(
    st.builds(OctopusCalls, polled_at=finite, requests=st.tuples(finite), smart_control=st.booleans()),
    st.builds(TeslaCalls, site_id=st.text(max_size=8), posted_hash=st.text(max_size=8), posted_at=finite),
    st.builds(
        KrakenCache,
        token=st.text(max_size=8),
        devices=st.none() | st.builds(CachedList, at=finite, value=st.tuples(st.text(max_size=4))),
        auto_rates=st.none() | st.builds(CachedObject, at=finite, value=st.none() | st.just({"a": 1})),
    ),
    st.builds(Failure, reason=st.text(max_size=8), runs=st.integers(0, 10**6), last_success=st.none() | finite),
    st.builds(MqttMemory, discovery=st.none() | st.builds(DiscoverySent, digest=st.text(max_size=4), at=finite)),
    st.builds(Notes, no_agreement=st.booleans(), config_mode=st.none() | st.integers(0, 0o777)),
)


@settings(max_examples=60, deadline=None)
@given(value=sections)
def test_every_section_survives_a_round_trip_through_the_file(value: Any) -> None:
    key = next(k for k, owner in cache.SECTIONS.items() if owner.endswith(":" + type(value).__name__))
    text = cache.dumps(cache.State().put(value))
    raw = json.loads(text)
    assert cache.decode_section(type(value), key, raw.get(key), NOW, "test") == (value, False)


def test_a_quiet_minute_decodes_and_imports_only_what_it_needs(tmp_path: Path) -> None:
    """The loader imports a section's owner on first use: the call policy's, never the dispatch rules'."""
    data = {"octopus": {"token": "t"}, "dispatch": {"started": {}}, "tesla": {"posted_hash": "a"}}
    path = tmp_path / "quiet.state.json"
    path.write_text(json.dumps(data))
    code = (
        "import sys; from iops.app import cache; from iops.core.call_policy import TeslaCalls;"
        f"s = cache.load(__import__('pathlib').Path({str(path)!r}), {NOW}); s.get(TeslaCalls);"
        "print(sorted(m for m in sys.modules if m.startswith('iops')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "iops.core.call_policy" in out
    for heavy in ("iops.core.dispatch_rules", "iops.services.kraken_cache", "iops.app.gather", "iops.core.tariff"):
        assert heavy not in out
