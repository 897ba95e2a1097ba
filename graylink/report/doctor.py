"""``graylink doctor``: one ✔ / ✘ line per thing graylink depends on, each ✘ with a hint.

The checks only read: they never create the target, the database or a token.
The mount, Emby and Drive pieces contribute their own checks.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace

from graylink.checks import N_, Check, said
from graylink.config import SECRET_KEYS, Config, load_config
from graylink.drive.checks import doctor_checks as drive_checks
from graylink.errors import ConfigError, GraylinkError
from graylink.links import ownership
from graylink.links.claim_report import claims_check
from graylink.notify.emby_doctor import doctor_checks as emby_checks
from graylink.notify.plex_doctor import doctor_checks as plex_checks
from graylink.store.db import Store
from graylink.store.lock import holder
from graylink.store.readonlyfs import on_read_only_fs
from graylink.store.schema import MIGRATIONS
from graylink.system import deadline, fsinfo
from graylink.system.fsinfo import TRUSTED_FS
from graylink.system.secrets import SHORT, is_short
from graylink.triggers.mount import LIST_TIMEOUT
from graylink.triggers.mount_checks import doctor_checks as mount_checks

ConfigLoader = Callable[[], Config]


def check_config(path: str | None) -> tuple[Check, Config | None]:
    try:
        config = load_config(path)
    except GraylinkError as exc:
        return Check(
            "config", False, str(exc), said(N_("fix the file (graylink.ini.example documents every key)"))
        ), None
    where = config.file or said(N_("environment variables only"))
    return Check("config", True, said(N_("read %(file)s"), file=where)), config


@dataclass(frozen=True)
class SourceLook:
    """One bounded look at the source, shared by every check that needs it.

    A frozen mount (rclone under SIGSTOP) blocks any system call on it in the
    kernel: doctor looks once, under the mount check's deadline, and the checks
    after it do not touch a source that did not answer.
    """

    answered: bool
    exists: bool = False
    is_dir: bool = False
    entries: int = 0
    error: OSError | None = None


def _look(source: str) -> SourceLook:
    try:
        with os.scandir(source) as entries:
            return SourceLook(True, True, True, sum(1 for _ in entries))
    except (FileNotFoundError, NotADirectoryError) as exc:
        exists = os.path.lexists(source)
        return SourceLook(True, exists, False, error=None if not exists else exc)
    except OSError as exc:
        return SourceLook(True, True, False, error=exc)


def look_at_source(config: Config, timeout: float = LIST_TIMEOUT) -> SourceLook:
    try:
        return deadline.call(
            lambda: _look(config.paths.source), timeout, f"looking at the source {config.paths.source}"
        )
    except deadline.NoAnswer:
        return SourceLook(False)


def check_source(config: Config, look: SourceLook | None = None) -> Check:
    source = config.paths.source
    look = look_at_source(config) if look is None else look
    if not look.answered:
        return Check(
            "source",
            False,
            said(
                N_("the mount does not answer: looking at %(source)s took more than %(seconds)ss"),
                source=source,
                seconds=f"{LIST_TIMEOUT:g}",
            ),
            said(
                N_(
                    "the rclone process is hung or stopped: restart the mount"
                    " (e.g. 'fusermount3 -uz %(source)s' then your rclone mount command)"
                ),
                source=source,
            ),
        )
    if not look.exists:
        hint = said(N_("set [paths] source; is the rclone mount up?"))
        return Check("source", False, said(N_("%(path)s does not exist"), path=source), hint)
    if look.error is not None and not look.is_dir and isinstance(look.error, NotADirectoryError):
        hint = said(N_("set [paths] source to a folder"))
        return Check("source", False, said(N_("%(path)s is not a folder"), path=source), hint)
    if look.error is not None:
        return Check(
            "source",
            False,
            said(N_("cannot list %(source)s: %(reason)s"), source=source, reason=str(look.error.strerror)),
            said(N_("check permissions; remount if the mount died")),
        )
    if look.entries == 1:
        return Check("source", True, said(N_("%(source)s is readable (1 entry at the top)"), source=source))
    readable = said(N_("%(source)s is readable (%(n)s entries at the top)"), source=source, n=look.entries)
    return Check("source", True, readable)


def _nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_writable_place(name: str, path: str, what: str) -> Check:
    """``path`` is a writable folder, or can be created as one."""
    if os.path.isdir(path):
        if os.access(path, os.W_OK | os.X_OK):
            return Check(name, True, said(N_("%(path)s is writable"), path=path))
        hint = said(N_("give the graylink user write access to the %(what)s"), what=what)
        return Check(name, False, said(N_("%(path)s is not writable"), path=path), hint)
    if os.path.lexists(path):
        hint = said(N_("point [paths] at a folder for the %(what)s"), what=what)
        return Check(name, False, said(N_("%(path)s exists but is not a folder"), path=path), hint)
    base = _nearest_existing(path)
    if os.path.isdir(base) and os.access(base, os.W_OK | os.X_OK):
        return Check(
            name, True, said(N_("%(path)s does not exist yet; it will be created (in %(base)s)"), path=path, base=base)
        )
    hint = said(N_("create the %(what)s folder"), what=what)
    return Check(
        name, False, said(N_("%(path)s cannot be created: %(base)s is not writable"), path=path, base=base), hint
    )


def check_database(config: Config) -> Check:
    from graylink.store.backup import inspect_database

    database = config.paths.database
    if not os.path.exists(database):
        place = check_writable_place("database", os.path.dirname(database), said(N_("database")))
        if not place.ok:
            failed = said(N_("%(path)s cannot be created: %(reason)s"), path=database, reason=place.message)
            return Check("database", False, failed, place.hint)
        return Check(
            "database", True, said(N_("%(path)s does not exist yet; the first reconcile creates it"), path=database)
        )
    try:
        info = inspect_database(database)
    except GraylinkError as exc:
        return Check(
            "database",
            False,
            str(exc),
            said(N_("restore a backup with 'graylink db restore FILE', or move it away to rebuild")),
        )
    known = [name for name, _ in MIGRATIONS]
    pending = [name for name in known if name not in info.migrations]
    version = f"schema {len(info.migrations)}/{len(known)}"
    if on_read_only_fs(database):
        return Check(
            "database",
            False,
            said(N_("%(path)s is on a read-only filesystem (%(version)s)"), path=database, version=version),
            said(N_("remount it read-write, or set [paths] database on a writable disk")),
        )
    if not os.access(database, os.W_OK):
        unwritable = said(N_("%(path)s is not writable (%(version)s)"), path=database, version=version)
        return Check("database", False, unwritable, said(N_("fix its owner or mode")))
    detail = said(N_("; %(n)s upgrade(s) apply at the next reconcile"), n=len(pending)) if pending else ""
    counts = {"dirs": info.dirs, "files": info.files, "links": info.links}
    shown = N_("%(path)s: %(version)s%(detail)s; %(dirs)s folders, %(files)s files, %(links)s links")
    return Check("database", True, said(shown, path=database, version=version, detail=detail, **counts))


def check_filesystem(config: Config, look: SourceLook | None = None) -> Check:
    source = config.paths.source
    setting = config.scan.trust_dir_mtime
    if look is not None and look.answered and not look.exists:
        # The parent's filesystem says nothing of a mount that is not there.
        unknown = said(N_("%(source)s does not exist: its filesystem is unknown"), source=source)
        return Check("filesystem", False, unknown, said(N_("see the source line")))
    _, entry = fsinfo.locate(source, resolve=look is None or look.answered)
    kind = entry.fs_type if entry else "unknown"
    trusted = fsinfo.trusts(kind, setting)
    if trusted:
        how = said(N_("trusted: unchanged folders are not re-listed"))
    else:
        how = said(N_("not trusted: every folder is re-listed each walk"))
    if setting != "auto":
        how = said(N_("%(how)s ([scan] trust_dir_mtime = %(setting)s)"), how=how, setting=setting)
    if setting == "yes" and kind not in TRUSTED_FS:
        return Check(
            "filesystem",
            False,
            said(N_("%(source)s is on %(kind)s, and folder mtimes are %(how)s"), source=source, kind=kind, how=how),
            said(
                N_(
                    "on rclone/FUSE/network mounts folder mtimes do not change when files are added: "
                    "set [scan] trust_dir_mtime = auto"
                )
            ),
        )
    return Check(
        "filesystem",
        True,
        said(N_("%(source)s is on %(kind)s; folder mtimes %(how)s"), source=source, kind=kind, how=how),
    )


def check_service(config: Config) -> Check:
    pid = holder(config.paths.database)
    if pid is None:
        return Check("service", True, said(N_("no graylink service holds the database")))
    who = f"pid {pid}" if pid else said(N_("a process"))
    return Check("service", True, said(N_("the service runs (%(who)s); writing commands wait for it to stop"), who=who))


def check_log(config: Config) -> Check | None:
    if not config.log.file:
        return None
    path = config.log.file
    if os.path.exists(path):
        if os.access(path, os.W_OK):
            return Check("log", True, f"{path} is writable ({config.log.format})")
        return Check("log", False, f"{path} is not writable", "fix its owner or mode, or change [log] file")
    place = check_writable_place("log", os.path.dirname(path), said(N_("log file")))
    return Check("log", place.ok, f"{path}: {place.message}", place.hint)


def _guarded(name: str, checks: Callable[[], list[Check]]) -> list[Check]:
    try:
        return list(checks())
    except Exception as exc:  # one broken check must not hide the others
        return [Check(name, False, f"the check itself failed: {exc.__class__.__name__}: {exc}")]


def check_secrets(config: Config) -> Check | None:
    """A warning for each secret of fewer than SHORT characters: it is weak, and logs mask it only as a value."""
    places = [
        f"[{section}] {key}"
        for section, key in sorted(SECRET_KEYS)
        if section != "alerts" and is_short(str(getattr(getattr(config, section), key)))
    ]
    for server in config.servers:  # the named ones: [emby NAME] api_key, [plex NAME] token
        key = "api_key" if server.kind == "emby" else "token"
        if server.name and is_short(str(getattr(server.settings, key))):
            places.append(f"{server.section} {key}")
    if not places:
        return None
    return Check(
        "config.secrets",
        False,
        f"{', '.join(places)}: shorter than {SHORT} characters, a weak secret (logs and pages mask it only where it"
        " stands as a value)",
        "use the server's real key / a long random token",
        warn=True,
    )


def run_checks(config_path: str | None, library: str | None = None) -> list[Check]:
    first, config = check_config(config_path)
    checks = [first]
    if config is None:
        return checks
    weak = check_secrets(config)
    if weak is not None:
        checks.append(weak)
    try:
        views = [config.library(library.lower())] if library else config.each_library()
    except ConfigError as exc:
        return [*checks, Check("config.library", False, str(exc))]
    for view in views:
        found = _library_checks(view)
        if len(config.libraries) > 1:  # each line says which library it is about
            found = [replace(check, name=f"{view.name}: {check.name}") for check in found]
        checks.extend(found)
    return checks


def _library_checks(config: Config) -> list[Check]:
    checks: list[Check] = []
    look = look_at_source(config)
    checks.append(check_source(config, look))
    checks.append(check_writable_place("target", config.paths.target, said(N_("link tree"))))
    checks.append(check_database(config))
    library = ownership.doctor_check(config)
    if library is not None:
        checks.append(library)
    claimed = claims_check(config)
    if claimed is not None:
        checks.append(claimed)
    checks.append(check_filesystem(config, look))
    checks.append(check_service(config))
    log_check = check_log(config)
    if log_check is not None:
        checks.append(log_check)
    checks.extend(_guarded("mount", lambda: _mount_checks(config, look)))
    checks.extend(_server_checks(config))
    if config.drive.enabled:
        checks.extend(_guarded("drive", lambda: drive_checks(config)))
    checks.extend(_guarded("web", lambda: _web_checks(config)))
    return checks


def _server_checks(config: Config) -> list[Check]:
    """Each media server the library is told about; the named ones as a view in which it is [emby] / [plex]."""
    if not config.servers:
        return _guarded("emby", lambda: emby_checks(replace(config, emby=replace(config.emby, url=""))))
    checks: list[Check] = []
    for server in config.servers:
        if server.kind == "emby":
            view = replace(config, emby=server.emby)
            found = _guarded(server.key, lambda view=view: emby_checks(view))  # type: ignore[misc]
        else:
            view = replace(config, plex=server.plex)
            found = _guarded(server.key, lambda view=view: plex_checks(view))  # type: ignore[misc]
        if server.name:
            found = [replace(check, name=f"{server.key}: {check.name}") for check in found]
        checks.extend(found)
    return checks


def _web_checks(config: Config) -> list[Check]:
    if not config.web.listen and not config.alerts.urls:
        return []
    from graylink.report.web_checks import alert_checks, web_checks

    return web_checks(config) + alert_checks(config)


@contextmanager
def _index_for_reading(config: Config) -> Iterator[Store]:
    """The index, read-only; an empty scratch one when there is none (yet) or it is unusable."""
    store: Store | None = None
    if os.path.exists(config.paths.database):
        with suppress(GraylinkError):
            store = Store(config.paths.database, readonly=True)
    if store is not None:
        try:
            yield store
        finally:
            store.close()
        return
    with tempfile.TemporaryDirectory(prefix="graylink-doctor-") as tmp, Store(os.path.join(tmp, "empty.db")) as empty:
        yield empty


def _mount_checks(config: Config, look: SourceLook) -> list[Check]:
    # The mount check reads the index (was the source a mount point? does it hold files?).
    with _index_for_reading(config) as store:
        return mount_checks(config, store, answered=look.answered)


def failed(check: Check) -> bool:
    """A ✘ that fails doctor (a warning is shown but does not fail it)."""
    return check.failed


def render(checks: Iterable[Check]) -> list[str]:
    lines = []
    for check in checks:
        mark = "✔" if check.ok else "!" if not failed(check) else "✘"
        lines.append(f"{mark} {check.name}: {check.message}")
        if not check.ok and check.hint:
            lines.append(f"    hint: {check.hint}")
    return lines
