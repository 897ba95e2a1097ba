"""The library browser's view of one folder: its subfolders and files, from the database only.

Each subfolder with the links graylink owns under it, its open problems and
its pending dirty marks; each file with its state -- linked, not a video,
excluded, waiting for a link, conflict, failed -- and, where a media server
is told, that server's state of the change (pending, confirmed, stuck).
Nothing here lists the source: a page must not wait on a hung mount.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from graylink.config import Config
from graylink.source.rules import Rules
from graylink.store.db import Store, join, parent_of, subtree_bounds

SERVER_STATES = {
    "queued": "pending",
    "sent": "pending",
    "resent": "pending",
    "confirmed": "confirmed",
    "stuck": "stuck",
}
MAX_FILES = 2000  # a folder's files shown at once (a flat folder of 50k files stays readable)


@dataclass
class FolderRow:
    name: str
    rel: bytes
    links: int = 0
    problems: int = 0
    marks: int = 0


@dataclass
class ServerState:
    server: str
    state: str  # pending | confirmed | stuck
    reason: str = ""


@dataclass
class FileRow:
    name: str
    rel: bytes
    size: int
    state: str  # linked | not-video | excluded | waiting | conflict | failed
    detail: str = ""
    servers: list[ServerState] = field(default_factory=list)


@dataclass
class Mark:
    path: str
    reason: str
    recursive: bool
    marked_at: float


@dataclass
class FolderView:
    rel: bytes
    known: bool  # the folder is in the index
    folders: list[FolderRow] = field(default_factory=list)
    files: list[FileRow] = field(default_factory=list)
    more_files: int = 0  # files past MAX_FILES, not shown
    marks: list[Mark] = field(default_factory=list)  # marks at, above (covering) or below this folder
    links: int = 0
    problems: int = 0
    servers: tuple[str, ...] = ()

    @property
    def crumbs(self) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        rel = self.rel
        while rel:
            out.append((shown(rel.rpartition(b"/")[2]), rel))
            rel = parent_of(rel)
        return list(reversed(out))

    @property
    def state_counts(self) -> list[tuple[str, int]]:
        return sorted(Counter(f.state for f in self.files).items())


def shown(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


def _child(rel: bytes, path: bytes) -> bytes:
    """The name of ``rel``'s child on the way to ``path`` (strictly below ``rel``)."""
    rest = path[len(rel) + 1 :] if rel else path
    return rest.split(b"/", 1)[0]


def _by_child(rel: bytes, rows: list[tuple[bytes, int]]) -> Counter[bytes]:
    counts: Counter[bytes] = Counter()
    for path, n in rows:
        counts[_child(rel, path)] += n
    return counts


def _under(store: Store, sql: str, rel: bytes) -> list[tuple[bytes, int]]:
    lo, hi = subtree_bounds(rel)
    return [(bytes(r[0]), int(r[1])) for r in store.execute(sql, (lo, hi))]


def _marks(store: Store, rel: bytes) -> list[Mark]:
    """Marks that will reconcile this folder: at it, above it (recursive) or below it."""
    lo, hi = subtree_bounds(rel)
    out = []
    for path, reason, recursive, at in store.execute("SELECT path, reason, recursive, marked_at FROM dirty"):
        path = bytes(path)
        above = path == rel or ((not path or rel.startswith(path + b"/")) and bool(recursive))
        if above or (lo <= path < hi):
            out.append(Mark(shown(path) or "/", str(reason), bool(recursive), float(at)))
    return sorted(out, key=lambda m: m.path)[:200]


def _server_states(store: Store, links: list[bytes]) -> dict[bytes, list[ServerState]]:
    found: dict[bytes, list[ServerState]] = {}
    if not links or not store.db.table_exists("server_change"):
        return found
    lo, hi = min(links), max(links) + b"\x00"
    rows = store.execute(
        "SELECT path, server, state, reason FROM server_change WHERE path >= ? AND path < ? ORDER BY server",
        (lo, hi),
    )
    wanted = set(links)
    for path, server, state, reason in rows:
        path = bytes(path)
        if path in wanted:
            shown_state = SERVER_STATES.get(str(state), str(state))
            found.setdefault(path, []).append(ServerState(str(server), shown_state, reason))
    return found


def _file_state(rules: Rules, folder: bytes, name: bytes, linked: bool, size: int = -1) -> str:
    if linked:
        return "linked"
    if not rules.wants_dir(folder):
        return "excluded"
    if rules.wants_file(name):
        # A sample ([rules] skip_samples) is left out on purpose, not waiting.
        sample = rules.named_samples(folder, [name]) and rules.is_sample(size)
        return "excluded" if sample else "waiting"
    dot = name.rfind(b".")
    ext = name[dot:].lower() if dot > 0 else b""
    # A video's extension that the rules still refuse: a download's temp name (".part", ".fuse_hidden...").
    temp = rules.wants_file(name.rsplit(b".", 1)[0]) if ext else False
    return "excluded" if temp or name.startswith((b".fuse_hidden", b"._", b".~", b"~$")) else "not-video"


def folder_view(config: Config, store: Store, rules: Rules, servers: tuple[str, ...], rel: bytes) -> FolderView:
    row = store.execute("SELECT id FROM directory WHERE path = ?", (rel,)).fetchone()
    view = FolderView(rel=rel, known=row is not None, servers=servers)
    view.marks = _marks(store, rel)
    if row is None:
        return view
    links = _by_child(rel, _under(store, "SELECT dir, count(*) FROM link WHERE dir >= ? AND dir < ? GROUP BY dir", rel))
    problems = _by_child(rel, _under(store, "SELECT link, 1 FROM problem WHERE link >= ? AND link < ?", rel))
    marks = _by_child(rel, _under(store, "SELECT path, 1 FROM dirty WHERE path >= ? AND path < ?", rel))
    for (path,) in store.execute("SELECT path FROM directory WHERE parent_id = ? ORDER BY path", (row[0],)):
        name = bytes(path).rpartition(b"/")[2]
        view.folders.append(FolderRow(shown(name), bytes(path), links[name], problems[name], marks[name]))
    here_links = {bytes(r[0]) for r in store.execute("SELECT name FROM link WHERE dir = ?", (rel,))}
    view.links = sum(links.values()) + len(here_links)
    rows = store.execute("SELECT link, kind, op, detail FROM problem WHERE link >= ? AND link < ?", subtree_bounds(rel))
    issues = {bytes(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in rows if parent_of(bytes(r[0])) == rel}
    view.problems = sum(problems.values())
    files = store.execute("SELECT name, size FROM file WHERE dir_id = ? ORDER BY name LIMIT ?", (row[0], MAX_FILES + 1))
    target = os.fsencode(config.paths.target).rstrip(b"/")
    for name, size in files.fetchall():
        name = bytes(name)
        if len(view.files) == MAX_FILES:
            view.more_files = int(store.execute("SELECT count(*) FROM file WHERE dir_id = ?", (row[0],)).fetchone()[0])
            view.more_files -= MAX_FILES
            break
        file_rel = join(rel, name)
        state, detail = _file_state(rules, rel, name, name in here_links, int(size)), ""
        if file_rel in issues:
            kind, op, why = issues[file_rel]
            state, detail = kind, why if kind == "conflict" else f"{op}: {why}"
        view.files.append(FileRow(shown(name), file_rel, int(size), state, detail))
    states = _server_states(store, [target + b"/" + f.rel for f in view.files if f.state == "linked"])
    for f in view.files:
        f.servers = states.get(target + b"/" + f.rel, [])
    return view
