"""Errors that reach the user as one line and an exit code."""

from __future__ import annotations


class GraylinkError(Exception):
    """A failure the CLI reports as one line; ``exit_code`` says how it exits."""

    exit_code = 1


class ConfigError(GraylinkError):
    """Bad configuration or usage: nothing was touched."""

    exit_code = 2


class DiskFull(GraylinkError):
    """A filesystem graylink writes to (the link tree, the database) has no room left.

    Not a configuration problem: the run stopped cleanly and the next one,
    with space, goes on from there."""

    exit_code = 1


class DatabaseError(GraylinkError):
    """The index database cannot be opened or is not one of ours."""

    exit_code = 2
