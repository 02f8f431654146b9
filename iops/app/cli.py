"""The scheduler's command line: read it, load the config, take the run lock, run one command.

Exit codes: 0 done or nothing to do, 1 a service failed, 2 the config (or the command line) needs fixing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from iops.app.args import Command, Option, Parsed, invocation, read_command_line
from iops.app.config import load_config, write_template
from iops.app.exits import EXIT_CONFIG, EXIT_OK, EXIT_SERVICE, guarded
from iops.app.guard import run_deadline
from iops.app.lock import last_run_of, run_lock
from iops.app.logs import setup_logging
from iops.core.errors import ConfigError

log = logging.getLogger("iops")
SCRIPT = "io_powerwall_scheduler.py"


def _when(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not a time like 2026-11-25T14:00:00+00:00") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} needs a UTC offset, e.g. 2026-11-25T14:00:00+00:00")
    if not 2000 <= parsed.year <= 2100:
        raise ValueError(f"{value!r} is far from today; --at is for previews and replays")
    return parsed


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise ValueError(f"{value[:20]!r} is not a whole number of days") from None
    if not 1 <= days <= 60:
        raise ValueError("must be from 1 to 60")
    return days


COMMAND = Command(
    SCRIPT,
    "Keep a Powerwall's Tesla tariff in step with Intelligent Octopus Go. Run it from cron every minute.",
    (
        Option("--dry-run", "print the JSON body that would be posted; post nothing"),
        Option("--show", "print the next 24 hours as a timeline; post nothing"),
        Option("--force", "post even if unchanged; ignore the MQTT flag"),
        Option("--debug", "log every step"),
        Option("--at", "compute as if it were this ISO 8601 time (previews, replays)", "TIME", _when),
        Option("--sample", "use bundled sample data; needs no config or keys"),
        Option("--check", "check the config, keys, account, car and Powerwall settings; posts nothing"),
        Option("--status", "how recent runs went (exit 1 while failing)"),
        Option("--restore", "put back the site's own tariff and pause this config until --resume"),
        Option("--resume", "carry on after --restore"),
        Option("--report", "did the bill match what the Powerwall was told? (posts nothing)"),
        Option("--days", "with --report: how many allowance days (default 7)", "N", _days, 7),
        Option("--json", "with --report: one JSON object instead of text"),
    ),
    "Exit codes: 0 done or nothing to do, 1 a service failed, 2 the config needs fixing.",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Every run ends with 0, 1 or 2 and a line in the log (see iops.app.exits.guarded)."""
    return guarded(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    args = read_command_line(COMMAND, argv)
    if isinstance(args, int):
        return args
    if args.sample:
        from iops.app.sample import run_sample

        setup_logging(None, [], debug=args.debug)
        return run_sample(args.at, dry_run=args.dry_run)
    path = Path(args.config).expanduser().resolve()
    if not path.exists():
        return _first_run(path)
    if args.check:
        from iops.app.check import run_check

        return run_check(path, args.at)
    now = args.at or datetime.now(UTC)
    if args.status:
        from iops.app.status import status_command

        return status_command(path, now)
    if args.report:
        from iops.app.report import report_command

        return report_command(path, now, days=args.days, as_json=args.json)
    if args.resume:
        from iops.app.restore import resume_command

        return resume_command(path, now)
    if args.restore:
        from iops.app.restore import restore_command

        return restore_command(path, now)
    return _cron_run(path, args, now)


def _first_run(path: Path) -> int:
    if not path.parent.is_dir():
        print(f"{path}: its folder {path.parent} does not exist: check the path", file=sys.stderr)
        return EXIT_CONFIG
    write_template(path)
    print(
        f"No config at {path}; wrote a template there (readable only by you).\n"
        f"Fill in the <...> values under [octopus] and [tesla], then run again.\n"
        f"To look around first:  {invocation(SCRIPT)} --sample",
        file=sys.stderr,
    )
    return EXIT_CONFIG


def _cron_run(path: Path, args: Parsed, now: datetime) -> int:
    from iops.app.run import Options, run

    preview = args.dry_run or args.show
    try:
        config = load_config(path, need_tesla=not preview)
    except ConfigError as err:
        print(f"Config problems in {path}:", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_CONFIG
    opts = Options(
        dry_run=args.dry_run or config.debug.dry_run,
        show=args.show,
        force=args.force or config.debug.force,
        debug=args.debug,
        at=args.at,
    )
    redactor = setup_logging(config.debug.log_file, config.secrets(), debug=opts.debug or config.debug.debug)
    try:
        with run_lock(config.lock_path) as acquired:
            if not acquired:
                log.debug("Another run for %s is still going; leaving it to finish", path)
                return EXIT_OK
            previous_run = last_run_of(config.lock_path)
            if opts.live:
                os.utime(config.lock_path, (now.timestamp(), now.timestamp()))  # the last run, for --status
            with run_deadline():
                return run(config, opts, now, redactor, previous_run)
    except OSError as err:
        if err.filename != str(config.lock_path):
            raise
        log.error(
            "Cannot open the lock file %s (%s). A run as another user (sudo?) may have left it: "
            "remove it, or give it back with: sudo chown %s %s",
            config.lock_path,
            err.strerror,
            os.environ.get("USER", "$USER"),
            config.lock_path,
        )
        return EXIT_SERVICE
