"""Secrets stay secret: not in logs, output, errors, the database or the snapshot; token files are
0600; every network call has a timeout and nothing runs through a shell."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from emby_server import FakeMediaServer
from plex_server import FakePlex

from graylink.drive.auth import write_token

from conftest import REPO, Library

EMBY_KEY = "emby-key-made-up-0d41d8cd98f00b2"
CLIENT_SECRET = "client-secret-made-up-5eb63bbbe01"
ACCESS_TOKEN = "access-token-made-up-7c4a8d09ca37"
REFRESH_TOKEN = "refresh-token-made-up-9b74c9897ba"
RC_PASS = "rc-password-made-up-3c59dc048e88"
PLEX_TOKEN = "plex-token-made-up-8e2d1c77aa"
SECRETS = (EMBY_KEY, CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN, RC_PASS, PLEX_TOKEN)

TOKEN_JSON = (
    f'{{"access_token":"{ACCESS_TOKEN}","token_type":"Bearer",'
    f'"refresh_token":"{REFRESH_TOKEN}","expiry":"2001-01-01T00:00:00Z"}}'
)
RCLONE_CONF = f"""[gdrive]
type = drive
client_id = made-up-client.apps.example
client_secret = {CLIENT_SECRET}
scope = drive,drive.activity.readonly
root_folder_id = made-up-root
token = {TOKEN_JSON}
"""


def run(lib: Library, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "graylink", "-c", str(lib.ini), *args],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(lib.root)},
        timeout=120,
    )


def commands() -> set[str]:
    from graylink.cli import cli

    return set(cli.commands)  # type: ignore[attr-defined]


def leaks(blob: bytes) -> list[str]:
    return [secret for secret in SECRETS if secret.encode() in blob]


@pytest.mark.parametrize("emby_key", [EMBY_KEY, "the-server-wants-another-key"])
def test_no_secret_in_any_artifact(lib: Library, emby_key: str) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    lib.add("TV/Show/S01/E01.mkv")
    conf = lib.root / "rclone.conf"
    conf.write_text(RCLONE_CONF)
    plex_token = PLEX_TOKEN if emby_key == EMBY_KEY else "plex-wants-another-token"
    with FakeMediaServer(api_key=emby_key) as emby, FakePlex(plex_token) as plex:
        lib.write_ini(
            emby={"url": emby.url, "api_key": EMBY_KEY},
            plex={"url": plex.url, "token": PLEX_TOKEN, "path_map": f"{lib.target}=/data"},
            drive={
                # The Drive feed's failures are the same in both cases: walk that path once.
                "enabled": "yes" if emby_key == EMBY_KEY else "no",
                "remote": "gdrive:",
                "rclone_config": str(conf),
                "client_secret": CLIENT_SECRET,
                "token_file": str(lib.root / "drive-token.json"),
                # Nothing may reach Google: these refuse connections at once.
                "api_endpoint": "http://127.0.0.1:9",
                "token_uri": "http://127.0.0.1:9/token",
                "auth_uri": "http://127.0.0.1:9/auth",
            },
            mount={"rclone_rc": "http://127.0.0.1:9", "rclone_rc_user": "rc", "rclone_rc_pass": RC_PASS},
            log={"file": str(lib.root / "graylink.log"), "level": "debug"},
        )
        outputs: list[tuple[str, bytes]] = []
        for args in (("-v", "reconcile", "--json"), ("reconcile", "--dry-run", "--json")):
            proc = run(lib, *args)
            assert b"Traceback" not in proc.stderr, proc.stderr.decode()
            outputs.append((" ".join(args), proc.stdout + proc.stderr))
        if emby_key == EMBY_KEY:
            assert emby.posts(), "the media server was told nothing: the key never travelled"
            assert all(p.headers.get("X-Emby-Token") == EMBY_KEY for p in emby.posts())
            assert all(EMBY_KEY not in p.path for p in emby.requests), "the key went into a URL"
            assert plex.urls and all(PLEX_TOKEN not in url for url in plex.urls), "the token went into a URL"
        else:
            assert b"refused the API key" in outputs[0][1]
            assert b"Plex refused the token" in outputs[0][1]
        present = commands()
        for name, args in (
            ("status", ("status",)),
            ("status", ("status", "--json")),
            ("doctor", ("doctor",)),
            ("snapshot", ("snapshot", "-o", str(lib.root / "snapshot.html"))),
        ):
            if name in present:
                proc = run(lib, "-v", *args)
                assert b"Traceback" not in proc.stderr, proc.stderr.decode()
                outputs.append((" ".join(args), proc.stdout + proc.stderr))
    files = [lib.database, Path(f"{lib.database}-wal"), lib.root / "graylink.log", lib.root / "snapshot.html"]
    for path in files:
        if path.exists():
            outputs.append((str(path), path.read_bytes()))
    found = {name: leaks(blob) for name, blob in outputs if leaks(blob)}
    assert found == {}
    assert len(outputs) >= 4


def test_config_repr_and_errors_hide_secrets(lib: Library) -> None:
    from graylink.config import ConfigError, parse_raw

    raw = {
        "paths": {"source": str(lib.source), "target": str(lib.target), "database": str(lib.database)},
        "emby": {"url": "http://127.0.0.1:9", "api_key": EMBY_KEY},
        "drive": {"client_secret": CLIENT_SECRET},
        "mount": {"rclone_rc_pass": RC_PASS},
    }
    config = parse_raw(raw)
    config = parse_raw({**raw, "plex": {"url": "http://127.0.0.1:9", "token": PLEX_TOKEN}})
    shown = repr(config) + repr(config.emby) + repr(config.drive) + repr(config.mount) + str(config)
    shown += repr(config.plex)
    assert leaks(shown.encode()) == []
    with pytest.raises(ConfigError) as caught:
        parse_raw({**raw, "emby": {"url": f"not a url {EMBY_KEY}", "api_key": EMBY_KEY}})
    assert leaks(str(caught.value).encode()) == []


def test_a_mistyped_alert_url_is_told_what_is_wrong_never_shown(lib: Library) -> None:
    """The message of a secret's parser is shown when it holds nothing of the value."""
    from graylink.config import ConfigError, parse_raw

    paths = {"source": str(lib.source), "target": str(lib.target), "database": str(lib.database)}
    with pytest.raises(ConfigError) as caught:
        parse_raw({"paths": paths, "alerts": {"urls": f"json://127.0.0.1:9/ok, tgram//{PLEX_TOKEN}/123"}})
    assert str(caught.value) == (
        "[alerts] urls: an alert URL must look like scheme://... (Apprise syntax, e.g. tgram://TOKEN/CHAT)"
    )
    assert PLEX_TOKEN not in str(caught.value)


def test_token_files_are_0600(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        fresh = tmp_path / "new" / "token.json"
        fresh.parent.mkdir()
        write_token(str(fresh), {"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN})
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
        loose = tmp_path / "loose.json"
        loose.write_text("{}")
        loose.chmod(0o644)
        write_token(str(loose), {"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN})
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    finally:
        os.umask(old)


# ----------------------------------------------------------- source scan

HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "request", "send"}
RUNNERS = {"run", "call", "check_call", "check_output"}


def _source_files() -> list[Path]:
    return sorted((REPO / "graylink").rglob("*.py"))


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{path.name}:{node.lineno}"
        func = ast.unparse(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        if any(arg is None for arg in keywords):
            continue  # **kwargs: cannot be judged here, and none are used for network calls
        base, _, method = func.rpartition(".")
        low = base.lower()
        if method in HTTP_METHODS and ("requests" in low or "session" in low) and "timeout" not in keywords:
            found.append(f"{where}: {func}(...) without timeout=")
        if func in {"httplib2.Http", "Http"} and "timeout" not in keywords:
            found.append(f"{where}: {func}(...) without timeout=")
        if func.endswith("urlopen") and "timeout" not in keywords:
            found.append(f"{where}: {func}(...) without timeout=")
        if func.startswith("subprocess.") and method in RUNNERS and "timeout" not in keywords:
            found.append(f"{where}: {func}(...) without timeout=")
        shell = keywords.get("shell")
        if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
            found.append(f"{where}: {func}(..., shell=...)")
        if func in {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"} or (
            func.startswith("os.exec") or func.startswith("os.spawn")
        ):
            found.append(f"{where}: {func}(...) runs through a shell or replaces the process")
    return found


def test_every_network_call_has_a_timeout_and_nothing_uses_a_shell() -> None:
    files = _source_files()
    assert len(files) > 10
    problems = [p for path in files for p in _problems(path)]
    assert problems == []


def test_the_source_scan_catches_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"
    bad.write_text(
        "import os, subprocess, requests, httplib2\n"
        "requests.get('http://x')\n"
        "s = requests.Session()\n"
        "s.session.request('GET', 'http://x')\n"
        "httplib2.Http()\n"
        "subprocess.run('ls', shell=True, timeout=1)\n"
        "subprocess.check_output(['ls'])\n"
        "os.system('ls')\n"
    )
    problems = _problems(bad)
    assert len(problems) == 6, problems
