"""get_site_id.py: list the Tesla energy sites on the account; optionally save the Powerwall's ID in the config."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from iops.app.args import Command, Option, read_command_line
from iops.app.clients import tesla_site
from iops.app.config import is_placeholder
from iops.app.exits import EXIT_CONFIG, EXIT_OK, EXIT_SERVICE, guarded
from iops.app.protected import Job, run_command
from iops.core.errors import ConfigError
from iops.services.tesla import EnergySite

COMMAND = Command(
    "get_site_id.py",
    "List the Tesla energy sites on your account; with --write, save the Powerwall's site ID in the config.",
    (
        Option("--write", "save the chosen site ID as [tesla] site_id"),
        Option("--site", "the site ID to save when there are several", "ID"),
    ),
)


def choose_site(sites: Sequence[EnergySite], wanted: str | None) -> EnergySite:
    """The site to use: the one asked for, or the only Powerwall. Never a guess by position."""
    if wanted is not None:
        for site in sites:
            if site.site_id == wanted:
                return site
        raise ConfigError(
            [f"site {wanted} is not on this account; choose one of: {', '.join(s.site_id for s in sites)}"]
        )
    batteries = [s for s in sites if s.has_battery]
    if len(batteries) == 1:
        return batteries[0]
    if not batteries:
        raise ConfigError(["no energy site with a Powerwall on this account"])
    raise ConfigError([f"{len(batteries)} Powerwall sites; pick one with --site ID"])


def set_ini_value(text: str, section: str, key: str, value: str) -> str:
    """Set one key, keeping every other line (comments included) exactly as it was."""
    lines = text.splitlines(keepends=True)
    header = re.compile(r"^\s*\[([^\]]+)\]\s*$")
    key_line = re.compile(rf"^\s*{re.escape(key)}\s*[=:]")
    in_section, section_end, found_section = False, None, False
    for i, line in enumerate(lines):
        m = header.match(line)
        if m:
            if in_section:
                section_end = i
                break
            in_section = m.group(1).strip() == section
            found_section = found_section or in_section
            continue
        if in_section and key_line.match(line):
            newline = "\n" if line.endswith("\n") else ""
            lines[i] = f"{key} = {value}{newline}"
            return "".join(lines)
    if not found_section:
        prefix = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{prefix}\n[{section}]\n{key} = {value}\n"
    insert_at = section_end if section_end is not None else len(lines)
    if insert_at and not lines[insert_at - 1].endswith("\n"):
        lines[insert_at - 1] += "\n"
    lines.insert(insert_at, f"{key} = {value}\n")
    return "".join(lines)


def write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    args = read_command_line(COMMAND, argv)
    if isinstance(args, int):
        return args
    path = Path(args.config).expanduser().resolve()

    def work(job: Job) -> int:
        config = job.config
        if is_placeholder(config.tesla.api_key) and not config.tesla.refresh_token:
            raise ConfigError([f"{path}: [tesla] api_key: missing or still a placeholder (or set TESLA_API_KEY)"])
        import requests

        with requests.Session() as session:
            sites = tesla_site(session, config, job.records, time.time).products()
        if not sites:
            print("No energy sites on this account.", file=sys.stderr)
            return EXIT_CONFIG
        job.say(f"{'site ID':<20} {'Powerwall':<10} name")
        for site in sites:
            job.say(f"{site.site_id:<20} {'yes' if site.has_battery else 'no':<10} {site.name}")
        if not args.write:
            return EXIT_OK
        chosen = choose_site(sites, args.site)
        try:
            write_atomically(path, set_ini_value(path.read_text(encoding="utf-8"), "tesla", "site_id", chosen.site_id))
        except OSError as err:
            print(
                f"Cannot write {path} ({err.strerror or err}); it is unchanged. Check the disk and the file's owner",
                file=sys.stderr,
            )
            return EXIT_SERVICE
        job.say(f"Saved [tesla] site_id = {chosen.site_id} ({chosen.name or 'unnamed'}) in {path}")
        return EXIT_OK

    return run_command(path, work, need_octopus=False, need_tesla=False, log_to_file=False)
