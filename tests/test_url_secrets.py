"""A key pasted into a server URL stays secret (issue 20 item 12).

Older Emby guides show ``http://host:8096/emby?api_key=KEY``. Pasted into
``[emby] url`` (or a token into ``[plex] url``, a password into ``[mount]
rclone_rc``), the URL is refused before anything runs: exit 2, one line, the
key masked, the right key named. Failed before the fix: ``reconcile`` logged,
``status`` / ``status --json`` / ``doctor`` printed the key, and requests went
to ``/emby?api_key=KEY/System/Info/Public``.
"""

from __future__ import annotations

import pytest
from emby_server import FakeMediaServer

from conftest import Library

KEY = "pasted-key-made-up-6f1c2b7a"

CASES = [
    ("emby", "url", "{url}/emby?api_key=" + KEY, "[emby] api_key", "?api_key=***"),
    ("emby", "url", "http://admin:" + KEY + "@{host}", "[emby] api_key", "admin:***@"),
    ("plex", "url", "{url}/?X-Plex-Token=" + KEY, "[plex] token", "?X-Plex-Token=***"),
    ("mount", "rclone_rc", "http://rc:" + KEY + "@{host}", "[mount] rclone_rc_user and rclone_rc_pass", "rc:***@"),
]


@pytest.mark.parametrize(("section", "key", "template", "fix", "masked"), CASES)
@pytest.mark.parametrize("command", [["reconcile"], ["status"], ["status", "--json"], ["doctor"]])
def test_a_url_with_credentials_is_refused_with_the_key_masked(
    lib: Library, section: str, key: str, template: str, fix: str, masked: str, command: list[str]
) -> None:
    lib.add("Movies/A (2001)/A.mkv")
    with FakeMediaServer("emby", KEY) as server:
        host = server.url.removeprefix("http://")
        extra = {"api_key": KEY} if section == "emby" else {"token": KEY} if section == "plex" else {}
        lib.write_ini(**{section: {key: template.format(url=server.url, host=host), **extra}})
        done = lib.run(*command)
        assert server.requests == []  # nothing was sent anywhere
    assert KEY not in done.stdout + done.stderr and "Traceback" not in done.stderr
    if command == ["doctor"]:  # doctor reports a bad config as its first failed check
        assert done.returncode == 1
        lines = [line for line in done.stdout.splitlines() if f"[{section}] {key}:" in line]
    else:
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"[{section}] {key}:" in lines[0] and masked in lines[0] and fix in lines[0]
    assert not lib.database.exists()  # refused before anything was made


def test_the_same_url_through_the_environment_is_refused(lib: Library) -> None:
    lib.write_ini()
    done = lib.run("status", env={"GRAYLINK_EMBY_URL": f"http://127.0.0.1:9/emby?api_key={KEY}"})
    assert done.returncode == 2 and KEY not in done.stdout + done.stderr and "?api_key=***" in done.stderr


def test_a_plain_url_with_a_path_is_still_fine(lib: Library) -> None:
    lib.write_ini(emby={"url": "http://127.0.0.1:9/emby/", "api_key": KEY})
    done = lib.run("status", "--json")
    assert done.returncode == 0, done.stderr
    assert KEY not in done.stdout + done.stderr
