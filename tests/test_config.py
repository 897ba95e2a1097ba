"""Configuration: parsing, environment overrides, and every way it can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from graylink.config import load_config, parse_duration

from conftest import Library


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3600), ("1d", 86400), ("1h30m", 5400), ("45", 45), (" 2 m ", 120)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "1.2.3s", "-5m", "five minutes"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_defaults_and_types(lib: Library) -> None:
    config = load_config(str(lib.ini), environ={})
    assert config.paths.source == str(lib.source)
    assert config.scan.interval == 300 and config.scan.full_verify == 86400
    assert config.scan.workers == 4 and config.scan.trust_dir_mtime == "auto"
    assert config.rules.exclude_dirs == ("BDMV",)
    assert config.reconcile.max_prune_fraction == 0.2
    assert config.link_root == str(lib.source)
    with pytest.raises(AttributeError):
        config.paths.source = "/x"  # type: ignore[misc]


def test_environment_overrides_the_file(lib: Library, tmp_path: Path) -> None:
    env = {"GRAYLINK_SCAN_INTERVAL": "90s", "GRAYLINK_EMBY_API_KEY": "made-up-key", "GRAYLINK_CONFIG": "ignored"}
    config = load_config(str(lib.ini), environ=env)
    assert config.scan.interval == 90
    assert config.emby.api_key == "made-up-key"
    assert "made-up-key" not in repr(config)


def test_environment_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s").mkdir()
    env = {
        "HOME": str(tmp_path),
        "GRAYLINK_PATHS_SOURCE": str(tmp_path / "s"),
        "GRAYLINK_PATHS_TARGET": str(tmp_path / "t"),
    }
    config = load_config(None, environ=env)
    assert config.paths.target == str(tmp_path / "t")
    assert config.file == ""


CASES = {
    "missing source": ("[paths]\ntarget = {t}\n", "[paths] source is not set"),
    "missing target": ("[paths]\nsource = {s}\n", "[paths] target is not set"),
    "target inside source": ("[paths]\nsource = {s}\ntarget = {s}/links\n", "lies inside source"),
    "source inside target": ("[paths]\nsource = {t}/src\ntarget = {t}\n", "lies inside target"),
    "same folder": ("[paths]\nsource = {s}\ntarget = {s}\n", "lies inside source"),
    "bad duration": ("[paths]\nsource = {s}\ntarget = {t}\n[scan]\ninterval = soon\n", "[scan] interval"),
    "unknown section": ("[paths]\nsource = {s}\ntarget = {t}\n[scna]\n", "unknown section [scna]"),
    "unknown key": ("[paths]\nsource = {s}\ntarget = {t}\nsorce = x\n", "unknown key 'sorce' in [paths]"),
    "bad bool": ("[paths]\nsource = {s}\ntarget = {t}\nrelative_links = maybe\n", "[paths] relative_links"),
    "bad fraction": ("[paths]\nsource = {s}\ntarget = {t}\n[reconcile]\nmax_prune_fraction = 2\n", "between 0 and 1"),
    "bad workers": ("[paths]\nsource = {s}\ntarget = {t}\n[scan]\nworkers = 0\n", "[scan] workers"),
    "bad trust": ("[paths]\nsource = {s}\ntarget = {t}\n[scan]\ntrust_dir_mtime = sometimes\n", "trust_dir_mtime"),
    "not ini": ("source = {s}\n", "File contains no section headers"),
    "duplicate key": ("[paths]\nsource = {s}\nsource = {s}\ntarget = {t}\n", "already exists"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_errors_exit_2_with_one_line_and_touch_nothing(lib: Library, case: str) -> None:
    text, message = CASES[case]
    lib.ini.write_text(text.format(s=lib.source, t=lib.target))
    result = lib.run("reconcile")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not lib.target.exists() and not lib.database.exists()


def test_missing_config_file(lib: Library) -> None:
    result = lib.run("-c", str(lib.root / "nope.ini"), "reconcile")
    assert result.returncode == 2
    assert "config file not found" in result.stderr


def test_unknown_environment_key(lib: Library) -> None:
    result = lib.run("reconcile", env={"GRAYLINK_SCAN_INTERVALL": "5m"})
    assert result.returncode == 2
    assert "GRAYLINK_SCAN_INTERVALL" in result.stderr


def test_bad_environment_value(lib: Library) -> None:
    result = lib.run("reconcile", env={"GRAYLINK_SCAN_INTERVAL": "5 parsecs"})
    assert result.returncode == 2 and "[scan] interval" in result.stderr
    assert not lib.target.exists()


def test_secret_values_are_not_echoed(lib: Library) -> None:
    lib.write_ini(emby={"url": "not a url"})
    result = lib.run("reconcile")
    assert result.returncode == 2 and "[emby] url" in result.stderr


def test_version_and_help(lib: Library) -> None:
    result = lib.run("--version")
    assert result.returncode == 0 and result.stdout.startswith("graylink, version ")
    assert "reconcile" in lib.run("--help").stdout


def test_unknown_option_is_usage_error(lib: Library) -> None:
    result = lib.run("reconcile", "--frobnicate")
    assert result.returncode == 2 and "No such option" in result.stderr


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_target_that_cannot_be_a_folder_is_one_line(lib: Library, dry_run: bool) -> None:
    lib.add("Movies/A/A.mkv")
    blocker = lib.root / "blocker"
    blocker.write_text("a file")
    for target in (blocker, blocker / "links"):
        lib.write_ini(paths={"target": str(target)})
        result = lib.run("reconcile", *(["--dry-run"] if dry_run else []))
        assert result.returncode == 2, result.stderr
        assert "[paths] target" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
    assert blocker.read_text() == "a file"


def test_inline_comments_after_whitespace_are_comments(tmp_path: Path) -> None:
    ini = tmp_path / "graylink.ini"
    ini.write_text(
        "[paths]\n"
        f"source = {tmp_path}/src     ; the mount\n"
        f"target = {tmp_path}/links\t# the link tree\n"
        "link_root = /media/Disc#1;b   ; as the server sees it\n"
        "[scan]\n"
        "interval = 1h        ; the walk\n"
        "workers = 2 # a comment\n"
        "[log]\n"
        "level = info          # debug | info | warning | error\n"
        "[emby]\n"
        "api_key = ab;cd#ef\n"
        "[mount]\n"
        "anchor =    ; no anchor\n",
        encoding="utf-8",
    )
    config = load_config(str(ini), environ={})
    assert config.paths.source == f"{tmp_path}/src"
    assert config.paths.target == f"{tmp_path}/links"
    assert config.scan.interval == 3600 and config.scan.workers == 2
    assert config.log.level == "info"
    # A "#" or ";" inside a value (no whitespace before it) belongs to the value.
    assert config.paths.link_root == "/media/Disc#1;b"
    assert config.emby.api_key == "ab;cd#ef"
    assert config.mount.anchor == ""


def test_environment_values_keep_what_looks_like_a_comment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    environ = {
        "GRAYLINK_PATHS_SOURCE": str(tmp_path / "src"),
        "GRAYLINK_PATHS_TARGET": str(tmp_path / "links"),
        "GRAYLINK_EMBY_API_KEY": "abc ;def",
    }
    assert load_config(None, environ=environ).emby.api_key == "abc ;def"


def test_a_value_in_quotes_is_the_value_without_them(tmp_path: Path) -> None:
    """``api_key = "abc"`` (as other INI readers take it) was sent with its quotes: 401, "refused the key"."""
    ini = tmp_path / "graylink.ini"
    ini.write_text(
        "[paths]\n"
        f'source = "{tmp_path}/src"\n'
        f"target = '{tmp_path}/links'   ; quoted too\n"
        "link_root = \"/media/a 'b'\"\n"
        "[emby]\n"
        'api_key = "made-up-key-0123"\n'
        "[mount]\n"
        "remount_command = sh -c \"mount /x\"\n",
        encoding="utf-8",
    )
    config = load_config(str(ini), environ={})
    assert config.paths.source == f"{tmp_path}/src"
    assert config.paths.target == f"{tmp_path}/links"
    assert config.paths.link_root == "/media/a 'b'"
    assert config.emby.api_key == "made-up-key-0123"
    assert config.mount.remount_command == 'sh -c "mount /x"'  # quotes inside a value stay
    # A command wrapped whole in quotes keeps them: they make one argument of a path with a space.
    ini.write_text(
        f"[paths]\nsource = {tmp_path}/src\ntarget = {tmp_path}/links\n"
        '[mount]\nremount_command = "/opt/my scripts/remount"\n',
        encoding="utf-8",
    )
    assert load_config(str(ini), environ={}).mount.remount_command == '"/opt/my scripts/remount"'
    # The environment is taken whole, as documented.
    with_env = load_config(str(ini), environ={"GRAYLINK_EMBY_API_KEY": '"quoted"'})
    assert with_env.emby.api_key == '"quoted"'


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GRAYLINK_SCANS_INTERVAL", "no section [scans] (did you mean GRAYLINK_SCAN_INTERVAL?)"),
        ("GRAYLINK_EMBYURL", "(did you mean GRAYLINK_EMBY_URL?)"),
        ("GRAYLINK_WEB_LISTN", "unknown key 'listn' in [web] (did you mean GRAYLINK_WEB_LISTEN?)"),
    ],
)
def test_a_misspelled_environment_variable_is_refused(lib: Library, name: str, expected: str) -> None:
    """issue 27 item 6: a misspelled section in the environment was ignored without a word."""
    result = lib.run("status", env={name: "1m"})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and expected in lines[0], result.stderr


def test_the_variables_that_are_not_config_are_left_alone(lib: Library) -> None:
    from graylink.config.file import NOT_CONFIG

    env = {name: "x" for name in NOT_CONFIG if name != "GRAYLINK_CONFIG"}
    assert load_config(str(lib.ini), environ=env).paths.source == str(lib.source)
