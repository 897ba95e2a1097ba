"""What every command shares: the group's options, the lazy config, errors → exit codes.

Exit codes: 0 ok; 1 the run finished but something failed (reported);
2 bad usage or bad configuration (one line on stderr, nothing changed).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from graylink.config import Config, load_config
from graylink.errors import ConfigError, GraylinkError
from graylink.store.db import SQLITE_ERRORS, database_failure
from graylink.system.text import one_line

log = logging.getLogger("graylink")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    """What the group's options give every command; the config is loaded on demand."""

    config_path: str | None
    verbosity: int
    _config: Config | None = None

    def say(self, text: str) -> None:
        """A command's result line on stdout, left out by ``-q`` ("errors only"):
        a cron job with ``-q`` stays silent unless something needs attention."""
        if self.verbosity >= 0:
            click.echo(text)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            from graylink.service.logsetup import configure_logging

            configure_logging(self._config.log, self.verbosity)
        return self._config

    def libraries(self, name: str | None) -> list[Config]:
        """The view of each library a command works on: the one ``--library`` names, else every one."""
        if name:
            return [self.config.library(name.lower())]
        return self.config.each_library()

    def one_library(self, name: str | None, what: str) -> Config:
        """The one library a command that cannot take several works on."""
        views = self.libraries(name)
        if len(views) > 1:
            names = ", ".join(view.name for view in views)
            raise ConfigError(f"{what} works on one library: name it with --library NAME ({names})")
        return views[0]

    def use_config(self, config: Config) -> None:
        """The config the service reloaded (SIGHUP) replaces the one loaded at start."""
        self._config = config


def setup_logging(verbosity: int) -> None:
    """Logging to stderr until the config is read (then ``[log]`` applies)."""
    from graylink.service.logsetup import configure_logging

    configure_logging(None, verbosity)


INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as a shell reports it (graylink/__main__.py says the same)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"graylink: {one_line(message)}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn graylink's errors into one line and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GraylinkError as exc:
            fail(str(exc), exc.exit_code)
        except SQLITE_ERRORS as exc:
            app = args[0] if args and isinstance(args[0], AppContext) else None
            where = app.config.paths.database if app is not None and app._config is not None else "the database"
            failure = database_failure(exc, where)
            if failure is None:
                raise
            fail(str(failure), failure.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", INTERRUPTED)
        except OSError as exc:
            # A filesystem refusal nobody foresaw: say what and where, in one line.
            where = f": {exc.filename!r}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}", 1)
        except Exception as exc:
            app = args[0] if args and isinstance(args[0], AppContext) else None
            if app is not None and app.verbosity > 0:
                raise
            fail(f"unexpected error: {type(exc).__name__}: {exc} (run with -v for the details)", 1)

    return wrapper  # type: ignore[return-value]


LIBRARY_HELP = "Only this library ([library NAME], or default for the unnamed sections); default: every library."


def library_option(func: F) -> F:
    """``--library NAME``, the same on every command that takes it."""
    return click.option("--library", "library", metavar="NAME", help=LIBRARY_HELP)(func)


def display(name: bytes) -> str:
    """A path for one line of human output: undecodable bytes and control characters escaped."""
    return one_line(name.decode("utf-8", "backslashreplace"))
