"""``graylink init``: a guided setup that writes a working graylink.ini and ends with doctor's verdict.

It finds instead of asking where it can (:mod:`graylink.report.discover`):
rclone mounts and the remote each serves, rclone's remote control, Emby /
Jellyfin and Plex on this host, their library folders (a ``path_map``
proposal), a Drive remote (the Drive feed). Every question has a default
(Enter accepts it); keys are read hidden and checked at once. Nothing is
written before the last answer: Ctrl-C leaves nothing behind. The file is
written 0600 (it holds keys) and an existing one is replaced only with
``--force``. ``--yes`` asks nothing: flags, then what was found, then defaults.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import click

from graylink.cli.app import AppContext, fail
from graylink.config import parse_raw, validate
from graylink.config.schema import DEFAULT_CONFIG_PATHS
from graylink.errors import ConfigError
from graylink.report import discover
from graylink.report.doctor import failed, render, run_checks

DEFAULT_DATABASE = "~/.local/share/graylink/graylink.db"
NEXT_STEP = (
    "Next: run 'graylink -c {path} reconcile' once, then keep it running as a service: "
    "systemd or Docker (docs/deployment.md)."
)


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


def _plain(value: str, what: str) -> str:
    """A value the INI reader reads back unchanged: one line, no inline comment."""
    if "\n" in value or "\r" in value or " ;" in value or " #" in value or value != value.strip():
        raise ConfigError(f"{what} {value!r} cannot be written to graylink.ini (a newline, ' ;' or ' #' in it)")
    return value


def _default_target(source: str) -> str:
    source = source.rstrip("/") or "/"
    return os.path.join(os.path.dirname(source), os.path.basename(source) + "-links")


class Asker:
    """Questions with defaults; with ``--yes`` every default is taken without asking."""

    def __init__(self, assume_yes: bool) -> None:
        self.assume_yes = assume_yes

    def text(self, question: str, default: str, hidden: bool = False) -> str:
        if self.assume_yes:
            return default
        shown = "" if not default else (" [hidden]" if hidden else "")
        answer = click.prompt(
            question + shown, default=default, show_default=not hidden, hide_input=hidden, type=str
        )
        return str(answer).strip()

    def yes(self, question: str, default: bool = True) -> bool:
        return default if self.assume_yes else click.confirm(question, default=default)

    def say(self, line: str) -> None:
        click.echo(line)


def _paths(ask: Asker, answers: Answers, opts: dict[str, str | None], mounts: list[discover.RcloneMount]) -> str:
    for mount in mounts:
        rc = f", rc at {mount.rc_url}" if mount.rc_url else ", rc off"
        ask.say(f"rclone mount found: {mount.mount_point} (remote {mount.remote or '?'}{rc})")
    if not mounts:
        ask.say("No rclone mount found: any folder can be the source.")
    default_source = opts["source"] or (mounts[0].mount_point if mounts else "")
    while True:
        source = os.path.abspath(os.path.expanduser(ask.text("Source folder (your rclone mount)", default_source)))
        target = os.path.abspath(
            os.path.expanduser(ask.text("Link tree (where the links go)", opts["target"] or _default_target(source)))
        )
        database = ask.text("Database", opts["database"] or DEFAULT_DATABASE)
        raw = {"paths": {"source": source, "target": target, "database": database}}
        problem = ""
        if not os.path.isdir(source):
            problem = f"{source} is not a folder"
        else:
            try:
                for key, value in raw["paths"].items():
                    _plain(value, f"[paths] {key}")
                validate(parse_raw(raw))
            except ConfigError as exc:
                problem = str(exc)
        if not problem:
            break
        if ask.assume_yes:
            raise ConfigError(problem)
        ask.say(f"  {problem}; try again.")
        default_source = source
    for key, value in raw["paths"].items():
        answers.set("paths", key, value)
    return source


def _rclone(ask: Asker, answers: Answers, source: str, mounts: list[discover.RcloneMount]) -> None:
    mount = next((m for m in mounts if os.path.realpath(m.mount_point) == os.path.realpath(source)), None)
    if mount is None:
        return
    if mount.rc_url and ask.yes(f"Ask rclone ({mount.rc_url}) to re-read changed folders at once?", True):
        answers.set("mount", "rclone_rc", mount.rc_url)
    drive = bool(mount.remote) and discover.is_drive_remote(mount.remote, mount.rclone_config)
    if drive and ask.yes(f"Watch Google Drive's change feed for remote {mount.remote} (rclone's own token)?", True):
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
    source, target = answers.sections["paths"]["source"], answers.sections["paths"]["target"]
    if server.probe is not None:
        ask.say(f"{server.probe.label} found at {server.probe.url}")
    default_url = url_flag or (server.probe.url if server.probe else "")
    url = ask.text(f"{server.name} URL (empty: none)", default_url)
    if not url:
        return
    check = discover.check_emby if server.section == "emby" else discover.check_plex
    key = key_flag or ""
    while True:
        key = ask.text(f"{server.name} {'API key' if server.section == 'emby' else 'token'}", key, hidden=True)
        checks, locations = check(url, key, source, target)
        for line in render(checks):
            ask.say("  " + line)
        bad = [c for c in checks if failed(c)]
        if not bad:
            break
        if ask.assume_yes:
            raise ConfigError(f"{server.name} at {url}: {bad[0].message}")
        if not ask.yes(f"Try another {'key' if server.section == 'emby' else 'token'}?", True):
            ask.say(f"  {server.name} left out.")
            return
        key = ""
    answers.set(server.section, "url", _plain(url, f"[{server.section}] url"))
    answers.set(server.section, server.secret_key, _plain(key, f"[{server.section}] {server.secret_key}"))
    proposal = discover.propose_path_map(target, source, locations)
    if proposal or locations:
        path_map = ask.text(f"{server.name} path_map (link tree=as {server.name} sees it; empty: none)", proposal)
        if path_map:
            answers.set(server.section, "path_map", _plain(path_map, f"[{server.section}] path_map"))


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


def run_init(app: AppContext, opts: dict[str, str | None], assume_yes: bool, force: bool) -> int:
    path = config_path(app)
    if os.path.exists(path) and not force:
        fail(f"{path} exists; graylink init never replaces a config (--force replaces it)", 2)
    ask = Asker(assume_yes)
    answers = Answers()
    ask.say(f"graylink init: writing {path}. Enter takes the [default]; Ctrl-C stops and writes nothing.")
    mounts = discover.rclone_mounts()
    source = _paths(ask, answers, opts, mounts)
    _rclone(ask, answers, source, mounts)
    emby = Server("emby", "Emby/Jellyfin", "api_key", None if opts["emby_url"] else discover.probe_emby())
    _server(ask, answers, emby, opts["emby_url"], opts["emby_key"])
    plex = Server("plex", "Plex", "token", None if opts["plex_url"] else discover.probe_plex())
    _server(ask, answers, plex, opts["plex_url"], opts["plex_token"])
    validate(parse_raw(answers.sections))
    if not ask.yes(f"Write {path}?", True):
        ask.say("Nothing written.")
        return 1
    write_config(path, answers.text())
    ask.say(f"Wrote {path} (mode 0600). graylink doctor says:")
    checks = run_checks(path)
    for line in render(checks):
        ask.say(line)
    bad = [c for c in checks if failed(c)]
    ask.say(f"{len(bad)} problem(s) found: fix them in {path}" if bad else "All checks passed.")
    ask.say(NEXT_STEP.format(path=path))
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
    try:
        code = run_init(app, opts, assume_yes, force)
    except (click.Abort, KeyboardInterrupt, EOFError):
        click.echo("", err=True)
        fail("interrupted: nothing written", 130)
    except ConfigError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"cannot write the config: {exc.strerror or exc}: {exc.filename or ''}", 1)
    sys.exit(code)
