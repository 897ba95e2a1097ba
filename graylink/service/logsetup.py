"""Where log lines go and how they look: stderr always, a rotating file if
``[log] file`` is set, as text or one JSON object per line."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from typing import Any

from graylink.config import LogConfig

TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
NOISY = ("urllib3", "googleapiclient", "google", "peewee", "schedule", "httplib2", "apprise")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers (journald, Loki, jq) parse."""

    def format(self, record: logging.LogRecord) -> str:
        # Only the message and fixed fields, never the record's extras: google-auth
        # attaches request headers (with the bearer token) to its debug records.
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            + f".{int(record.msecs):03d}"
            + time.strftime("%z", time.localtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


OURS = "_graylink_handler"


def _add(root: logging.Logger, handler: logging.Handler) -> None:
    setattr(handler, OURS, True)
    root.addHandler(handler)


def _formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT, DATE_FORMAT)


def level_for(verbosity: int, configured: str = "info") -> int:
    """``-v`` and ``-q`` on the command line win over ``[log] level``."""
    if verbosity > 0:
        return logging.DEBUG
    if verbosity < 0:
        return logging.ERROR
    return LEVELS.get(configured, logging.INFO)


def configure_logging(config: LogConfig | None, verbosity: int) -> None:
    """(Re)build the root logger's handlers; safe to call again after a config reload."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        # Only our own: handlers a host program (or pytest) installed stay.
        if getattr(handler, OURS, False):
            root.removeHandler(handler)
            handler.close()
    kind = config.format if config is not None else "text"
    level = level_for(verbosity, config.level if config is not None else "info")
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(_formatter(kind))
    _add(root, stderr)
    root.setLevel(level)
    # Library chatter (raw SQL, HTTP connection pools, Google discovery) stays
    # out of -v, which tells graylink's own story (graylink.story): only -vv adds it.
    chatter = logging.DEBUG if verbosity > 1 else logging.WARNING
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(chatter)
    if config is not None and config.file:
        try:
            os.makedirs(os.path.dirname(config.file), exist_ok=True)
            # Fail here, as one line, rather than as a logging traceback at the first record.
            with open(config.file, "a", encoding="utf-8"):
                pass
            # delay: a command that logs nothing never opens (or rotates) the file.
            handler = logging.handlers.RotatingFileHandler(
                config.file, maxBytes=config.max_bytes, backupCount=config.backups, encoding="utf-8", delay=True
            )
            handler.setFormatter(_formatter(kind))
            _add(root, handler)
        except OSError as exc:
            root.error("cannot write log file %s: %s; logging to stderr only", config.file, exc.strerror)
