"""Named sections (issue 30 item 1): [library NAME], [emby NAME], [plex NAME], their
environment rule, names checked, overlapping libraries refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from graylink.config import load_config

from conftest import Library


def two_libraries(lib: Library, extra: str = "") -> str:
    (lib.root / "films").mkdir(exist_ok=True)
    return (
        f"[paths]\nsource = {lib.source}\ntarget = {lib.target}\ndatabase = {lib.database}\n"
        "[scan]\ninterval = 2m\n"
        "[mount]\nanchor = .anchor\n"
        f"[library films]\nsource = {lib.root / 'films'}\ntarget = {lib.root / 'film-links'}\nworkers = 2\n"
        f"[emby]\nurl = http://127.0.0.1:1\napi_key = k0\npath_map = {lib.target}=/media\n"
        f"[emby family]\nurl = http://127.0.0.1:2\napi_key = k1\npath_map = {lib.root / 'film-links'}=/films\n"
        "[plex friend]\nurl = http://127.0.0.1:3\ntoken = t1\nlibraries = films\n" + extra
    )


def test_named_sections_parse(lib: Library) -> None:
    lib.ini.write_text(two_libraries(lib))
    config = load_config(str(lib.ini), environ={})
    assert [library.name for library in config.libraries] == ["default", "films"]
    default, films = config.libraries
    assert config.paths == default.paths  # config.paths is still the default library
    assert films.paths.database == str(lib.database.parent / "films.db")  # beside the default one
    assert films.scan.interval == 120 and films.scan.workers == 2  # inherited, own
    assert films.mount.anchor == "" and default.mount.anchor == ".anchor"  # a library's own key is not inherited
    assert [server.key for server in config.servers] == ["emby", "emby family", "plex friend"]
    assert config.named
    view = config.library("films")
    assert view.paths == films.paths and view.libraries == (films,)
    assert [server.key for server in view.servers] == ["emby family", "plex friend"]
    assert [server.key for server in config.library("default").servers] == ["emby"]
    assert "k1" not in repr(config.servers) and "t1" not in repr(config.servers)


def test_a_config_of_today_has_one_default_library(lib: Library) -> None:
    lib.write_ini(emby={"url": "http://127.0.0.1:1", "api_key": "k"})
    config = load_config(str(lib.ini), environ={})
    assert [library.name for library in config.libraries] == ["default"]
    assert [server.key for server in config.servers] == ["emby"] and not config.named
    assert config.library("default").servers == config.servers


def test_only_named_libraries(lib: Library) -> None:
    (lib.root / "films").mkdir()
    lib.ini.write_text(f"[library films]\nsource = {lib.root / 'films'}\ntarget = {lib.root / 'fl'}\n")
    config = load_config(str(lib.ini), environ={"HOME": str(lib.root)})
    assert [library.name for library in config.libraries] == ["films"]
    assert config.paths.source == str(lib.root / "films")


def test_environment_rule_for_named_sections(lib: Library) -> None:
    lib.ini.write_text(two_libraries(lib))
    env = {
        "GRAYLINK_LIBRARY_FILMS_WORKERS": "7",
        "GRAYLINK_LIBRARY_TV_SOURCE": str(lib.root / "tv"),
        "GRAYLINK_LIBRARY_TV_TARGET": str(lib.root / "tv-links"),
        "GRAYLINK_EMBY_FAMILY_API_KEY": "from-env",
        "GRAYLINK_EMBY_API_KEY": "unnamed",  # still the unnamed [emby]'s key
        "GRAYLINK_PLEX_FRIEND_CONFIRM_WAIT": "1h",
    }
    config = load_config(str(lib.ini), environ=env)
    assert config.library("films").scan.workers == 7
    assert config.library("tv").paths.source == str(lib.root / "tv")
    assert config.server("emby family").secret == "from-env" and config.server("emby").secret == "unnamed"
    assert config.server("plex friend").settings.confirm_wait == 3600


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("GRAYLINK_LIBRARY_FILMS_SORCE", "unknown key 'sorce' in [library films]"),
        ("GRAYLINK_EMBY_FAMILY_APIKEY", "unknown key 'apikey' in [emby family]"),
        ("GRAYLINK_LIBRARY_SOURCE", "GRAYLINK_LIBRARY_<NAME>_<KEY>"),
    ],
)
def test_unknown_named_variables_are_refused(lib: Library, name: str, message: str) -> None:
    lib.ini.write_text(two_libraries(lib))
    result = lib.run("status", env={name: "x"})
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


CASES = {
    "no name": ("[library]\nsource = /x\n", "[library] needs a name"),
    "bad name": ("[library 4k_films]\nsource = /x\n", "bad name '4k_films'"),
    "bad name space": ("[emby a b]\nurl = http://h\n", "bad name 'a b'"),
    "reserved": ("[library default]\nsource = /x\n", "taken by the unnamed sections"),
    "duplicate": ("[plex a]\nurl = http://h\n[plex A]\nurl = http://h\n", "[plex A] appears twice"),
    "unknown key": ("[library x]\ninterval = 5m\nurl = y\n", "unknown key 'url' in [library x]"),
    "no url": ("[emby x]\napi_key = k\n", "[emby x] url is not set"),
    "unknown library": ("[plex x]\nurl = http://h\nlibraries = default, music\n", "no library named 'music'"),
    "same source": ("[library b]\nsource = {s}\ntarget = {r}/b-links\n", "[library b] and [paths] overlap: source"),
    "nested source": ("[library b]\nsource = {s}/Films\ntarget = {r}/b\n", "overlap: source"),
    "same target": ("[library b]\nsource = {r}/b\ntarget = {t}\n", "overlap: target"),
    "target in source": ("[library b]\nsource = {r}/b\ntarget = {s}/x\n", "share folders"),
    "same database": ("[library b]\nsource = {r}/b\ntarget = {r}/bl\ndatabase = {d}\n", "share the database"),
    "bad value": ("[library b]\nsource = {r}/b\ntarget = {r}/bl\nworkers = none\n", "[library b] workers"),
    "drive remote": ("[library b]\nsource = {r}/b\ntarget = {r}/bl\ndrive_enabled = yes\n", "[library b] drive_remote"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_named_errors_exit_2_with_one_line_and_write_nothing(lib: Library, case: str) -> None:
    text, message = CASES[case]
    (lib.source / "Films").mkdir()
    (lib.root / "b").mkdir()
    head = f"[paths]\nsource = {lib.source}\ntarget = {lib.target}\ndatabase = {lib.database}\n"
    lib.ini.write_text(head + text.format(s=lib.source, t=lib.target, r=lib.root, d=lib.database))
    before = sorted(p.name for p in lib.root.iterdir())
    result = lib.run("reconcile")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in lib.root.iterdir()) == before  # no link tree, no database, no lock


def test_secret_of_a_named_server_is_not_echoed(tmp_path: Path, lib: Library) -> None:
    lib.ini.write_text(
        two_libraries(lib, "[emby kids]\nurl = http://127.0.0.1:4\napi_key = s3cr3t-key\nmode = s3cr3t-key\n")
    )
    result = lib.run("status")
    assert result.returncode == 2 and "s3cr3t-key" not in result.stderr and "[emby kids] mode" in result.stderr
