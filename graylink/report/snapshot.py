"""A single-file HTML page of the index, in the style of Snap2HTML.

The index is streamed from SQLite straight into the page: one ordered query
walks every folder (by path) and its files (by name), so a folder's files are
contiguous and a folder row only needs the offset and count of its files. The
page embeds the data as JSON arrays (``<script type="application/json">``,
which browsers parse much faster than JavaScript literals) and builds the tree
and the file lists lazily in the browser.

Data layout (documented in docs/snapshot.md, read by the page's script):

* files, flat, 4 values per file: ``name, size, mtime (s), flags``
  (flags: 1 = a video graylink wants, 2 = graylink owns a link to it);
* folders, flat, 5 values per folder: ``name, parent index, mtime (s),
  first file, file count`` (the root has parent -1; a parent always comes
  before its children);
* meta: totals and the time of generation.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import importlib.resources
import json
import json.encoder
import os
import re
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import jinja2
import peewee as pw

from graylink import __version__
from graylink.config import DEFAULT_LIBRARY, Config
from graylink.errors import DatabaseError, GraylinkError
from graylink.source.rules import Rules
from graylink.store.db import Store, parent_of

DEFAULT_FILENAME = "graylink-snapshot.html"
FLAG_VIDEO = 1
FLAG_LINKED = 2

# Files per written chunk: large enough that the per-chunk overhead vanishes,
# small enough that memory stays flat on any index size.
_CHUNK_FILES = 4096

# Folders by path, each with its files by name; a file is linked when graylink
# owns a link at the file's path (a link's folder and name are its file's).
# SQLite answers the ordering from the path and (dir_id, name) indexes without
# sorting, and the link lookup from the link table's own key, so nothing is
# written to the database (the snapshot runs beside a live graylink, read-only).
_INDEX_QUERY = """
SELECT d.path, d.mtime_ns, f.name, f.size, f.mtime_ns, l.name IS NOT NULL
FROM directory AS d
LEFT JOIN file AS f ON f.dir_id = d.id
LEFT JOIN link AS l ON l.dir = d.path AND l.name = f.name
ORDER BY d.path, f.name
"""

_encode_json_string = json.encoder.encode_basestring
_JS_UNSAFE_RE = re.compile("[<>&\u2028\u2029]")
_JS_UNSAFE = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


@dataclass(frozen=True)
class SnapshotStats:
    """What a written snapshot holds."""

    path: str
    folders: int
    files: int
    videos: int
    linked: int
    total_size: int
    bytes_written: int
    generated_at: float  # seconds since the epoch

    @property
    def bytes_per_file(self) -> float:
        return self.bytes_written / self.files if self.files else 0.0


def display_name(raw: bytes) -> str:
    """A file name as text: bytes that are not UTF-8 show as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


def js_string(text: str) -> str:
    """A JSON string literal that is safe inside any ``<script>`` element.

    ``<``, ``>`` and ``&`` are escaped so that no name can close the element or
    open a comment; U+2028/2029 so the literal is valid JavaScript as well as
    JSON. Other non-ASCII text stays as UTF-8, which keeps CJK names compact.
    """
    # The C encoder, and a translate only for the rare name that needs it: this
    # runs once per file of the library.
    literal = _encode_json_string(text)
    if _JS_UNSAFE_RE.search(literal):
        literal = literal.translate(_JS_UNSAFE)
    return literal


def js_value(value: object) -> str:
    """Any JSON value, with the same escaping as :func:`js_string`."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_JS_UNSAFE)


LIBRARY_PLACEHOLDER = "{library}"


def default_snapshot_path(config: Config) -> str:
    """Where this library's page goes: ``[snapshot] path`` when set, else beside its database.

    ``[snapshot] path`` is one key for the whole service, so each library must
    make its own file of it, the same whoever writes it (the loop after a full
    verification, ``graylink snapshot``, the status page's link): ``{library}``
    in it is the library's name; without it, the default library (the unnamed
    sections) keeps the path as written (a config of today writes the same
    file) and a ``[library NAME]`` inserts ``-NAME`` before the extension. The
    default file is ``graylink-snapshot.html`` / ``graylink-snapshot-NAME.html``
    beside the library's database."""
    library = config.name
    path = config.snapshot.path or os.path.join(os.path.dirname(config.paths.database), DEFAULT_FILENAME)
    if LIBRARY_PLACEHOLDER in path:
        return path.replace(LIBRARY_PLACEHOLDER, library)
    if library == DEFAULT_LIBRARY:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}-{library}{ext}"


class _IndexStream:
    """Streams the index into JSON chunks, counting totals on the way.

    Folder rows are kept (they are few next to files) because each needs the
    count of its files, known only once they have streamed by.
    """

    def __init__(self, store: Store, rules: Rules) -> None:
        self._store = store
        self._rules = rules
        self._folder_rows: list[str] = []
        self._folder_index: dict[bytes, int] = {}
        self._folder_files: list[int] = []
        self.files = 0
        self.videos = 0
        self.linked = 0
        self.total_size = 0
        self.finished = False

    @property
    def folders(self) -> int:
        """Folders below the source; the root row (always present) is the source itself."""
        return len(self._folder_rows) - 1

    def _add_folder(self, path: bytes, mtime_ns: int) -> int:
        """Index of the folder row for ``path``, adding missing ancestors first."""
        if path:
            parent_path = parent_of(path)
            parent = self._folder_index.get(parent_path)
            if parent is None:
                parent = self._add_folder(parent_path, 0)
            name = display_name(path.rpartition(b"/")[2])
        else:
            parent, name = -1, ""
        index = len(self._folder_rows)
        self._folder_index[path] = index
        # The file count is appended when the folder's files have streamed by.
        self._folder_rows.append(f"{js_string(name)},{parent},{mtime_ns // 1_000_000_000},{self.files}")
        self._folder_files.append(0)
        return index

    def _sample(self, folder: bytes, name: bytes, size: int | None) -> bool:
        """A sample that [rules] skip_samples leaves out is no linkable file."""
        rules = self._rules
        return bool(rules.named_samples(folder, [name])) and rules.is_sample(size if size is not None else -1)

    def file_chunks(self) -> Iterator[str]:
        """The files table as JSON text, chunk by chunk, without brackets."""
        wants_file = self._rules.wants_file
        current_path: bytes | None = None
        current = -1
        dir_wanted = False
        parts: list[str] = []
        first = True
        if self._store.execute("SELECT 1 FROM directory WHERE path = x''").fetchone() is None:
            self._add_folder(b"", 0)  # an index that is empty or lost its root still shows one
        for dir_path, dir_mtime, name, size, mtime_ns, linked in self._store.execute(_INDEX_QUERY):
            path = bytes(dir_path)
            if path != current_path:
                current_path = path
                current = self._folder_index.get(path, -1)
                if current < 0:
                    current = self._add_folder(path, dir_mtime or 0)
                dir_wanted = self._rules.wants_dir(path)
            if name is None:
                continue
            raw = bytes(name)
            flags = 0
            if dir_wanted and wants_file(raw) and not self._sample(path, raw, size):
                flags |= FLAG_VIDEO
                self.videos += 1
            if linked:
                flags |= FLAG_LINKED
                self.linked += 1
            size = size or 0
            self.total_size += size
            self.files += 1
            self._folder_files[current] += 1
            item = f"{js_string(display_name(raw))},{size},{(mtime_ns or 0) // 1_000_000_000},{flags}"
            parts.append(item if first else "," + item)
            first = False
            if len(parts) >= _CHUNK_FILES:
                yield "".join(parts)
                parts.clear()
        if parts:
            yield "".join(parts)
        self.finished = True

    def folder_chunks(self) -> Iterator[str]:
        """The folders table as JSON text; only valid after :meth:`file_chunks`."""
        if not self.finished:
            raise RuntimeError("folder rows are complete only after the files have streamed")
        rows = self._folder_rows
        for start in range(0, len(rows), _CHUNK_FILES):
            counts = self._folder_files[start : start + _CHUNK_FILES]
            block = (f"{row},{n}" for row, n in zip(rows[start : start + _CHUNK_FILES], counts, strict=True))
            yield ("," if start else "") + ",".join(block)


def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("graylink.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("snapshot.html.j2")


@functools.cache
def _app_script() -> tuple[str, str]:
    """The page's script and its CSP hash (only that script may run)."""
    text = importlib.resources.files("graylink.report").joinpath("templates/snapshot.js").read_text("utf-8")
    if "</script" in text.lower() or "<!--" in text:
        raise RuntimeError("snapshot.js must not contain '</script' or '<!--'")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return text, f"sha256-{digest}"


def render_snapshot(config: Config, store: Store, out: IO[bytes], generated_at: float | None = None) -> SnapshotStats:
    """Write the page to an open binary stream and return what it holds."""
    rules = Rules.of(config.rules)
    stream = _IndexStream(store, rules)
    now = time.time() if generated_at is None else generated_at
    source = config.paths.source

    def meta() -> str:
        return js_value(
            {
                "source": source,
                "generated": int(now),
                "version": __version__,
                "folders": stream.folders,
                "files": stream.files,
                "videos": stream.videos,
                "linked": stream.linked,
                "size": stream.total_size,
            }
        )

    app_js, script_hash = _app_script()
    written = 0
    for piece in _template().generate(
        source=source,
        generated_iso=time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now)),
        version=__version__,
        file_chunks=stream.file_chunks(),
        folder_chunks=stream.folder_chunks,
        meta=meta,
        app_js=app_js,
        script_hash=script_hash,
    ):
        data = piece.encode("utf-8")
        out.write(data)
        written += len(data)
    return SnapshotStats(
        path="",
        folders=stream.folders,
        files=stream.files,
        videos=stream.videos,
        linked=stream.linked,
        total_size=stream.total_size,
        bytes_written=written,
        generated_at=now,
    )


def write_snapshot(config: Config, store: Store, out_path: str) -> SnapshotStats:
    """Render the snapshot to ``out_path`` atomically (temp file, then rename).

    A reader of ``out_path`` sees either the previous page or the new one,
    never a half-written file; a failure leaves the previous page in place.
    """
    target = os.path.abspath(os.path.expanduser(out_path))
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise GraylinkError(f"cannot write snapshot to {out_path}: it is a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".graylink-snapshot-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise GraylinkError(f"cannot write snapshot to {out_path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            stats = render_snapshot(config, store, out)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes the file private; a snapshot is meant to be opened in a
        # browser or served, so keep the mode of the page it replaces, else 0644.
        # (Reading the umask would need os.umask, which races other threads.)
        os.chmod(tmp, _existing_mode(target))
        os.replace(tmp, target)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise GraylinkError(f"cannot write snapshot to {out_path}: {exc.strerror or exc}") from None
    except (pw.DatabaseError, sqlite3.DatabaseError) as exc:
        _unlink_quietly(tmp)
        raise DatabaseError(f"cannot read the index from {store.path}: {exc}") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    # The caller says what was written (the command prints it, the service logs it).
    return dataclasses.replace(stats, path=target)


def _existing_mode(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o644


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
