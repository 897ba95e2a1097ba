"""Where log lines go and how they look: stderr always, a rotating file if
``[log] file`` is set, as text or one JSON object per line."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import threading
import time
from typing import Any

from graylink.config import LogConfig
from graylink.system.logring import RING
from graylink.system.text import one_line

TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
NOISY = ("urllib3", "googleapiclient", "google", "peewee", "schedule", "httplib2", "apprise")


class TextFormatter(logging.Formatter):
    """``time LEVEL message``; control characters of the message escaped.

    Every logged value (a path from a webhook, a name on the mount, an
    exception's text) is escaped here, once, so no value can end its line and
    start a forged one. A traceback keeps its own lines (it is indented, and
    only unexpected errors carry one)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        safe = logging.makeLogRecord(record.__dict__)
        safe.message = one_line(record.message)
        return super().formatMessage(safe)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers (journald, Loki, jq) parse.

    The message's control characters are escaped as in the text format, so a
    reader that prints ``.message`` (``jq -r``) shows one line too."""

    def format(self, record: logging.LogRecord) -> str:
        # Only the message and fixed fields, never the record's extras: google-auth
        # attaches request headers (with the bearer token) to its debug records.
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            + f".{int(record.msecs):03d}"
            + time.strftime("%z", time.localtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "message": one_line(record.getMessage()),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


OURS = "_graylink_handler"
KEEP = "keep_on_reconfigure"  # a handler filter with this attribute true is moved to the new handlers
_CONFIGURING = threading.Lock()


def _add(root: logging.Logger, handler: logging.Handler) -> None:
    setattr(handler, OURS, True)
    root.addHandler(handler)


def _formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else TextFormatter(TEXT_FORMAT, DATE_FORMAT)


def level_for(verbosity: int, configured: str = "info") -> int:
    """``-v`` and ``-q`` on the command line win over ``[log] level``."""
    if verbosity > 0:
        return logging.DEBUG
    if verbosity < 0:
        return logging.ERROR
    return LEVELS.get(configured, logging.INFO)


def configure_logging(config: LogConfig | None, verbosity: int) -> None:
    """(Re)build the root logger's handlers; safe to call again after a config reload,
    also from several libraries' threads at once (SIGHUP reloads each)."""
    with _CONFIGURING:
        kept: list[Any] = []  # logging's own type for a handler's filters (Filter or callable)
        root = logging.getLogger()
        for handler in list(root.handlers):
            # Only our own: handlers a host program (or pytest) installed stay.
            if getattr(handler, OURS, False):
                # A filter the service put on them (each line names its library) outlives a reload.
                kept.extend(f for f in handler.filters if getattr(f, KEEP, False) and f not in kept)
                root.removeHandler(handler)
                handler.close()
        _configure(root, config, verbosity)
        for handler in root.handlers:
            if getattr(handler, OURS, False):
                for kept_filter in kept:
                    handler.addFilter(kept_filter)


def _configure(root: logging.Logger, config: LogConfig | None, verbosity: int) -> None:
    kind = config.format if config is not None else "text"
    level = level_for(verbosity, config.level if config is not None else "info")
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(_formatter(kind))
    _add(root, stderr)
    # The web face's log page reads these when no [log] file is set.
    RING.setFormatter(TextFormatter(TEXT_FORMAT, DATE_FORMAT))
    _add(root, RING)
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
