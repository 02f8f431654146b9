"""Logging for every command: a log file beside the config, warnings on stderr, secrets redacted."""

from __future__ import annotations

import logging
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
        return True


def setup_logging(log_file: Path | None, secrets: Sequence[str], *, debug: bool) -> RedactSecrets:
    redactor = RedactSecrets(secrets)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # delay: a quiet minute logs nothing, so it need not open (or create) the file.
        file_handler = logging.FileHandler(log_file, encoding="utf-8", delay=True)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(file_handler)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if debug else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handlers.append(console)
    for handler in handlers:
        handler.addFilter(redactor)
        root.addHandler(handler)
    # urllib3 would log full URLs at debug; nothing it says is worth a secret leaking.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    return redactor
