"""rclone.conf found and read as rclone does, checked against the real rclone binary.

Ground truth: ``rclone config file`` (where rclone looks), ``rclone config dump``
(how it parses), and ``rclone lsf`` of alias remotes (which value it really uses:
environment variables over the file). rclone's sources followed:
fs/config/config.go (makeConfigPath), fs/configmap.go, fs/fspath/path.go,
github.com/unknwon/goconfig read.go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from graylink.config import load_config
from graylink.drive.remote import read_remote
from graylink.errors import ConfigError
from graylink.rclone import conffile, fspath

RCLONE = shutil.which("rclone")
needs_rclone = pytest.mark.skipif(RCLONE is None, reason="rclone is not installed")

TRICKY = (
    "\ufeff[plain]\n"
    "type = alias\n"
    "remote = /srv/a\n"
    "  [indented]  \n"
    "\ttype = alias\n"
    "   remote   =   /srv/b   \n"
    "[quotes]\n"
    "type = alias\n"
    'remote = "/srv/c"\n'
    "back = `/srv/d`\n"
    'triple = """/srv/e"""\n'
    "colon: value\n"
    "Token = Case\n"
    "token = case\n"
    "inline = /srv/f ; not a comment\n"
    "empty =\n"
    "; a comment\n"
    "# another\n"
    "[quotes]\n"
    "again = merged\n"
    "token = last wins\n"
)


def _env(tmp_path, **extra):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")}
    env.update(extra)
    return env


def _rclone(env, *args):
    done = subprocess.run([RCLONE, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    return done


def test_own_reader_parses_like_rclone_config_dump(tmp_path, rclone_binary):
    conf = tmp_path / "rclone.conf"
    conf.write_text(TRICKY, encoding="utf-8")
    env = _env(tmp_path)
    ours = conffile.load(str(conf), env, use_rclone=False)
    assert ours.reader == "graylink"
    assert conffile.dump(rclone_binary.path, str(conf), env) == ours.sections
    assert ours.sections["quotes"]["remote"] == '"/srv/c"'  # rclone keeps plain double quotes
    assert ours.sections["quotes"]["back"] == "/srv/d"


@needs_rclone
@pytest.mark.parametrize(
    "layout",
    ["RCLONE_CONFIG", "XDG", "dot-config", "hidden", "dot-config beats hidden", "none"],
)
def test_config_file_is_searched_where_rclone_searches(tmp_path, layout):
    home = tmp_path / "home"
    xdg = tmp_path / "xdg"
    env = _env(tmp_path, XDG_CONFIG_HOME=str(xdg))
    paths = {
        "xdg": xdg / "rclone" / "rclone.conf",
        "dot": home / ".config" / "rclone" / "rclone.conf",
        "hidden": home / ".rclone.conf",
        "explicit": tmp_path / "elsewhere.conf",
    }
    wanted = {
        "RCLONE_CONFIG": ["explicit", "xdg"],
        "XDG": ["xdg", "dot", "hidden"],
        "dot-config": ["dot", "hidden"],
        "hidden": ["hidden"],
        "dot-config beats hidden": ["dot", "hidden"],
        "none": [],
    }[layout]
    if layout != "XDG":
        env.pop("XDG_CONFIG_HOME")
    if layout == "RCLONE_CONFIG":
        env["RCLONE_CONFIG"] = str(paths["explicit"])
    for key in wanted:
        paths[key].parent.mkdir(parents=True, exist_ok=True)
        paths[key].write_text("[x]\ntype = alias\nremote = /tmp\n")
    said = _rclone(env, "config", "file").stdout.strip().splitlines()[-1]
    assert conffile.locate("", env, RCLONE) == said
    assert said == str(paths[wanted[0]] if wanted else paths["dot"])


def test_environment_overrides_and_env_only_remotes_as_rclone_uses_them(tmp_path, rclone_binary):
    for name in ("file", "remote_env", "backend_env", "env_only"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.mkv").touch()
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[Media]\ntype = alias\nremote = {tmp_path / 'file'}\n")
    cases = {
        "file only": ({}, "Media", "file"),
        "RCLONE_ALIAS_REMOTE beats the file": (
            {"RCLONE_ALIAS_REMOTE": str(tmp_path / "backend_env")},
            "Media",
            "backend_env",
        ),
        "RCLONE_CONFIG_MEDIA_REMOTE beats both": (
            {
                "RCLONE_ALIAS_REMOTE": str(tmp_path / "backend_env"),
                "RCLONE_CONFIG_MEDIA_REMOTE": str(tmp_path / "remote_env"),
            },
            "Media",
            "remote_env",
        ),
        "a remote only in the environment": (
            {"RCLONE_CONFIG_ENVONLY_TYPE": "alias", "RCLONE_CONFIG_ENVONLY_REMOTE": str(tmp_path / "env_only")},
            "envonly",
            "env_only",
        ),
    }
    for why, (extra, remote, expected) in cases.items():
        env = _env(tmp_path, RCLONE_CONFIG=str(conf), **extra)
        listed = _rclone(env, "lsf", f"{remote}:").stdout.split()
        assert listed == [f"{expected}.mkv"], why
        loaded = conffile.load("", env)
        assert loaded.has_remote(remote), why
        assert loaded.get(remote, "remote", loaded.remote_type(remote)) == str(tmp_path / expected), why


def _encrypt(conf, password):
    """Set a config password with rclone's own menu (it reads passwords from a terminal only)."""
    script = (
        "import os, pty, sys, time\n"
        "pid, fd = pty.fork()\n"
        "if pid == 0:\n"
        f"    os.execvp({RCLONE!r}, [{RCLONE!r}, '--config', {str(conf)!r}, 'config'])\n"
        f"for answer in ['s', 'a', {password!r}, {password!r}, 'q', 'q']:\n"
        "    time.sleep(0.3)\n"
        "    os.write(fd, (answer + '\\r').encode())\n"
        "deadline = time.time() + 20\n"
        "while time.time() < deadline:\n"
        "    try:\n"
        "        if not os.read(fd, 4096): break\n"
        "    except OSError: break\n"
        "os.waitpid(pid, 0)\n"
    )
    subprocess.run([sys.executable, "-c", script], timeout=60, check=True, capture_output=True)
    assert "RCLONE_ENCRYPT_V0:" in conf.read_text()


def _drive_ini(tmp_path, conf):
    ini = tmp_path / "graylink.ini"
    ini.write_text(
        f"[paths]\nsource = {tmp_path / 'src'}\ntarget = {tmp_path / 'links'}\ndatabase = {tmp_path / 'db.sqlite'}\n"
        f"[drive]\nenabled = yes\nremote = gdrive:Media\n" + (f"rclone_config = {conf}\n" if conf else "")
    )
    return ini


@needs_rclone
def test_an_encrypted_config_is_explained_and_opened_with_rclone_config_pass(tmp_path, monkeypatch):
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        '[gdrive]\ntype = drive\nscope = drive\ntoken = {"access_token":"made-up","expiry":"2030-01-01T00:00:00Z"}\n'
    )
    _encrypt(conf, "made-up-password")
    config = load_config(str(_drive_ini(tmp_path, conf)), {})
    env = _env(tmp_path)
    with pytest.raises(ConfigError) as err:
        read_remote(config.drive, env)
    assert "encrypted" in str(err.value) and "RCLONE_CONFIG_PASS" in str(err.value)
    assert "not a valid rclone config" not in str(err.value)
    without_rclone = {**env, "PATH": str(tmp_path / "no-bin")}
    with pytest.raises(ConfigError, match="put the rclone binary on PATH"):
        read_remote(config.drive, without_rclone)
    remote = read_remote(config.drive, {**env, "RCLONE_CONFIG_PASS": "made-up-password"})
    assert remote.name == "gdrive" and remote.path == "Media"
    assert remote.token is not None and remote.token["access_token"] == "made-up"
    assert "made-up-password" not in repr(remote)


def test_the_default_rclone_config_is_found_like_rclone_and_env_vars_define_remotes(tmp_path):
    home = tmp_path / "home"
    hidden = home / ".rclone.conf"
    hidden.parent.mkdir(parents=True)
    hidden.write_text("\ufeff  [gdrive]\n  type = drive\n  root_folder_id = `from-file`\n")
    config = load_config(str(_drive_ini(tmp_path, "")), {})
    assert config.drive.rclone_config == ""
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    assert read_remote(config.drive, env).root_folder_id == "from-file"
    env["RCLONE_CONFIG_GDRIVE_ROOT_FOLDER_ID"] = "from-env"
    assert read_remote(config.drive, env).root_folder_id == "from-env"
    only_env = {"HOME": str(tmp_path / "empty"), "PATH": os.environ["PATH"], "RCLONE_CONFIG_GDRIVE_TYPE": "drive"}
    assert read_remote(config.drive, only_env).name == "gdrive"
    with pytest.raises(ConfigError, match=r"no remote \[gdrive\].*nor in the environment"):
        read_remote(config.drive, {"HOME": str(tmp_path / "empty"), "PATH": os.environ["PATH"]})


def test_connection_string_parameters_override_the_remote():
    parsed = fspath.parse("gdrive,team_drive=0ABC,root_folder_id='a,b''c':Media/TV/")
    assert parsed == fspath.RemotePath("gdrive", "Media/TV", {"team_drive": "0ABC", "root_folder_id": "a,b'c"})
    assert fspath.parse(":drive,scope=drive:").on_the_fly == "drive"
    assert fspath.parse("/srv/local").name == ""
    with pytest.raises(fspath.RemotePathError):
        fspath.parse("gdrive,team-drive=x:")


# Names rclone's fs/fspath configNameRe accepts or refuses (rclone >= 1.62 allows "+" and "@").
REMOTE_NAMES = (
    "gdrive", "my drive", "media-tv", "名前", "a.b", "team+tv", "me@home", "a+b@c-d e", "-lead", " lead",
    "trail ", "a/b", "semi;colon", "bang!", "a--b", "a - b",
)  # fmt: skip


def test_remote_names_are_read_as_rclone_reads_them(tmp_path, rclone_binary):
    """For each name, rclone says "invalid characters" exactly when graylink refuses it."""
    for name in REMOTE_NAMES:
        run = subprocess.run(
            [rclone_binary.path, "--config", os.devnull, "lsf", "--", f"{name}:"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        rclone_refuses = "invalid characters" in run.stderr or "can't use" in run.stderr
        try:
            ours = fspath.parse(f"{name}:")
            graylink_refuses = ours.name != name and ours.name != ""
        except fspath.RemotePathError:
            graylink_refuses = True
        if "/" in name:  # a "/" before the ":" makes it a local path, for both
            assert fspath.parse(f"{name}:").name == ""
            continue
        if not rclone_binary.at_least(1, 62) and ("+" in name or "@" in name or not name.isascii()):
            # rclone 1.60 knew ASCII names without "+" and "@"; graylink reads what rclone >= 1.62 allows.
            assert rclone_refuses and not graylink_refuses, name
            continue
        if not rclone_binary.at_least(1, 62) and (name[:1] in "- " or name[-1:] == " "):
            assert not rclone_refuses and graylink_refuses, name  # 1.60 did not check the ends yet
            continue
        assert graylink_refuses == rclone_refuses, (name, run.stderr)
