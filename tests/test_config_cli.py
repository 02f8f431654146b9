"""Config problems and first-run behaviour, through the real command line."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

from conftest import ROOT, Result


def test_missing_config_writes_private_template_and_exits_2(tmp_path: Path, cli: Callable[..., Result]) -> None:
    path = tmp_path / "config.txt"
    result = cli(path, fresh=True)
    assert result.code == 2
    assert path.read_text() == (ROOT / "config.txt.example").read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in result.stderr and "[octopus]" in result.stderr


def test_default_config_path_is_config_txt_in_working_directory(tmp_path: Path, cli: Callable[..., Result]) -> None:
    result = cli(cwd=tmp_path)
    assert result.code == 2
    assert (tmp_path / "config.txt").exists()


def test_template_run_lists_every_problem_with_file_and_key(tmp_path: Path, cli: Callable[..., Result]) -> None:
    path = tmp_path / "config.txt"
    cli(path)
    text = (
        path.read_text()
        .replace("import_peak = 0.30", "import_peak = lots")
        .replace("off_peak_start = 23:30", "off_peak_start = 23:15")
        .replace("time_zone = Europe/London", "time_zone = Mars/Base")
    )
    path.write_text(text)
    result = cli(path)
    assert result.code == 2
    for key in (
        "[octopus] api_key",
        "[octopus] account_number",
        "[tesla] api_key",
        "[tesla] site_id",
        "[tariff] import_peak",
        "[tariff] off_peak_start",
        "[tariff] time_zone",
    ):
        assert f"{path}: {key}" in result.stderr, key
    assert "'lots' is not a number" in result.stderr
    assert result.stdout == ""


def test_dry_run_needs_no_tesla_credentials(tmp_path: Path, cli: Callable[..., Result]) -> None:
    path = tmp_path / "config.txt"
    cli(path)
    result = cli(path, "--dry-run")
    assert result.code == 2
    assert "[tesla]" not in result.stderr and "[octopus] api_key" in result.stderr


def test_sample_run_needs_nothing_and_shows_the_schedule(tmp_path: Path, cli: Callable[..., Result]) -> None:
    result = cli("--sample", cwd=tmp_path, fresh=True)  # a real process, as the README runs it
    assert result.code == 0, result.stderr
    assert "Tue 14:00 - 15:00  . off-peak" in result.stdout
    assert "\n  12    15    18    21    00    03    06    09\n  ####..#####!!####" in result.stdout
    assert "Tue 17:30 - 18:30  ! saving session (Power Down)  buy £2.5500" in result.stdout
    assert "Wed 11:00 - 12:00  0 free (Power Up)" in result.stdout
    assert "Wed 09:30 - 10:00  . off-peak" in result.stdout  # 09:37-09:49 rounded out
    assert list(tmp_path.iterdir()) == []  # writes nothing


def test_sample_dry_run_prints_a_valid_body(tmp_path: Path, cli: Callable[..., Result]) -> None:
    from iops.core import tariff

    result = cli("--sample", "--dry-run", cwd=tmp_path)
    assert result.code == 0
    body = json.loads(result.stdout)
    assert tariff.validate_tariff(body["tou_settings"]["tariff_content_v2"]) == []
    assert "Schedule for the next 24 hours" in result.stderr


def test_bad_at_value_is_rejected(tmp_path: Path, cli: Callable[..., Result]) -> None:
    result = cli("--sample", "--at", "2026-11-24T12:00", cwd=tmp_path)
    assert result.code == 2
    assert "needs a UTC offset" in result.stderr
