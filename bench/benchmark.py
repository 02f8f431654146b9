#!/usr/bin/env python3
"""Measure what a cron run costs: requests per run and wall time, against the fake servers.

Usage: python3 bench/benchmark.py [--runs N]
Runs the scheduler as cron does (a fresh process each minute of simulated time) and prints
requests per run (Octopus, Tesla) and wall-time percentiles. Not a test: numbers are reported.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import config_text  # noqa: E402
from fakes import FakeKraken, FakeTessie  # noqa: E402

START = datetime.fromisoformat("2026-11-24T12:00:00+00:00")


def run_once(config: Path, at: datetime, *extra: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "io_powerwall_scheduler.py"), str(config), "--at", at.isoformat(), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr}")
    return elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=60, help="simulated minutes of steady state (default 60)")
    args = parser.parse_args()
    kraken, tessie = FakeKraken().start(), FakeTessie().start()
    assert isinstance(kraken, FakeKraken) and isinstance(tessie, FakeTessie)
    kraken.data.planned = [{"start": "2026-11-24T14:00:00+00:00", "end": "2026-11-24T15:00:00+00:00", "type": "SMART"}]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "config.txt"
            config.write_text(config_text(kraken, tessie), encoding="utf-8")
            first = run_once(config, START)
            first_octopus, first_tesla = len(kraken.requests), len(tessie.requests)
            times, octopus, tesla = [], [], []
            for minute in range(1, args.runs + 1):
                kraken.clear_log()
                tessie.clear_log()
                times.append(run_once(config, START + timedelta(minutes=minute)))
                octopus.append(len(kraken.requests))
                tesla.append(len(tessie.requests))
            kraken.data.planned.append(
                {"start": "2026-11-24T19:30:00+00:00", "end": "2026-11-24T20:00:00+00:00", "type": "SMART"}
            )
            kraken.clear_log()
            tessie.clear_log()
            change = run_once(config, START + timedelta(minutes=args.runs + 1))
            change_octopus, change_tesla = len(kraken.requests), len(tessie.requests)
            import_times = []
            for _ in range(10):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-c", "import io_powerwall_scheduler"], cwd=ROOT, check=True)
                import_times.append(time.perf_counter() - started)
            baseline = []
            for _ in range(10):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-c", "pass"], check=True)
                baseline.append(time.perf_counter() - started)
    finally:
        kraken.stop()
        tessie.stop()

    print(
        f"first run (token, device, account, sessions, post, read-back): {first:.3f} s, "
        f"Octopus {first_octopus} requests, Tesla {first_tesla} requests"
    )
    print(f"steady state over {args.runs} simulated minutes (nothing changed):")
    print(
        f"  Octopus requests per run: mean {statistics.mean(octopus):.3f}, min {min(octopus)}, max {max(octopus)}"
        f"  (distribution {dict(sorted({n: octopus.count(n) for n in set(octopus)}.items()))})"
    )
    print(
        f"  Tesla requests per run:   mean {statistics.mean(tesla):.3f}, max {max(tesla)}"
        f"  (distribution {dict(sorted({n: tesla.count(n) for n in set(tesla)}.items()))})"
    )
    print(
        f"  wall time per run: median {statistics.median(times) * 1000:.0f} ms, "
        f"p95 {percentile(times, 0.95) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )
    print(
        f"run after a slot changed: {change * 1000:.0f} ms, "
        f"Octopus {change_octopus}, Tesla {change_tesla} (post + read-back)"
    )
    print(
        f"python start-up alone: median {statistics.median(baseline) * 1000:.0f} ms; "
        f"'import io_powerwall_scheduler': median {statistics.median(import_times) * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
