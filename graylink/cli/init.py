"""``graylink init``: a guided setup that writes a working graylink.ini and ends with doctor's verdict.

It finds instead of asking where it can (:mod:`graylink.report.discover`):
rclone mounts and the remote each serves, rclone's remote control, Emby /
Jellyfin and Plex on this host, their library folders (a ``path_map``
proposal), a Drive remote (the Drive feed). Every question has a default
(Enter accepts it); keys are read hidden and checked at once. Nothing is
written before the last answer: Ctrl-C leaves nothing behind. The file is
written 0600 (it holds keys) and an existing one is replaced only with
``--force``. ``--yes`` asks nothing: flags, then what was found, then defaults.

It speaks the terminal's language (:func:`graylink.i18n.from_environ`: Simplified
Chinese for a ``zh`` locale, else English; words in ``graylink/cli/locale``);
the file it writes is the same in every language. doctor's check lines are
translated here, at display time, from the msgid each check keeps
(:func:`graylink.checks.said`): ``graylink doctor`` itself stays English. The
config validator's messages, and what a system says inside a line (an errno's
text, an HTTP status), stay English.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from graylink import i18n
from graylink.checks import Check, translated
from graylink.cli.app import INTERRUPTED, AppContext, fail
from graylink.config import parse_raw, validate
from graylink.config.schema import DEFAULT_CONFIG_PATHS
from graylink.errors import ConfigError

if TYPE_CHECKING:
    # Imported where they are used: they bring requests and every checker,
    # which every other command (and --help) would otherwise load at start.
    from graylink.report import discover

DEFAULT_DATABASE = "~/.local/share/graylink/graylink.db"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
YES = ("y", "yes", "是", "好")
NO = ("n", "no", "否", "不")


def terminal_words() -> i18n.Words:
    """init's words in the terminal's language (LANGUAGE, LC_ALL, LC_MESSAGES, LANG: gettext's order)."""
    return i18n.words(LOCALE_DIR, i18n.from_environ(os.environ))


@dataclass
class Answers:
    """The config being built, section by section (only keys that differ from graylink's defaults)."""

    sections: dict[str, dict[str, str]] = field(default_factory=dict)

    def set(self, section: str, key: str, value: str) -> None:
        self.sections.setdefault(section, {})[key] = value

    def text(self) -> str:
        lines = ["# Written by 'graylink init'; graylink.ini.example lists every key.", ""]
        for section, values in self.sections.items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {value}" for key, value in values.items())
            lines.append("")
        return "\n".join(lines)


def config_path(app: AppContext) -> str:
    chosen = app.config_path or os.environ.get("GRAYLINK_CONFIG") or DEFAULT_CONFIG_PATHS[1]
    return os.path.abspath(os.path.expanduser(chosen))


def _plain(w: i18n.Words, value: str, what: str) -> str:
    """A value the INI reader reads back unchanged: one line, no inline comment."""
    if "\n" in value or "\r" in value or " ;" in value or " #" in value or value != value.strip():
        raise ConfigError(
            w.gettext(
                "%(what)s %(value)s cannot be written to graylink.ini (a newline, ' ;' or ' #' in it)",
                what=what,
                value=repr(value),
            )
        )
    return value


def _validated(w: i18n.Words, raw: dict[str, dict[str, str]]) -> None:
    """The answers make a valid config; the validator's own words (English, naming keys) after our lead."""
    try:
        validate(parse_raw(raw))
    except ConfigError as exc:
        raise ConfigError(w.gettext("not a valid config: %(problem)s", problem=str(exc))) from exc


def _default_target(source: str) -> str:
    source = source.rstrip("/") or "/"
    return os.path.join(os.path.dirname(source), os.path.basename(source) + "-links")


class Asker:
    """Questions with defaults; with ``--yes`` every default is taken without asking."""

    def __init__(self, assume_yes: bool, words: i18n.Words = i18n.ENGLISH) -> None:
        self.assume_yes = assume_yes
        self.words = words

    def gettext(self, message: str, **values: Any) -> str:
        return self.words.gettext(message, **values)

    def text(self, question: str, default: str, hidden: bool = False) -> str:
        if self.assume_yes:
            return default
        shown = "" if not default else (" [" + self.gettext("hidden") + "]" if hidden else "")
        answer = click.prompt(question + shown, default=default, show_default=not hidden, hide_input=hidden, type=str)
        return str(answer).strip()

    def yes(self, question: str, default: bool = True) -> bool:
        """click.confirm's ``[Y/n]``, with its one English line ("Error: invalid input") in our words."""
        if self.assume_yes:
            return default
        while True:
            answer = click.prompt(
                f"{question} [{'Y/n' if default else 'y/N'}]", default="", show_default=False, type=str
            )
            answer = str(answer).strip().lower()
            if not answer:
                return default
            if answer in YES or answer in NO:
                return answer in YES
            self.say(self.gettext("Please answer y or n."))

    def say(self, line: str) -> None:
        click.echo(line)

    def checks(self, checks: Iterable[Check]) -> None:
        """doctor's lines in our words: a message its check marked (graylink.checks.said) from this
        catalog, the rest (a config error, a system's reason inside a message) as doctor says it."""
        from graylink.report.doctor import failed

        gettext = self.words.catalog.gettext
        for check in checks:
            mark = "✔" if check.ok else "!" if not failed(check) else "✘"
            self.say(f"{mark} {check.name}: {translated(check.message, gettext)}")
            if not check.ok and check.hint:
                self.say("    " + self.gettext("hint: %(hint)s", hint=translated(check.hint, gettext)))


def _paths(ask: Asker, answers: Answers, opts: dict[str, str | None], mounts: list[discover.RcloneMount]) -> str:
    for mount in mounts:
        where = {"mount": mount.mount_point, "remote": mount.remote or "?", "rc": mount.rc_url}
        if mount.rc_url:
            ask.say(ask.gettext("rclone mount found: %(mount)s (remote %(remote)s, rc at %(rc)s)", **where))
        else:
            ask.say(ask.gettext("rclone mount found: %(mount)s (remote %(remote)s, rc off)", **where))
    if not mounts:
        ask.say(ask.gettext("No rclone mount found: any folder can be the source."))
    default_source = opts["source"] or (mounts[0].mount_point if mounts else "")
    while True:
        asked = ask.text(ask.gettext("Source folder (your rclone mount)"), default_source)
        source = os.path.abspath(os.path.expanduser(asked))
        asked = ask.text(ask.gettext("Link tree (where the links go)"), opts["target"] or _default_target(source))
        target = os.path.abspath(os.path.expanduser(asked))
        database = ask.text(ask.gettext("Database"), opts["database"] or DEFAULT_DATABASE)
        raw = {"paths": {"source": source, "target": target, "database": database}}
        problem = ""
        if not os.path.isdir(source):
            problem = ask.gettext("%(path)s is not a folder", path=source)
        else:
            try:
                for key, value in raw["paths"].items():
                    _plain(ask.words, value, f"[paths] {key}")
                _validated(ask.words, raw)
            except ConfigError as exc:
                problem = str(exc)
        if not problem:
            break
        if ask.assume_yes:
            raise ConfigError(problem)
        ask.say("  " + ask.gettext("%(problem)s; try again.", problem=problem))
        default_source = source
    for key, value in raw["paths"].items():
        answers.set("paths", key, value)
    return source


def _rclone(ask: Asker, answers: Answers, source: str, mounts: list[discover.RcloneMount]) -> None:
    from graylink.report import discover
    mount = next((m for m in mounts if os.path.realpath(m.mount_point) == os.path.realpath(source)), None)
    if mount is None:
        return
    reread = ask.gettext("Ask rclone (%(url)s) to re-read changed folders at once?", url=mount.rc_url)
    if mount.rc_url and ask.yes(reread, True):
        answers.set("mount", "rclone_rc", mount.rc_url)
        if mount.rc_user:
            # The mount's --rc-user (docs/rclone.md): without it vfs/refresh answers 401. The password
            # is asked, never read from rclone's command line; with --yes it is left to
            # GRAYLINK_MOUNT_RCLONE_RC_PASS, and doctor says when it is missing.
            answers.set("mount", "rclone_rc_user", _plain(ask.words, mount.rc_user, "[mount] rclone_rc_user"))
            asked = ask.gettext("Password of rclone's remote control (--rc-pass of user %(user)s)", user=mount.rc_user)
            password = ask.text(asked, "", hidden=True)
            if password:
                answers.set("mount", "rclone_rc_pass", _plain(ask.words, password, "[mount] rclone_rc_pass"))
    drive = bool(mount.remote) and discover.is_drive_remote(mount.remote, mount.rclone_config)
    feed = ask.gettext(
        "Watch Google Drive's change feed for remote %(remote)s (rclone's own token)?", remote=mount.remote
    )
    if drive and ask.yes(feed, True):
        answers.set("drive", "enabled", "yes")
        answers.set("drive", "remote", mount.remote)
        if mount.rclone_config:
            answers.set("drive", "rclone_config", mount.rclone_config)


@dataclass(frozen=True)
class Server:
    section: str  # emby | plex
    name: str  # Emby/Jellyfin | Plex
    secret_key: str  # api_key | token
    probe: discover.Found | None


def _server(ask: Asker, answers: Answers, server: Server, url_flag: str | None, key_flag: str | None) -> None:
    from graylink.report import discover
    from graylink.report.doctor import failed
    source, target = answers.sections["paths"]["source"], answers.sections["paths"]["target"]
    name, emby = server.name, server.section == "emby"
    if server.probe is not None:
        ask.say(ask.gettext("%(label)s found at %(url)s", label=server.probe.label, url=server.probe.url))
    default_url = url_flag or (server.probe.url if server.probe else "")
    url = ask.text(ask.gettext("%(server)s URL (empty: none)", server=name), default_url)
    if not url:
        return
    check = discover.check_emby if emby else discover.check_plex
    key = key_flag or ""
    while True:
        asked = ask.gettext("%(server)s API key", server=name) if emby else ask.gettext("%(server)s token", server=name)
        key = ask.text(asked, key, hidden=True)
        checks, locations = check(url, key, source, target)
        ask.checks(checks)
        bad = [c for c in checks if failed(c)]
        if not bad:
            break
        if ask.assume_yes:
            raise ConfigError(
                ask.gettext("%(server)s at %(url)s: %(problem)s", server=name, url=url, problem=bad[0].message)
            )
        if not ask.yes(ask.gettext("Try another key?") if emby else ask.gettext("Try another token?"), True):
            ask.say("  " + ask.gettext("%(server)s left out.", server=name))
            return
        key = ""
    answers.set(server.section, "url", _plain(ask.words, url, f"[{server.section}] url"))
    secret = _plain(ask.words, key, f"[{server.section}] {server.secret_key}")
    answers.set(server.section, server.secret_key, secret)
    proposal = discover.propose_path_map(target, source, locations)
    if proposal or locations:
        asked = ask.gettext("%(server)s path_map (link tree=as %(server)s sees it; empty: none)", server=name)
        path_map = ask.text(asked, proposal)
        if path_map:
            answers.set(server.section, "path_map", _plain(ask.words, path_map, f"[{server.section}] path_map"))


def write_config(path: str, text: str) -> None:
    """Create ``path`` 0600 (it may hold keys), atomically: a reader never sees half a file."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    temp = f"{path}.init-{os.getpid()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def run_init(app: AppContext, opts: dict[str, str | None], assume_yes: bool, force: bool, w: i18n.Words) -> int:
    from graylink.report import discover
    from graylink.report.doctor import failed, run_checks
    path = config_path(app)
    if os.path.exists(path) and not force:
        fail(w.gettext("%(path)s exists; graylink init never replaces a config (--force replaces it)", path=path), 2)
    ask = Asker(assume_yes, w)
    answers = Answers()
    ask.say(
        ask.gettext(
            "graylink init: writing %(path)s. Enter takes the [default]; Ctrl-C stops and writes nothing.", path=path
        )
    )
    mounts = discover.rclone_mounts()
    source = _paths(ask, answers, opts, mounts)
    _rclone(ask, answers, source, mounts)
    emby = Server("emby", "Emby/Jellyfin", "api_key", None if opts["emby_url"] else discover.probe_emby())
    _server(ask, answers, emby, opts["emby_url"], opts["emby_key"])
    plex = Server("plex", "Plex", "token", None if opts["plex_url"] else discover.probe_plex())
    _server(ask, answers, plex, opts["plex_url"], opts["plex_token"])
    _validated(ask.words, answers.sections)
    if not ask.yes(ask.gettext("Write %(path)s?", path=path), True):
        ask.say(ask.gettext("Nothing written."))
        return 1
    write_config(path, answers.text())
    ask.say(ask.gettext("Wrote %(path)s (mode 0600). graylink doctor says:", path=path))
    checks = run_checks(path)
    ask.checks(checks)
    bad = [c for c in checks if failed(c)]
    if bad:
        ask.say(ask.gettext("%(n)s problem(s) found: fix them in %(path)s", n=len(bad), path=path))
    else:
        ask.say(ask.gettext("All checks passed."))
    ask.say(
        ask.gettext(
            "Next: run 'graylink -c %(path)s reconcile' once, then keep it running as a service: "
            "systemd or Docker (docs/deployment.md).",
            path=path,
        )
    )
    return 1 if bad else 0


@click.command("init")
@click.option("--source", metavar="PATH", help="The folder (rclone mount) to link from.")
@click.option("--target", metavar="PATH", help="Where the links go (default: beside the source, SOURCE-links).")
@click.option("--database", metavar="PATH", help=f"The database (default {DEFAULT_DATABASE}).")
@click.option("--emby-url", metavar="URL", help="Emby or Jellyfin, e.g. http://127.0.0.1:8096.")
@click.option("--emby-key", metavar="KEY", help="Its API key (prefer the prompt: a flag shows in ps).")
@click.option("--plex-url", metavar="URL", help="Plex, e.g. http://127.0.0.1:32400.")
@click.option("--plex-token", metavar="TOKEN", help="Its X-Plex-Token.")
@click.option("-y", "--yes", "assume_yes", is_flag=True, help="Ask nothing: take the flags, what was found, defaults.")
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@click.pass_obj
def init(app: AppContext, /, assume_yes: bool, force: bool, **opts: str | None) -> None:
    """Write a graylink.ini by answering a few questions (or from flags with --yes), then run doctor."""
    w = terminal_words()
    try:
        code = run_init(app, opts, assume_yes, force, w)
    except (click.Abort, KeyboardInterrupt, EOFError):
        click.echo("", err=True)
        fail(w.gettext("interrupted: nothing written"), INTERRUPTED)
    except ConfigError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        fail(w.gettext("cannot write the config: %(reason)s: %(file)s", reason=reason, file=exc.filename or ""), 1)
    sys.exit(code)
