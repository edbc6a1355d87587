"""Structured logs: one JSON object per line on stderr, with fields a log shipper can index."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, sort_keys=True)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: ``dedup: warning: push retry (code=UNAVAILABLE, wait_seconds=2.0)``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        detail = ", ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != "")
        out = f"dedup: {record.levelname.lower()}: {record.getMessage()}" + (f" ({detail})" if detail else "")
        if record.exc_info:
            out += "\n" + self.formatException(record.exc_info)
        return out


def setup(level: str = "INFO", *, text: bool = False) -> None:
    """Log to stderr: JSON lines (for a log shipper or the journal), or ``text`` for a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields) -> None:
    """Log ``msg`` with structured ``fields`` (member ids, counts; never image data)."""
    logger.log(level, msg, extra={"fields": fields})
