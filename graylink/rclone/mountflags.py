"""The flags a running ``rclone mount`` was started with, and what graylink makes of them.

The command line is read from ``/proc/PID/cmdline`` the way rclone's flag
parser (spf13/pflag, under cobra) reads it: global flags may come before the
subcommand (``rclone --config X mount …``); a flag's value follows as
``--flag=value`` or as the next argument, whatever it looks like; a boolean flag
takes a value only as ``--flag=false``; the last of repeated flags wins; ``--``
ends the flags. A flag missing from the command line is read from the
process's environment, ``RCLONE_<FLAG>`` (rclone's ``fs.OptionToEnv``), else it
has rclone's default (``vfs/vfscommon/options.go``: ``--dir-cache-time 5m``,
``--poll-interval 1m``; ``fs/rc``: the remote control is off without ``--rc``,
whatever ``--rc-addr`` says; from rclone 1.74 its calls need ``--rc-user``,
``--rc-htpasswd`` or ``--rc-no-auth``, ``fs/rc/rcserver/rcserver.go``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from graylink.checks import N_, Check, said
from graylink.config import Config
from graylink.rclone.duration import parse_duration
from graylink.system import fsinfo

MOUNT_COMMANDS = ("mount", "nfsmount", "cmount")
# The flags read here, and whether they take a value.
VALUE_FLAGS = (
    "--dir-cache-time", "--poll-interval", "--rc-addr", "--drive-root-folder-id", "--drive-team-drive",
    "--rc-user", "--rc-htpasswd",
)  # fmt: skip
BOOL_FLAGS = ("--rc", "--rc-no-auth", "--fast-list")
# Other flags of a typical mount known to take a value (whatever it looks like:
# "--rc-pass --rc" sets a password). Any other flag is an unknown: see _command_words.
OTHER_VALUE_FLAGS = frozenset(
    {
        "--config", "--log-file", "--log-level", "--cache-dir", "--rc-pass",
        "--rc-key", "--rc-cert", "--vfs-cache-mode", "--vfs-cache-max-age", "--vfs-cache-max-size",
        "--vfs-read-chunk-size", "--vfs-read-chunk-size-limit", "--buffer-size", "--attr-timeout",
        "--uid", "--gid", "--umask", "--dir-perms", "--file-perms", "--user-agent", "--drive-chunk-size",
        "--tpslimit", "--tpslimit-burst", "--stats", "--timeout", "--contimeout", "--volname", "--option", "-o",
    }
)  # fmt: skip
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

AUTH_SINCE = (1, 74)  # rclone "rc: flip auth default": every call not marked NoAuth needs rc auth
SHORT_DIR_CACHE = 3600.0
DEFAULT_DIR_CACHE = "5m"
DEFAULT_POLL = "1m"
NAME = "rclone flags"
RECOMMENDED = said(N_("run the mount with --dir-cache-time 1000h --poll-interval 1m (docs/rclone.md)"))


@dataclass(frozen=True)
class RcloneProcess:
    pid: int
    argv: tuple[str, ...]
    environ: dict[str, str] = field(default_factory=dict)  # the RCLONE_* variables of the flags read here

    @property
    def command(self) -> str:
        """The subcommand (``mount``), "" when there is none."""
        return subcommand(self.argv)

    def flag(self, name: str) -> tuple[str, str] | None:
        """(value, where it came from) of a flag: the command line, else RCLONE_*; None when unset."""
        value = flag_value(self.argv, name)
        if value is not None:
            return value, name
        env = env_name(name)
        if env in self.environ:
            return self.environ[env], env
        return None


@dataclass(frozen=True)
class _Word:
    text: str
    after_flag: bool  # follows a flag we do not know without "=": may be that flag's value


def env_name(flag: str) -> str:
    """The variable rclone reads a flag from: ``--dir-cache-time`` → ``RCLONE_DIR_CACHE_TIME``."""
    return "RCLONE_" + flag.lstrip("-").upper().replace("-", "_")


def _parsed(argv: tuple[str, ...]) -> tuple[list[tuple[str, str]], list[_Word]]:
    """(flag name, value) pairs in order, and the other words, of ``argv[1:]``."""
    flags: list[tuple[str, str]] = []
    words: list[_Word] = []
    i, after_flag = 1, False
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            words.extend(_Word(rest, False) for rest in argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            words.append(_Word(arg, after_flag))
            after_flag = False
            continue
        name, eq, inline = arg.partition("=")
        after_flag = False
        if name in VALUE_FLAGS and not eq:
            inline = argv[i] if i < len(argv) else ""
            i += 1
        elif name in BOOL_FLAGS and not eq:
            inline = "true"
        elif name in OTHER_VALUE_FLAGS and not eq:
            i += 1
        elif not eq:
            after_flag = True  # "--config X": X is its value; "--read-only X": X is a word
        flags.append((name, inline))
    return flags, words


def flag_value(argv: tuple[str, ...], name: str) -> str | None:
    values = [value for flag, value in _parsed(argv)[0] if flag == name]
    return values[-1] if values else None


def _command_words(argv: tuple[str, ...]) -> tuple[str, list[str]]:
    """The subcommand and the words after it.

    Without rclone's whole flag table a word after an unknown flag may be that
    flag's value (``--config X``) or the subcommand (``--fast-list mount``): a
    mount command's name is taken as the subcommand, any other such word as a value.
    """
    words = _parsed(argv)[1]
    for index, word in enumerate(words):
        if word.text in MOUNT_COMMANDS or not word.after_flag:
            return word.text, [w.text for w in words[index + 1 :]]
    return "", []


def subcommand(argv: tuple[str, ...]) -> str:
    return _command_words(argv)[0]


def command_words(argv: tuple[str, ...]) -> tuple[str, list[str]]:
    """The subcommand and its arguments (``mount REMOTE MOUNTPOINT``), flags left out."""
    return _command_words(argv)


def serves(argv: tuple[str, ...], mount_point: str) -> bool:
    """``argv`` is an rclone mount command whose mount point is ``mount_point`` (a real path)."""
    if not argv or not os.path.basename(argv[0]).startswith("rclone"):
        return False
    command, rest = _command_words(argv)
    return command in MOUNT_COMMANDS and any(_same_path(arg, mount_point) for arg in rest)


def _same_path(arg: str, wanted: str) -> bool:
    if not arg.startswith("/") and not arg.startswith("."):
        return False
    return os.path.normpath(arg) == wanted or fsinfo.real(arg) == wanted


def _read_nul_list(path: str) -> list[bytes] | None:
    try:
        with open(path, "rb") as handle:
            return [item for item in handle.read().split(b"\0") if item]
    except OSError:
        return None


def rclone_processes_serving(mount_point: str, proc: str = "/proc") -> list[RcloneProcess]:
    """rclone processes whose command line mounts ``mount_point`` (as visible to us)."""
    wanted = fsinfo.real(mount_point)  # a hung mount must not hang doctor
    found: list[RcloneProcess] = []
    try:
        pids = sorted(int(name) for name in os.listdir(proc) if name.isdigit())
    except OSError:
        return []
    for pid in pids:
        raw = _read_nul_list(os.path.join(proc, str(pid), "cmdline"))
        if not raw:
            continue
        argv = tuple(os.fsdecode(a) for a in raw)
        if not serves(argv, wanted):
            continue
        # The flags read here may come from RCLONE_* variables; nothing else is kept (secrets).
        variables = _read_nul_list(os.path.join(proc, str(pid), "environ")) or []
        pairs = (os.fsdecode(item).partition("=") for item in variables)
        wanted_env = {env_name(flag) for flag in (*VALUE_FLAGS, *BOOL_FLAGS)}
        environ = {key: value for key, _, value in pairs if key in wanted_env}
        found.append(RcloneProcess(pid, argv, environ))
    return found


# ------------------------------------------------------------------ judging


@dataclass(frozen=True)
class _Duration:
    text: str  # as given, for messages
    seconds: float | None  # None: not readable
    origin: str  # the flag, the RCLONE_* variable, or "rclone's default"

    def describe(self, flag: str) -> str:
        if self.origin == flag:
            return f"{flag} {self.text}"
        if self.origin.startswith("RCLONE_"):
            return f"{flag} {self.text} (from {self.origin})"
        return f"{flag} {self.text} ({self.origin})"


def _duration(process: RcloneProcess, flag: str, default: str) -> _Duration:
    found = process.flag(flag)
    text, origin = found if found is not None else (default, "rclone's default")
    return _Duration(text, parse_duration(text), origin)


def _enabled(process: RcloneProcess, flag: str) -> bool:
    found = process.flag(flag)
    return found is not None and found[0] in _TRUE


def _rc_auth(process: RcloneProcess) -> bool:
    """The rc server has auth set up, or is told to go without (rclone's ``UsingAuth`` or ``NoAuth``)."""
    if _enabled(process, "--rc-no-auth"):
        return True
    return any((process.flag(name) or ("", ""))[0] for name in ("--rc-user", "--rc-htpasswd"))


def _needs_rc_auth(config: Config, process: RcloneProcess, version: tuple[int, int, int] | None) -> bool:
    """graylink calls vfs/refresh, and this rclone (>= 1.74) will refuse it: --rc without any auth flag."""
    if not config.mount.rclone_rc or version is None or version[:2] < AUTH_SINCE:
        return False
    return _enabled(process, "--rc") and not _rc_auth(process)


def flag_checks(config: Config, process: RcloneProcess, version: tuple[int, int, int] | None = None) -> list[Check]:
    """Warnings about an rclone mount's flags: they make graylink slow or blind, they do not break it.

    ``version``: the serving rclone's (rc ``core/version``), None when unknown."""
    checks: list[Check] = []
    cache = _duration(process, "--dir-cache-time", DEFAULT_DIR_CACHE)
    poll = _duration(process, "--poll-interval", DEFAULT_POLL)
    for value, flag in ((cache, "--dir-cache-time"), (poll, "--poll-interval")):
        if value.seconds is None or math.isnan(value.seconds):
            unreadable = said(N_("cannot read %(flag)s as a duration"), flag=value.describe(flag))
            checks.append(Check(NAME, False, unreadable, RECOMMENDED, warn=True))
    if cache.seconds is not None and cache.seconds < SHORT_DIR_CACHE:
        checks.append(
            Check(
                NAME,
                False,
                said(
                    N_(
                        "%(flag)s is shorter than an hour: every walk re-lists expired "
                        "folders through the Drive API, which is slow and rate-limited"
                    ),
                    flag=cache.describe("--dir-cache-time"),
                ),
                RECOMMENDED,
                warn=True,
            )
        )
    if poll.seconds is not None and poll.seconds <= 0:
        checks.append(
            Check(
                NAME,
                False,
                said(
                    N_(
                        "%(poll)s turns polling off: changes on the Drive stay invisible "
                        "through the mount until the directory cache expires (%(cache)s)"
                    ),
                    poll=poll.describe("--poll-interval"),
                    cache=cache.describe("--dir-cache-time"),
                ),
                RECOMMENDED,
                warn=True,
            )
        )
    elif poll.seconds is not None and cache.seconds is not None and SHORT_DIR_CACHE <= cache.seconds <= poll.seconds:
        checks.append(
            Check(
                NAME,
                False,
                said(
                    N_("%(poll)s is not shorter than %(cache)s: rclone wants it smaller"),
                    poll=poll.describe("--poll-interval"),
                    cache=cache.describe("--dir-cache-time"),
                ),
                RECOMMENDED,
                warn=True,
            )
        )
    if config.mount.rclone_rc and not _enabled(process, "--rc"):
        alone = said(N_(" (--rc-addr alone does not start it)")) if process.flag("--rc-addr") is not None else ""
        checks.append(
            Check(
                NAME,
                False,
                said(
                    N_(
                        "[mount] rclone_rc is set but the mount runs without --rc%(alone)s: vfs/refresh calls will fail"
                    ),
                    alone=alone,
                ),
                said(
                    N_(
                        "add --rc --rc-addr 127.0.0.1:5572 --rc-user/--rc-pass to the mount and set"
                        " [mount] rclone_rc_user / rclone_rc_pass to them (docs/rclone.md)"
                    )
                ),
                warn=True,
            )
        )
    if _needs_rc_auth(config, process, version):
        v = ".".join(str(n) for n in version or ())
        checks.append(
            Check(
                NAME,
                False,
                said(
                    N_(
                        "the mount runs --rc without --rc-no-auth, --rc-user or --rc-htpasswd: rclone %(version)s"
                        " (1.74 and later) refuses vfs/refresh without rc auth (403)"
                    ),
                    version=v,
                ),
                said(
                    N_(
                        "add --rc-user/--rc-pass to the mount and set [mount] rclone_rc_user / rclone_rc_pass to"
                        " them (docs/rclone.md); --rc-no-auth also works, but lets any local program call every rc"
                        " command"
                    )
                ),
                warn=True,
            )
        )
    if not checks:
        settings = f"{cache.describe('--dir-cache-time')}, {poll.describe('--poll-interval')}"
        checks.append(Check(NAME, True, said(N_("the mount's rclone flags suit graylink (%(flags)s)"), flags=settings)))
    if _enabled(process, "--fast-list"):
        checks.append(Check(NAME, True, FAST_LIST_NOTE))
    return checks


# rclone cmd/mountlib logs "--fast-list does nothing on a mount" (since 1.57), and
# vfs/refresh recursive=true reads through walk.NewDirTree, which takes the
# backend's ListR whenever it has one (since 1.46), flag or not.
FAST_LIST_NOTE = said(
    N_(
        "--fast-list does nothing on a mount (rclone logs so): the whole-source refresh before a full walk "
        "uses the backend's recursive listing without it (docs/rclone.md)"
    )
)
