"""Logging for every process: one line per event, text for people or JSON lines for collectors."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from thumbnailify.settings import LogSettings

# Attributes every LogRecord has; anything else on a record came from `extra=` and is shown.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


# Control characters (and Unicode line breaks) shown escaped: a URL or header sent with "%0A"
# can never start a log line of its own.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), 127, 0x85)} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape(text: str) -> str:
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """The usual text line and the record's extra fields as key=value, escaped onto one line.

    A traceback follows on lines of its own, each indented, so none can pass for a log line.
    """

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        extras = " ".join(f"{k}={escape(str(v))}" for k, v in vars(record).items() if k not in _STANDARD)
        if extras:
            line += " " + extras
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        details = [record.exc_text, record.stack_info and self.formatStack(record.stack_info)]
        rows = [row for part in details if part for row in part.splitlines()]
        return "\n".join([line, *(f"    {escape(row)}" for row in rows)])


def setup_logging(settings: LogSettings, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                static_fields={"service": service},
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
            )
        )
    else:
        handler.setFormatter(
            TextFormatter(f"%(asctime)s %(levelname)s {service}[%(process)d] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    for noisy in ("pika", "aioamqp", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
