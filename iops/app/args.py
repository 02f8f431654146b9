"""One way to read the command line for every command, and hints that name commands as the user runs them.

Small on purpose: argparse (with gettext) was a third of an idle cron minute. The grammar is the
usual one: a config path (default config.txt), ``--flag``, ``--option VALUE`` or ``--option=VALUE``,
``--`` before a path that starts with a dash, ``-h``/``--help``. An unknown flag or a bad value is
a usage error: exit 2 with the usage line, as argparse does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

USAGE_ERROR = 2

# The scripts at the top of a clone, and the commands pipx installs for them.
COMMANDS: Mapping[str, str] = {
    "io_powerwall_scheduler.py": "io-powerwall-scheduler",
    "get_site_id.py": "io-powerwall-site-id",
    "free_electricity.py": "io-powerwall-power-ups",
    "savings_sessions.py": "io-powerwall-saving-sessions",
}


class UsageError(Exception):
    """The command line cannot be read; the message says why."""


class Option(NamedTuple):
    """One option of a command. (Tuples, not dataclasses: every cron minute builds these.)"""

    flag: str  # "--at"
    help: str
    metavar: str = ""  # with a value: its name in the usage ("TIME"); empty for a plain flag
    convert: Callable[[str], Any] = str  # raises ValueError with a message fit for the user
    default: Any = None

    @property
    def key(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


class Command(NamedTuple):
    """A command: its script's name, what it does, and its options."""

    script: str  # its name in a clone, e.g. "get_site_id.py"
    summary: str
    options: Sequence[Option] = ()
    epilog: str = ""

    def usage(self) -> str:
        parts = [f"[{o.flag}{' ' + o.metavar if o.metavar else ''}]" for o in self.options]
        return f"usage: {invocation(self.script)} [config] {' '.join(parts)}".rstrip()

    def help(self) -> str:
        width = max((len(o.flag) + len(o.metavar) + 1 for o in self.options), default=6)
        lines = [
            self.usage(),
            "",
            self.summary,
            "",
            "  config" + " " * (width - 4) + "INI config file (default: config.txt)",
        ]
        for o in (Option("--help", "show this help and exit"), *self.options):
            name = f"{o.flag} {o.metavar}".rstrip()
            lines.append(f"  {name:<{width + 2}}{o.help}")
        if self.epilog:
            lines += ["", self.epilog]
        return "\n".join(lines)


class Parsed:
    """A command line as read: the config path, the options' values (as attributes), or a help request."""

    def __init__(self, config: str, values: Mapping[str, Any], *, help: bool = False) -> None:
        self.config, self.values, self.help = config, values, help

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


def parse(command: Command, argv: Sequence[str]) -> Parsed:
    """The command line as values; raises UsageError for anything it cannot read."""
    by_flag = {o.flag: o for o in command.options}
    values: dict[str, Any] = {o.key: (o.default if o.metavar else False) for o in command.options}
    positional: list[str] = []
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        if word in ("-h", "--help"):
            return Parsed("config.txt", values, help=True)
        if word == "--":  # what follows is a path, even if it starts with a dash
            positional += rest
            break
        if not word.startswith("-") or word == "-":
            positional.append(word)
            continue
        flag, has_value, inline = word.partition("=")
        option = by_flag.get(flag)
        if option is None:
            raise UsageError(f"unrecognized arguments: {word}")
        if not option.metavar:
            if has_value:
                raise UsageError(f"argument {flag}: ignored explicit argument {inline!r}")
            values[option.key] = True
            continue
        if not has_value:
            if not rest:
                raise UsageError(f"argument {flag}: expected one argument")
            inline = rest.pop(0)
        try:
            values[option.key] = option.convert(inline)
        except ValueError as err:
            raise UsageError(f"argument {flag}: {err}") from None
    if len(positional) > 1:
        raise UsageError(f"unrecognized arguments: {' '.join(positional[1:])}")
    return Parsed(positional[0] if positional else "config.txt", values)


def read_command_line(command: Command, argv: Sequence[str] | None) -> Parsed | int:
    """Parse, or print the help (exit 0) or a usage error (exit 2) and return the exit code."""
    try:
        parsed = parse(command, sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        print(f"{command.usage()}\n{invocation(command.script)}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    if parsed.help:
        print(command.help())
        return 0
    return parsed


def invocation(script: str) -> str:
    """How the user runs ``script``: as a pipx command, or with the interpreter they used (the README's
    ``.venv/bin/python`` from a clone), so that a hint can be pasted as it is."""
    if not sys.argv[0].endswith(".py") and Path(sys.argv[0]).name in COMMANDS.values():
        return COMMANDS.get(script, script)
    python = Path(sys.executable)
    try:
        shown = os.path.relpath(python) if python.is_relative_to(Path.cwd()) else str(python)
    except ValueError:
        shown = str(python)
    return f"{shown} {script}"
