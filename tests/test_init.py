"""``graylink init`` through a pseudo-terminal (pexpect), against a real rclone mount of a local folder
and the loopback Emby (``tests/emby_server.py``): the INI it writes runs ``reconcile`` and passes
``doctor``; Ctrl-C writes nothing; ``--yes`` asks nothing; an existing config is kept."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from graylink.report import discover
from tests.emby_server import FakeMediaServer
from tests.test_mount import SHOW, Mounted, free_port, rclone_mount  # noqa: F401  (the imported fixture)

ROOT = Path(__file__).resolve().parent.parent
KEY = "made-up-emby-key-4321"


def env(tmp_path: Path) -> dict[str, str]:
    """English whatever the runner's locale (init follows LANGUAGE, LC_ALL, LC_MESSAGES, LANG)."""
    base = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    return {**base, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT), "COLUMNS": "200", "LANG": "C.UTF-8"}


def graylink(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graylink", *args], capture_output=True, text=True, env=env(tmp_path), timeout=120
    )


def spawn(tmp_path: Path, ini: Path, *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "graylink", "-c", str(ini), "init", *args],
        env=env(tmp_path),
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 200),
    )


@pytest.mark.fuse
def test_the_guided_setup_writes_an_ini_that_reconciles_and_passes_doctor(
    tmp_path: Path,
    rclone_mount: Callable[..., Mounted],  # noqa: F811
) -> None:
    m = rclone_mount()
    # A library that was there before graylink: its files hold still, so they are announced at once ([scan] settle).
    hour_ago = time.time() - 3600
    for path in m.src.rglob("*"):
        os.utime(path, (hour_ago, hour_ago))
    ini = tmp_path / "conf" / "graylink.ini"
    with FakeMediaServer("jellyfin", api_key=KEY, locations=["/media/Show", "/media/Movies"]) as jellyfin:
        child = spawn(tmp_path, ini)
        child.expect(f"rclone mount found: {m.mnt} ")
        child.expect(r"Source folder \(your rclone mount\)")
        child.sendline(str(m.mnt))
        child.expect(r"Link tree \(where the links go\) \[" + str(m.mnt) + "-links\\]")
        child.sendline(str(m.links))
        child.expect(r"Database \[~/.local/share/graylink/graylink.db\]")
        child.sendline("")
        child.expect(r"Emby/Jellyfin URL \(empty: none\)")
        child.sendline(jellyfin.url)
        child.expect("Emby/Jellyfin API key")
        child.sendline("a-wrong-key")
        child.expect("refused the API key")
        child.expect(r"Try another key\? \[Y/n\]")
        child.sendline("")
        child.expect("Emby/Jellyfin API key")
        child.sendline(KEY)
        child.expect("API key accepted")
        child.expect(r"path_map .*\[" + str(m.links) + "=/media\\]")
        child.sendline("")
        child.expect(r"Plex URL \(empty: none\)")
        child.sendline("")
        child.expect(r"Write .*graylink.ini\? \[Y/n\]")
        child.sendline("")
        child.expect("All checks passed.")
        child.expect("Next: run 'graylink -c")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
        assert KEY not in (child.before or "")  # hidden input is not echoed
        assert stat.S_IMODE(ini.stat().st_mode) == 0o600
        text = ini.read_text()
        assert f"source = {m.mnt}\n" in text and f"api_key = {KEY}\n" in text
        assert f"path_map = {m.links}=/media\n" in text
        first = graylink(tmp_path, "-c", str(ini), "reconcile")
        assert first.returncode == 0, first.stderr
        assert m.links_now() == set(SHOW)
        assert jellyfin.posts("/Library/Media/Updated")  # the new links were told
        doctor = graylink(tmp_path, "-c", str(ini), "doctor")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr


def test_ctrl_c_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    ini = tmp_path / "conf" / "graylink.ini"
    child = spawn(tmp_path, ini, "--source", str(tmp_path / "src"))
    child.expect(r"Source folder \(your rclone mount\) \[" + str(tmp_path / "src") + r"\]")
    child.sendline("")
    child.expect(r"Link tree \(where the links go\)")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130 or child.signalstatus is not None
    assert "nothing written" in (child.before or "")
    assert not ini.exists() and not ini.parent.exists()


def test_the_non_interactive_form_asks_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "TV/Show").mkdir(parents=True)
    (src / "TV/Show/e1.mkv").write_bytes(b"x")
    ini = tmp_path / "graylink.ini"
    with FakeMediaServer("emby", api_key=KEY) as emby:
        base = ["-c", str(ini), "init", "--source", str(src), "--target", str(tmp_path / "links"), "--yes"]
        wrong = graylink(tmp_path, *base, "--emby-url", emby.url, "--emby-key", "wrong")
        assert wrong.returncode == 2 and "refused" in wrong.stderr and not ini.exists()
        done = graylink(
            tmp_path, *base, "--database", str(tmp_path / "g.db"), "--emby-url", emby.url, "--emby-key", KEY
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "All checks passed." in done.stdout and "wrong" not in done.stdout + done.stderr
        assert stat.S_IMODE(ini.stat().st_mode) == 0o600
        run = graylink(tmp_path, "-c", str(ini), "reconcile")
        assert run.returncode == 0, run.stderr
        assert (tmp_path / "links/TV/Show/e1.mkv").is_symlink()


def test_an_existing_config_is_kept_without_force(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    ini = tmp_path / "graylink.ini"
    ini.write_text("[paths]\nsource = /elsewhere\ntarget = /there\n")
    kept = graylink(tmp_path, "-c", str(ini), "init", "--source", str(tmp_path / "src"), "--yes")
    assert kept.returncode == 2 and "--force" in kept.stderr and kept.stderr.count("\n") == 1
    assert ini.read_text() == "[paths]\nsource = /elsewhere\ntarget = /there\n"
    forced = graylink(tmp_path, "-c", str(ini), "init", "--source", str(tmp_path / "src"), "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"source = {tmp_path / 'src'}\n" in ini.read_text()


def test_rclone_mounts_name_their_remote_and_remote_control(tmp_path: Path) -> None:
    """/proc/self/mountinfo (fuse.rclone) and the serving process's cmdline, as rclone's pflag reads it."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    argv = ["rclone", "mount", "gdrive:Media", str(mnt), "--config", "/etc/rc.conf", "--rc", "--rc-addr", ":5599"]
    (proc / "4242/cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    mountinfo = f"36 35 0:50 / {mnt} rw,nosuid - fuse.rclone gdrive:Media rw\n40 35 0:51 / /x rw - ext4 /dev/sda1 rw\n"
    found = discover.rclone_mounts(mountinfo, str(proc))
    assert found == [discover.RcloneMount(str(mnt), "gdrive:Media", "/etc/rc.conf", "http://127.0.0.1:5599")]
    argv += ["--rc-user", "graylink", "--rc-pass", "a-secret-pass"]  # docs/rclone.md's flags
    (proc / "4242/cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    found = discover.rclone_mounts(mountinfo, str(proc))
    assert [m.rc_user for m in found] == ["graylink"] and "a-secret-pass" not in repr(found)


@pytest.mark.fuse
def test_init_gives_graylink_the_rc_user_of_the_recommended_mount(
    tmp_path: Path,
    rclone_mount: Callable[..., Mounted],  # noqa: F811
) -> None:
    """A mount with --rc-user/--rc-pass (docs/rclone.md): the config init writes names the user, so
    vfs/refresh is not refused 401; the password comes from the environment (never from rclone's process)."""
    port = free_port()
    m = rclone_mount("--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-user", "graylink", "--rc-pass", "rc-pass-1234")
    ini = tmp_path / "conf" / "graylink.ini"
    base = ["-c", str(ini), "init", "--source", str(m.mnt), "--target", str(m.links), "--yes"]
    done = graylink(tmp_path, *base, "--database", str(tmp_path / "g.db"))
    text = ini.read_text()
    assert f"rclone_rc = http://127.0.0.1:{port}\n" in text and "rclone_rc_user = graylink\n" in text, text
    assert "rc-pass-1234" not in text + done.stdout + done.stderr
    with_pass = subprocess.run(
        [sys.executable, "-m", "graylink", "-c", str(ini), "doctor"],
        capture_output=True,
        text=True,
        env={**env(tmp_path), "GRAYLINK_MOUNT_RCLONE_RC_PASS": "rc-pass-1234"},
        timeout=120,
    )
    rc_lines = [line for line in with_pass.stdout.splitlines() if "rclone rc" in line]
    assert rc_lines and not any("refused" in line for line in rc_lines), with_pass.stdout


def test_a_path_map_is_proposed_when_the_server_sees_the_tree_elsewhere(tmp_path: Path) -> None:
    for name in ("Movies", "TV"):
        (tmp_path / "src" / name).mkdir(parents=True)
    target, source = "/srv/links", str(tmp_path / "src")
    assert discover.propose_path_map(target, source, ["/media/Movies", "/media/TV"]) == "/srv/links=/media"
    assert discover.propose_path_map(target, source, ["/srv/links/Movies"]) == ""  # sees the tree where it is
    assert discover.propose_path_map(target, source, ["/a/Movies", "/b/TV"]) == ""  # no one place
