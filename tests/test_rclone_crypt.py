"""Crypt remotes' names, decrypted by the real rclone as graylink asks it.

``rclone cryptdecode`` takes the remote and at most 10 names (rclone
``cmd/cryptdecode/cryptdecode.go``: ``CheckArgs(2, 11, …)``, "List limit is
10 items") and prints ``name \\t plain`` or ``name \\t Failed to decrypt`` per
name. A poll that meets a season pack must ask in calls of 10, and the next
poll must not ask again. Run against every rclone found (tests/rclone_support.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from graylink.config import parse_raw
from graylink.drive.names import BATCH, CryptNames, DecodedNames, names_for
from graylink.drive.remote import CryptLayer, read_remote

PASSWORD = "made-up-crypt-password"


def _obscure(password: str) -> str:
    return subprocess.run(["rclone", "obscure", password], capture_output=True, text=True, check=True).stdout


def _crypt_conf(path: Path, password: str = PASSWORD, token: str = "t1", obscured: str = "") -> Path:
    obscured = obscured or _obscure(password)
    path.write_text(
        "[gdrive]\ntype = drive\n"
        f'token = {{"access_token": "{token}", "token_type": "Bearer", "expiry": "2030-01-01T00:00:00Z"}}\n'
        f"[secret]\ntype = crypt\nremote = gdrive:enc\npassword = {obscured.strip()}\n"
    )
    return path


def _encrypt(conf: Path, names: list[str]) -> dict[str, str]:
    """plain → encrypted, by rclone itself (--reverse takes 10 names a call too)."""
    out: dict[str, str] = {}
    for start in range(0, len(names), 10):
        argv = ["rclone", "--config", str(conf), "cryptdecode", "--reverse", "secret:", *names[start : start + 10]]
        for line in subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout.splitlines():
            plain, _, encrypted = line.partition(" \t ")
            out[plain] = encrypted
    return out


def _counting_rclone(tmp_path: Path) -> tuple[str, Path]:
    """An ``rclone`` that logs each call's arguments, then runs the rclone first on PATH."""
    import shutil

    real = shutil.which("rclone")
    assert real is not None
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "counting-rclone"
    wrapper.write_text(f'#!/bin/sh\necho "$#" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), log


def test_a_season_pack_is_decrypted_ten_names_a_call_and_once_across_polls(tmp_path, rclone_binary):
    conf = _crypt_conf(tmp_path / "rclone.conf")
    plain = [f"Show.S01E{n:02d}.1080p.mkv" for n in range(1, 26)]
    encrypted = _encrypt(conf, plain)
    assert len(set(encrypted.values())) == 25
    rclone, log = _counting_rclone(tmp_path)
    layer = CryptLayer("secret:", "", str(conf), fingerprint="f1")
    cache = DecodedNames()

    poll = CryptNames(layer, rclone, cache=cache)
    poll.prefetch([*encrypted.values(), "not-an-encrypted-name"])
    assert [poll.plain(encrypted[p]) for p in plain] == plain
    assert poll.plain("not-an-encrypted-name") is None, "a name rclone cannot decrypt is one the mount hides"
    assert poll.calls == 3, "26 names, 10 a call"
    argc = [int(n) for n in log.read_text().split()]
    assert all(n <= 5 + BATCH for n in argc), argc  # --config X --ask-password=false cryptdecode secret: + names

    again = CryptNames(layer, rclone, cache=cache)  # the next poll meets the same names
    again.prefetch([*encrypted.values(), "not-an-encrypted-name"])
    assert [again.plain(encrypted[p]) for p in plain] == plain
    assert again.calls == 0

    other = CryptNames(CryptLayer("secret:", "", str(conf), fingerprint="f2"), rclone, cache=cache)
    other.prefetch(encrypted.values())
    assert other.calls == 3, "another password (fingerprint) never reuses an answer"


def test_the_cache_keeps_the_most_recently_used_names():
    cache = DecodedNames(size=3)
    for name in ("a", "b", "c"):
        cache.put("k", name, name.upper())
    assert cache.get("k", "a") == (True, "A")  # used: kept
    cache.put("k", "d", None)
    assert cache.get("k", "b") == (False, None)
    assert cache.get("k", "a") == (True, "A")
    assert cache.get("k", "d") == (True, None)
    assert len(cache) == 3


def _drive(tmp_path: Path, conf: Path):
    raw = {
        "paths": {
            "source": str(tmp_path / "src"),
            "target": str(tmp_path / "links"),
            "database": str(tmp_path / "g.db"),
        },
        "drive": {"enabled": "yes", "rclone_config": str(conf), "remote": "secret:"},
    }
    return parse_raw(raw).drive


def test_the_fingerprint_follows_the_crypt_options_not_the_token(tmp_path):
    conf = tmp_path / "rclone.conf"
    obscured = _obscure(PASSWORD)  # random each time: rclone keeps the one it wrote
    first = read_remote(_drive(tmp_path, _crypt_conf(conf, obscured=obscured)))
    assert first.crypt is not None and first.crypt.fingerprint
    assert PASSWORD not in repr(first.crypt) and first.crypt.fingerprint not in repr(first.crypt)
    # rclone rewrote its token, not the password:
    refreshed = read_remote(_drive(tmp_path, _crypt_conf(conf, token="t2", obscured=obscured)))
    changed = read_remote(_drive(tmp_path, _crypt_conf(conf, password="another")))
    assert refreshed.crypt is not None and changed.crypt is not None
    assert refreshed.crypt.fingerprint == first.crypt.fingerprint
    assert changed.crypt.fingerprint != first.crypt.fingerprint


@pytest.mark.parametrize("count", [11, 30])
def test_names_for_a_crypt_remote_decrypts_more_than_ten_names_in_one_poll(tmp_path, rclone_binary, count):
    conf = _crypt_conf(tmp_path / "rclone.conf")
    plain = [f"e{n:02d}.mkv" for n in range(count)]
    encrypted = _encrypt(conf, plain)
    names = names_for(read_remote(_drive(tmp_path, conf)))
    names.prefetch(encrypted.values())
    assert [names.shown(encrypted[p]) for p in plain] == plain
