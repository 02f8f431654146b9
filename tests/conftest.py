from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import ACCOUNT, API_KEY, SITE_ID, TESSIE_TOKEN, FakeKraken, FakeTessie  # noqa: E402

# A Tuesday in November (GMT): weekday 1.
AT = "2026-11-24T12:00:00+00:00"


def at_clock() -> float:
    """The fakes live at the tests' --at time, not the machine's: token lifetimes then agree with the
    runs' clock whatever day the suite runs on."""
    return datetime.fromisoformat(AT).timestamp()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """-n auto: two workers a core, since many tests spend their time waiting on a socket, the broker
    or a timeout (on 2 cores: 87 s with 2 workers, 68 s with 4, 76 s with 6)."""
    return 2 * (os.cpu_count() or 1)


@pytest.fixture
def kraken() -> Iterator[FakeKraken]:
    fake = FakeKraken()
    fake.clock = at_clock
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def tessie() -> Iterator[FakeTessie]:
    fake = FakeTessie()
    fake.clock = at_clock
    fake.start()
    yield fake
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
        path.chmod(0o600)  # as the template is written: it holds keys
        return path

    return make


SECRET_VARIABLES = ("OCTOPUS_API_KEY", "TESLA_API_KEY", "TESLA_REFRESH_TOKEN", "MQTT_PASSWORD")


def run_cli(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    script: str = "io_powerwall_scheduler.py",
    fresh: bool = False,
) -> Result:
    """Run a top-level script as cron would, secrets only from ``env``.

    In this process by default (a fresh interpreter costs ~0.3 s a run, most of the suite's time);
    ``fresh=True`` starts a real process, for tests about the process itself.
    """
    argv = [str(a) for a in args]
    if fresh:
        full_env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, str(ROOT / script), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            check=False,
        )
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    else:
        code, stdout, stderr = _run_in_process(script, argv, env or {}, cwd)
    log = ""
    if args:
        log_path = Path(str(args[0]) + ".log")
        log = log_path.read_text(encoding="utf-8") if log_path.is_file() else ""
    return Result(code, stdout, stderr, log)


def _run_in_process(script: str, argv: list[str], env: dict[str, str], cwd: Path | None) -> tuple[int, str, str]:
    module = importlib.import_module(Path(script).stem)
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = int(module.main(argv))
            except SystemExit as done:  # argparse
                code = done.code if isinstance(done.code, int) else 1
            except Exception:  # noqa: BLE001  # as the interpreter does: traceback on stderr, exit 1
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli() -> Callable[..., Result]:
    return run_cli
