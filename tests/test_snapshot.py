"""The HTML snapshot: rendering, escaping, totals, size, atomic writes, the CLI,
a real reconcile followed by a snapshot, and the page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from graylink.config import Config, parse_raw
from graylink.errors import DatabaseError, GraylinkError
from graylink.report.snapshot import default_snapshot_path, js_string, write_snapshot
from graylink.store.db import Store, parent_of

REPO = Path(__file__).resolve().parents[1]
MTIME = 1_700_000_000  # 2023-11-14, in seconds

XSS_NAME = b"<img src=x onerror=alert(1)>.mkv"
SCRIPT_NAME = b'new\nline & "quoted" </script><script>alert(2)</script>.mkv'
BAD_UTF8_NAME = b"bad\xff\xfename.mkv"
LINE_SEP_NAME = "sep\u2028and\u2029.mkv".encode()


# ------------------------------------------------------------------ helpers


def make_config(tmp_path: Path, **sections: Mapping[str, str]) -> Config:
    raw: dict[str, dict[str, str]] = {
        "paths": {
            "source": str(tmp_path / "src"),
            "target": str(tmp_path / "links"),
            "database": str(tmp_path / "state" / "graylink.db"),
        }
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    (tmp_path / "src").mkdir(exist_ok=True)
    return parse_raw(raw)


def fill_index(
    store: Store,
    folders: Mapping[bytes, Iterable[tuple[bytes, int]]],
    linked: Iterable[bytes] = (),
    with_parents: bool = True,
) -> None:
    """Insert folders (files as ``(name, size)``) and owned links, as the scanner and
    the reconciler store them. ``with_parents`` adds every ancestor folder too."""
    paths = set(folders)
    if with_parents:
        for path in list(paths):
            while path:
                path = parent_of(path)
                paths.add(path)
    with store.atomic():
        ids: dict[bytes, int] = {}
        for path in sorted(paths):
            cursor = store.execute(
                "INSERT INTO directory (path, mtime_ns, listed_ns) VALUES (?, ?, 0)", (path, MTIME * 10**9)
            )
            ids[path] = int(cursor.lastrowid or 0)
        for path, files in folders.items():
            store.executemany(
                "INSERT INTO file (dir_id, name, size, mtime_ns) VALUES (?, ?, ?, ?)",
                [(ids[path], name, size, MTIME * 10**9) for name, size in files],
            )
        store.executemany(
            "INSERT INTO link (dir, name, target) VALUES (?, ?, ?)",
            [(parent_of(src), src.rpartition(b"/")[2], b"/media/" + src) for src in linked],
        )


def open_store(config: Config) -> Store:
    return Store(config.paths.database)


LIBRARY: dict[bytes, list[tuple[bytes, int]]] = {
    b"": [(b"readme.txt", 10)],
    b"Movies/X (2001)": [(b"X.mkv", 4_000_000_000), (b"X.srt", 40_000), (b"X.mkv.part", 5)],
    b"Movies/<evil> & co": [(XSS_NAME, 123), (SCRIPT_NAME, 7), (BAD_UTF8_NAME, 5), (LINE_SEP_NAME, 3)],
    b"Movies/Disc/BDMV/STREAM": [(b"00001.m2ts", 9)],
    b"TV/Show/Season 1": [(f"Show S01E{e:02d}.mkv".encode(), 1_000_000_000 + e) for e in range(1, 11)],
    b"TV/Show/Season 2": [(f"Show S02E{e:02d}.mkv".encode(), 1_000_000_000 + e) for e in range(1, 11)],
    b"TV/Empty": [],
}
LINKED = [b"Movies/X (2001)/X.mkv", *(f"TV/Show/Season 1/Show S01E{e:02d}.mkv".encode() for e in range(1, 11, 2))]


@pytest.fixture
def library(tmp_path: Path) -> tuple[Config, Store]:
    config = make_config(tmp_path)
    store = open_store(config)
    fill_index(store, LIBRARY, LINKED)
    yield config, store
    store.close()


def script_block(html: str, element_id: str) -> str:
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert match, element_id
    return match.group(1)


def page_data(html: str) -> tuple[list[Any], list[Any], dict[str, Any]]:
    return (
        json.loads(script_block(html, "gl-files")),
        json.loads(script_block(html, "gl-dirs")),
        json.loads(script_block(html, "gl-meta")),
    )


def files_by_name(files: list[Any]) -> dict[str, tuple[int, int, int]]:
    return {files[i]: (files[i + 1], files[i + 2], files[i + 3]) for i in range(0, len(files), 4)}


# ------------------------------------------------------------------ escaping


@pytest.mark.parametrize(
    "text",
    ["</script>", "<!-- <script>", "a & b > c", "\u2028\u2029", "quote \" and ' and \\", "line\nfeed", "日本語.mkv"],
)
def test_js_string_is_inert_inside_a_script_element_and_round_trips(text: str) -> None:
    literal = js_string(text)
    for unsafe in ("<", ">", "&", "\u2028", "\u2029", "\n"):
        assert unsafe not in literal
    assert json.loads(literal) == text


def test_names_reach_the_page_only_as_escaped_data(library: tuple[Config, Store], tmp_path: Path) -> None:
    config, store = library
    out = tmp_path / "snap.html"
    write_snapshot(config, store, str(out))
    html = out.read_text("utf-8")
    # Exactly the page's own four script elements: no name closed one or opened another.
    assert html.count("<script") == 4
    assert html.lower().count("</script") == 4
    assert "<img" not in html
    files, _, _ = page_data(html)
    names = files_by_name(files)
    assert XSS_NAME.decode() in names
    assert SCRIPT_NAME.decode() in names  # newline, quotes, & and </script> intact
    assert LINE_SEP_NAME.decode() in names
    assert "bad\\xff\\xfename.mkv" in names  # undecodable bytes shown, not dropped


def test_only_the_page_script_may_run(library: tuple[Config, Store], tmp_path: Path) -> None:
    config, store = library
    out = tmp_path / "snap.html"
    write_snapshot(config, store, str(out))
    html = out.read_text("utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp
    assert "default-src 'none'" in csp.group(1)
    assert "unsafe-inline" not in csp.group(1).split("style-src")[0]
    # No resource from anywhere: the page works from file:// with no network.
    assert not re.search(r"(src|href)=\"(https?:)?//", html)


# ------------------------------------------------------------------ content


def test_totals_flags_and_folders(library: tuple[Config, Store], tmp_path: Path) -> None:
    config, store = library
    stats = write_snapshot(config, store, str(tmp_path / "snap.html"))
    files, dirs, meta = page_data((tmp_path / "snap.html").read_text("utf-8"))
    all_files = [f for folder in LIBRARY.values() for f in folder]
    # Videos: .mkv files, not the .srt, not the .part download, not under BDMV.
    expected_videos = 1 + 4 + 20
    assert (stats.files, stats.videos, stats.linked) == (len(all_files), expected_videos, len(LINKED))
    assert stats.total_size == sum(size for _, size in all_files)
    # Movies, X (2001), <evil> & co, Disc, BDMV, STREAM, TV, Show, Season 1, Season 2, Empty.
    assert stats.folders == 11
    assert meta == {
        "source": config.paths.source,
        "generated": int(stats.generated_at),
        "version": meta["version"],
        "folders": 11,
        "files": stats.files,
        "videos": expected_videos,
        "linked": len(LINKED),
        "size": stats.total_size,
    }
    names = files_by_name(files)
    assert names["X.mkv"] == (4_000_000_000, MTIME, 3)  # video + linked
    assert names["X.srt"][2] == 0
    assert names["X.mkv.part"][2] == 0
    assert names["00001.m2ts"][2] == 0
    assert names["Show S01E02.mkv"][2] == 1  # a video graylink has not linked
    # Folder rows: name, parent, mtime, first file, count; each folder's files are
    # contiguous and every parent precedes its children.
    rows = [dirs[i : i + 5] for i in range(0, len(dirs), 5)]
    assert rows[0][:2] == ["", -1]
    by_name = {row[0]: row for row in rows}
    season = by_name["Season 2"]
    assert [files[4 * j] for j in range(season[3], season[3] + season[4])] == [
        f"Show S02E{e:02d}.mkv" for e in range(1, 11)
    ]
    assert by_name["Empty"][4] == 0
    assert all(row[1] < index for index, row in enumerate(rows) if index)
    assert rows[by_name["Show"][1]][0] == "TV"


def test_extra_extensions_and_excluded_folders_follow_the_config(tmp_path: Path) -> None:
    config = make_config(tmp_path, rules={"extensions": ".srt", "exclude_dirs": "Extras"})
    with open_store(config) as store:
        fill_index(store, {b"M": [(b"a.mkv", 1), (b"a.srt", 1)], b"M/extras": [(b"b.mkv", 1)]})
        stats = write_snapshot(config, store, str(tmp_path / "s.html"))
    assert stats.videos == 2  # a.mkv and a.srt; nothing under a folder named extras (any case)


def test_missing_parent_folders_are_shown(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with open_store(config) as store:
        fill_index(store, {b"A/B/C": [(b"x.mkv", 1)]}, with_parents=False)
        stats = write_snapshot(config, store, str(tmp_path / "s.html"))
    _, dirs, _ = page_data((tmp_path / "s.html").read_text("utf-8"))
    rows = [dirs[i : i + 5] for i in range(0, len(dirs), 5)]
    assert [row[:2] for row in rows] == [["", -1], ["A", 0], ["B", 1], ["C", 2]]
    assert stats.folders == 3


def test_an_empty_index_gives_an_empty_page(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with open_store(config) as store:
        stats = write_snapshot(config, store, str(tmp_path / "s.html"))
    files, dirs, meta = page_data((tmp_path / "s.html").read_text("utf-8"))
    assert (stats.files, stats.folders, files, dirs[:2]) == (0, 0, [], ["", -1])
    assert meta["files"] == 0


def test_a_typical_library_costs_at_most_150_bytes_per_file(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    folders: dict[bytes, list[tuple[bytes, int]]] = {}
    for show in range(40):
        for season in range(1, 6):
            path = f"TV/Some Show Title {show} (20{show % 25:02d})/Season {season:02d}".encode()
            folders[path] = [
                (
                    f"Some Show Title {show} - S{season:02d}E{ep:02d} - Episode Title 1080p WEB-DL.mkv".encode(),
                    1_234_567_890,
                )
                for ep in range(1, 13)
            ] + [(f"Some Show Title {show} - S{season:02d}E01.en.srt".encode(), 45_678)]
    with open_store(config) as store:
        fill_index(store, folders)
        stats = write_snapshot(config, store, str(tmp_path / "s.html"))
    assert stats.files == 40 * 5 * 13
    assert stats.bytes_written == (tmp_path / "s.html").stat().st_size
    assert stats.bytes_per_file <= 150, stats.bytes_per_file


# ------------------------------------------------------------------ writing


def test_default_path_is_beside_the_database_unless_configured(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert default_snapshot_path(config) == str(tmp_path / "state" / "graylink-snapshot.html")
    configured = make_config(tmp_path, snapshot={"path": str(tmp_path / "www" / "index.html")})
    assert default_snapshot_path(configured) == str(tmp_path / "www" / "index.html")


def test_rewrite_replaces_the_page_keeps_its_mode_and_leaves_no_temp_file(
    library: tuple[Config, Store], tmp_path: Path
) -> None:
    config, store = library
    out = tmp_path / "pub" / "snap.html"
    out.parent.mkdir()
    out.write_text("old page")
    out.chmod(0o640)
    stats = write_snapshot(config, store, str(out))
    assert stats.path == str(out)
    assert out.read_text("utf-8").startswith("<!DOCTYPE html>")
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(out.parent)) == ["snap.html"]


def test_a_failed_render_keeps_the_previous_page(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with open_store(config) as store:
        fill_index(store, {b"A": [(b"a.mkv", 1)]})
    # A database that lost a table cannot be read; the old page must survive.
    raw = sqlite3.connect(config.paths.database)
    raw.execute("DROP TABLE link")
    raw.commit()
    raw.close()
    out = tmp_path / "snap.html"
    out.write_text("old page")
    with Store(config.paths.database, readonly=True) as store, pytest.raises(DatabaseError, match="cannot read"):
        write_snapshot(config, store, str(out))
    assert out.read_text() == "old page"
    assert sorted(os.listdir(tmp_path)) == ["snap.html", "src", "state"]


@pytest.mark.parametrize("where", ["missing/dir/snap.html", "."])
def test_an_unwritable_destination_is_one_clear_error(
    library: tuple[Config, Store], tmp_path: Path, where: str
) -> None:
    config, store = library
    with pytest.raises(GraylinkError, match="cannot write snapshot to"):
        write_snapshot(config, store, str(tmp_path / where))


# ------------------------------------------------------------------ the CLI


def run_cli(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graylink", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_ini(tmp_path: Path) -> Path:
    ini = tmp_path / "graylink.ini"
    ini.write_text(
        f"[paths]\nsource = {tmp_path / 'src'}\ntarget = {tmp_path / 'links'}\n"
        f"database = {tmp_path / 'state' / 'graylink.db'}\n"
    )
    return ini


def test_cli_writes_beside_the_database_and_to_o(library: tuple[Config, Store], tmp_path: Path) -> None:
    ini = write_ini(tmp_path)
    done = run_cli("-c", str(ini), "snapshot", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    default = tmp_path / "state" / "graylink-snapshot.html"
    assert default.is_file()
    assert str(default) in done.stdout and f"{sum(len(f) for f in LIBRARY.values())} files" in done.stdout
    done = run_cli("-c", str(ini), "snapshot", "-o", str(tmp_path / "other.html"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert page_data((tmp_path / "other.html").read_text("utf-8"))[2]["linked"] == len(LINKED)


def test_cli_without_a_database_exits_2_with_one_line(tmp_path: Path) -> None:
    ini = write_ini(tmp_path)
    (tmp_path / "src").mkdir()
    done = run_cli("-c", str(ini), "snapshot", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "no database" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()


def test_cli_runs_while_another_graylink_holds_a_write_transaction(
    library: tuple[Config, Store], tmp_path: Path
) -> None:
    _, store = library
    ini = write_ini(tmp_path)
    with store.atomic():
        store.execute("INSERT INTO dirty (path, reason, marked_at, recursive, indexed) VALUES (x'', 'test', 0, 1, 0)")
        store.execute("DELETE FROM file")  # uncommitted: the snapshot must not see it
        done = run_cli("-c", str(ini), "snapshot", "-o", str(tmp_path / "live.html"), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert page_data((tmp_path / "live.html").read_text("utf-8"))[2]["files"] == sum(len(f) for f in LIBRARY.values())


def test_snapshot_of_a_real_reconcile(lib: Any) -> None:
    for rel, size in [
        ("Movies/Heat (1995)/Heat.mkv", 300),
        ("Movies/Heat (1995)/Heat.nfo", 2),
        ("TV/Show/Season 1/Show S01E01.mp4", 100),
        ("TV/Show/Season 1/Show S01E02.mp4", 100),
        ("Disc/BDMV/STREAM/00000.m2ts", 50),
    ]:
        lib.add(rel, b"v" * size)
    lib.add(b"Odd/\xff <b>.mkv", b"v")
    done = lib.run("reconcile")
    assert done.returncode == 0, done.stderr
    result = lib.cli("snapshot")  # in-process, beside the database by default
    assert result.exit_code == 0, result.output
    page = lib.database.parent / "graylink-snapshot.html"
    files, _, meta = page_data(page.read_text("utf-8"))
    assert (meta["files"], meta["videos"], meta["linked"], meta["size"]) == (6, 4, 4, 553)
    names = files_by_name(files)
    assert names["Heat.mkv"][2] == 3
    assert names["\\xff <b>.mkv"][2] == 3
    assert names["Heat.nfo"][2] == 0
    assert names["00000.m2ts"][2] == 0


# ------------------------------------------------------------------ the browser





class Page:
    """One snapshot page in Chromium, recording script errors and dialogs."""

    def __init__(self, browser: Any, url: str) -> None:
        # Playwright's wait_for_function evaluates a string in the page: the page's CSP (no 'unsafe-eval') must
        # not refuse the test's own probes, only the page's scripts are under test.
        self.page = browser.new_page(bypass_csp=True)
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.page.on("dialog", self._dialog)
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.page.goto(url)
        self.page.wait_for_selector("html[data-ready]")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def texts(self, selector: str) -> list[str]:
        return list(self.page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)"))

    def search(self, text: str) -> None:
        self.page.fill("#gl-search", text)
        self.page.press("#gl-search", "Enter")
        self.page.wait_for_selector("table.search")

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.dialogs == []
        assert all(url.startswith("file://") for url in self.requests), self.requests


@pytest.fixture
def page_url(library: tuple[Config, Store], tmp_path: Path) -> str:
    config, store = library
    out = tmp_path / "snap.html"
    write_snapshot(config, store, str(out))
    return out.as_uri()


@pytest.mark.browser
def test_page_opens_with_the_top_folders_and_totals(browser: Any, page_url: str) -> None:
    page = Page(browser, page_url)
    assert page.texts("#gl-tree > ul > li > ul > li > .row > a") == ["Movies", "TV"]
    totals = {
        key: page.page.get_attribute(f"#gl-total-{key}", "data-value")
        for key in ("folders", "files", "videos", "linked")
    }
    files = sum(len(f) for f in LIBRARY.values())
    assert totals == {"folders": "11", "files": str(files), "videos": "25", "linked": str(len(LINKED))}
    # The root folder's listing: its subfolders, then its one file.
    assert page.texts("#gl-list tbody td.name") == ["Movies", "TV", "readme.txt"]
    page.assert_clean()


@pytest.mark.browser
def test_hostile_names_show_as_text_and_never_run(browser: Any, page_url: str) -> None:
    page = Page(browser, page_url + "#/Movies/" + "%3Cevil%3E%20%26%20co")
    assert page.texts("#gl-crumbs a")[-1] == "<evil> & co"
    names = page.texts("#gl-list tbody td.name")
    assert sorted(names) == sorted(
        [XSS_NAME.decode(), SCRIPT_NAME.decode(), "bad\\xff\\xfename.mkv", LINE_SEP_NAME.decode()]
    )
    assert page.page.query_selector("#gl-list img") is None
    assert page.page.query_selector_all("script") and len(page.page.query_selector_all("script")) == 4
    page.search("onerror")
    assert page.texts("#gl-list tbody td.name") == [XSS_NAME.decode()]
    page.assert_clean()


@pytest.mark.browser
def test_search_finds_by_part_of_a_name_and_opens_the_hit(browser: Any, page_url: str) -> None:
    page = Page(browser, page_url)
    page.search("s02E0")  # case-insensitive substring
    hits = page.texts("#gl-list tbody td.name")
    assert sorted(hits) == [f"Show S02E{e:02d}.mkv" for e in range(1, 10)]
    assert set(page.texts("#gl-list tbody td.folder")) == {"/TV/Show/Season 2"}
    page.page.click("#gl-list tbody a[data-f]:text('Show S02E07.mkv')")
    page.page.wait_for_selector("#gl-list:not(.search) tr.hit")
    assert page.page.url.endswith("#/TV/Show/Season%202")
    assert page.texts("#gl-list tr.hit td.name") == ["Show S02E07.mkv"]
    assert page.texts("#gl-crumbs a") == [page.texts("#gl-crumbs a")[0], "TV", "Show", "Season 2"]
    page.search("no such thing")
    assert page.texts("#gl-list tbody td.name") == []
    assert "0 files and 0 folders" in (page.page.text_content("#gl-status") or "")
    page.assert_clean()


@pytest.mark.browser
def test_folder_by_hash_linked_column_and_sorting(browser: Any, page_url: str) -> None:
    page = Page(browser, page_url + "#/TV/Show/Season%201")
    names = page.texts("#gl-list tbody td.name")
    assert names == [f"Show S01E{e:02d}.mkv" for e in range(1, 11)]  # natural name order
    assert page.texts("#gl-list tbody td.link")[:2] == ["linked", "not linked"]
    assert page.texts("#gl-tree .row.sel a") == ["Season 1"]
    page.page.click("th[data-key=size]")
    page.page.click("th[data-key=size]")  # descending
    assert page.texts("#gl-list tbody td.name")[0] == "Show S01E10.mkv"
    assert page.page.get_attribute("th[data-key=size]", "aria-sort") == "descending"
    page.page.click("th[data-key=linked]")
    assert page.texts("#gl-list tbody td.link")[:5] == ["not linked"] * 5
    # Navigating through the tree and the breadcrumbs.
    page.page.click("#gl-crumbs a:text('TV')")
    page.page.wait_for_function("location.hash === '#/TV'")
    # The list is drawn on the hashchange event, which fires after the hash has changed.
    page.page.wait_for_function("document.querySelector('#gl-list tbody td.name')?.textContent === 'Empty'")
    assert page.texts("#gl-list tbody td.name") == ["Empty", "Show"]
    page.page.click("#gl-tree .row:has(a:text('Movies')) .tog")
    assert "X (2001)" in page.texts("#gl-tree a")
    page.assert_clean()
