#!/usr/bin/env python3
"""What one cron run costs: requests, and wall time against Python's own start-up, side by side.

Usage: python3 bench/benchmark.py [--rounds N] [--python PATH]

Runs the scheduler as cron does (a fresh process) against the fake servers and times, interleaved
so that machine load falls on all alike:
  - bare start-up:   python -c pass
  - an idle minute:  a run between Octopus polls (no network, no requests import)
  - requests:        python -c "import requests"
  - a polling minute: a run that asks Octopus (one request) and has nothing to post
Use the README's .venv interpreter (--python .venv/bin/python) to measure what users run.
With --instructions, each kind is also run once under valgrind's callgrind, which counts the
instructions executed: the same count for the same code whatever else the machine is doing, so
two versions can be compared on a busy machine (wall times there swing by a third).
Not a test: the numbers are reported, not asserted. bench/simulate_day.py covers a whole day.
"""

from __future__ import annotations

import argparse
import re
import shutil
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


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{command} failed ({proc.returncode}): {proc.stderr}")
    return elapsed


def instructions(command: list[str]) -> int:
    """Instructions executed by a command (callgrind), children included."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", *command],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{command} failed under valgrind ({proc.returncode}): {proc.stderr[-500:]}")
        found = re.search(r"^summary: (\d+)", out.read_text(errors="replace"), re.MULTILINE)
        if not found:
            raise SystemExit("callgrind wrote no summary")
        return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="timings of each kind (default 30)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure (default this one)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with callgrind")
    args = parser.parse_args()
    python = args.python
    kraken, tessie = FakeKraken().start(), FakeTessie().start()
    assert isinstance(kraken, FakeKraken) and isinstance(tessie, FakeTessie)
    kraken.clock = tessie.clock = lambda: now[0].timestamp()  # noqa: PLW0108  # reads now[0] at each call
    now = [START]
    times: dict[str, list[float]] = {"bare": [], "idle": [], "requests": [], "poll": []}
    requests_made: dict[str, list[int]] = {"idle": [], "poll": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "config.txt"
            config.write_text(config_text(kraken, tessie), encoding="utf-8")
            config.chmod(0o600)
            script = str(ROOT / "io_powerwall_scheduler.py")

            def run(at: datetime) -> float:
                now[0] = at
                return timed([python, script, str(config), "--at", at.isoformat()])

            first = run(START)
            first_counts = (len(kraken.requests), len(tessie.requests))
            minute = 5  # after the read-back of the first post, so that Tesla is quiet
            run(START + timedelta(minutes=minute))
            while min(len(times["idle"]), len(times["poll"])) < args.rounds:
                times["bare"].append(timed([python, "-c", "pass"]))
                times["requests"].append(timed([python, "-c", "import requests"]))
                minute += 1
                kraken.clear_log()
                tessie.clear_log()
                elapsed = run(START + timedelta(minutes=minute))
                made = len(kraken.requests) + len(tessie.requests)
                kind = "poll" if made else "idle"  # as the call policy decided this minute
                times[kind].append(elapsed)
                requests_made[kind].append(made)
            counted: dict[str, int] = {}
            if args.instructions:
                counted["bare"] = instructions([python, "-c", "pass"])
                counted["requests"] = instructions([python, "-c", "import requests"])
                while len(counted) < 4:
                    minute += 1
                    kraken.clear_log()
                    tessie.clear_log()
                    now[0] = START + timedelta(minutes=minute)
                    count = instructions([python, script, str(config), "--at", now[0].isoformat()])
                    counted.setdefault("poll" if kraken.requests or tessie.requests else "idle", count)
    finally:
        kraken.stop()
        tessie.stop()

    def ms(kind: str) -> float:
        return statistics.median(times[kind]) * 1000

    print(f"interpreter: {python}")
    print(
        f"first run (token, devices, agreements, sessions, keep the site's tariff, post): {first * 1000:.0f} ms, "
        f"Octopus {first_counts[0]} requests, Tesla {first_counts[1]}"
    )
    print(f"median of {args.rounds} interleaved rounds:")
    print(f"  python -c pass:           {ms('bare'):6.0f} ms")
    print(
        f"  idle minute (no poll):    {ms('idle'):6.0f} ms  = {ms('idle') / ms('bare'):.2f} x bare start-up, "
        f"requests made: {sorted(set(requests_made['idle']))}"
    )
    print(f"  python -c import requests:{ms('requests'):6.0f} ms")
    print(
        f"  polling minute:           {ms('poll'):6.0f} ms  = {ms('poll') / ms('requests'):.2f} x importing requests, "
        f"requests made: {sorted(set(requests_made['poll']))}"
    )
    if counted:
        print("instructions (callgrind; the same for the same code, whatever the machine's load):")
        for kind, against in (("bare", ""), ("idle", "bare"), ("requests", ""), ("poll", "requests")):
            ratio = f"  = {counted[kind] / counted[against]:.2f} x {against}" if against else ""
            print(f"  {kind:<9} {counted[kind] / 1e6:8.1f} M{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
