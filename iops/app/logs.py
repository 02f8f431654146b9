"""Logging for every command: a log file beside the config, warnings on stderr, secrets redacted."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path


class RedactSecrets(logging.Filter):
    """Replaces every configured secret, and any token learnt later, wherever it appears in a record."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def add(self, secret: str) -> None:
        if len(secret) >= 4 and secret not in self.secrets:
            self.secrets.append(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            # A traceback is formatted after the filters run; format it here so that it is redacted too.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


class _NoTraceback(logging.Formatter):
    """For the terminal: one line per record; tracebacks go to the log file only."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


def usable_log_file(log_file: Path) -> str | None:
    """Why the log file cannot be written, or None. Checked without opening it (quiet minutes log nothing)."""
    if log_file.is_dir():
        return "it is a directory"
    target = log_file if log_file.exists() else log_file.parent
    if not target.exists():
        return f"its folder {target} does not exist"
    if not os.access(target, os.W_OK):
        return "this user may not write it"
    return None


def setup_logging(log_file: Path | None, secrets: Sequence[str], *, debug: bool) -> RedactSecrets:
    redactor = RedactSecrets(secrets)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    handlers: list[logging.Handler] = []
    problem = usable_log_file(log_file) if log_file is not None else None
    if log_file is not None and problem is None:
        # delay: a quiet minute logs nothing, so it need not open (or create) the file.
        file_handler = logging.FileHandler(log_file, encoding="utf-8", delay=True)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(file_handler)
    console = logging.StreamHandler(sys.stderr)
    # Without a log file, what would have gone there goes to the terminal instead.
    console.setLevel(logging.DEBUG if debug else logging.WARNING if problem is None else logging.INFO)
    console.setFormatter(_NoTraceback("%(levelname)s %(message)s") if problem is None else logging.Formatter())
    handlers.append(console)
    for handler in handlers:
        handler.addFilter(redactor)
        root.addHandler(handler)
    # urllib3 would log full URLs at debug; nothing it says is worth a secret leaking.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if problem is not None:
        logging.getLogger(__name__).warning(
            "Cannot write the log file %s (%s); logging here instead", log_file, problem
        )
    return redactor
