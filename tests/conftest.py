from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import ACCOUNT, API_KEY, SITE_ID, TESSIE_TOKEN, FakeKraken, FakeTessie  # noqa: E402

# A Tuesday in November (GMT): weekday 1.
AT = "2026-11-24T12:00:00+00:00"


@pytest.fixture
def kraken() -> Iterator[FakeKraken]:
    fake = FakeKraken().start()
    yield fake  # type: ignore[misc]
    fake.stop()


@pytest.fixture
def tessie() -> Iterator[FakeTessie]:
    fake = FakeTessie().start()
    yield fake  # type: ignore[misc]
    fake.stop()


def config_text(kraken: FakeKraken, tessie: FakeTessie, **overrides: dict[str, str]) -> str:
    sections: dict[str, dict[str, str]] = {
        "octopus": {
            "api_key": API_KEY,
            "account_number": ACCOUNT,
            "graphql_url": kraken.graphql_url,
            "backend_graphql_url": kraken.backend_url,
            "rest_url": kraken.rest_url,
        },
        "tesla": {"api_key": TESSIE_TOKEN, "site_id": SITE_ID, "api_base_url": tessie.url},
        "tariff": {"rates": "manual", "import_peak": "0.30", "import_off_peak": "0.07", "export": "0.15"},
        "features": {"free_electricity": "true", "saving_sessions": "true"},
        "mqtt": {"enabled": "false"},
        "debug": {"timeout_seconds": "1"},
    }
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {v}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


def read_state(config: Path) -> dict[str, Any]:
    """The state file the scheduler keeps beside a config."""
    state: dict[str, Any] = json.loads(Path(str(config) + ".state.json").read_text())
    return state


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    log: str

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.stdout)
        return body


@pytest.fixture
def make_config(tmp_path: Path, kraken: FakeKraken, tessie: FakeTessie) -> Callable[..., Path]:
    def make(name: str = "config.txt", **overrides: dict[str, str]) -> Path:
        path = tmp_path / name
        path.write_text(config_text(kraken, tessie, **overrides), encoding="utf-8")
        return path

    return make


def run_cli(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    script: str = "io_powerwall_scheduler.py",
) -> Result:
    """Run a top-level script as cron would: a fresh process, secrets only from ``env``."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("OCTOPUS_API_KEY", "TESLA_API_KEY", "MQTT_PASSWORD")}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
        check=False,
    )
    log = ""
    if args:
        log_path = Path(str(args[0]) + ".log")
        log = log_path.read_text(encoding="utf-8") if log_path.is_file() else ""
    return Result(proc.returncode, proc.stdout, proc.stderr, log)


@pytest.fixture
def cli() -> Callable[..., Result]:
    return run_cli
