"""Mount health on plain folders: the gate, remount, backoff, rclone flag checks."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest

from graylink.config import Config, parse_raw
from graylink.rclone import rc
from graylink.reconcile.cycle import CycleOptions, run_cycle
from graylink.store.db import Store
from graylink.system import fsinfo
from graylink.triggers import mount, mount_checks
from graylink.triggers.mount import (
    ANCHOR,
    LISTABLE,
    MOUNTPOINT,
    NOT_EMPTY,
    Backoff,
    MountWatch,
    check_health,
    ensure_healthy,
)

from conftest import links_in


def make_config(tmp_path: Path, **mount_keys: str) -> Config:
    raw = {
        "paths": {
            "source": str(tmp_path / "src"),
            "target": str(tmp_path / "links"),
            "database": str(tmp_path / "db" / "graylink.db"),
        },
        "mount": dict(mount_keys),
    }
    return parse_raw(raw)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for rel in ("Show/S01/e01.mkv", "Show/S01/e02.mkv", "Movies/X (2001)/X.mp4"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"video")
    (tmp_path / "links").mkdir()
    return src


def links_of(tmp_path: Path) -> set[str]:
    root = tmp_path / "links"
    # Not Path.rglob: before Python 3.11.4 it raises on a link into a dead mount (ENOTCONN).
    return {os.fsdecode(rel) for rel in links_in(root)}


def reconcile(config: Config, **options: object) -> tuple[int, list[str]]:
    with Store(config.paths.database) as store:
        result = run_cycle(config, store, CycleOptions(**options))  # type: ignore[arg-type]
    return result.exit_code, result.failures


ALL = {"Show/S01/e01.mkv", "Show/S01/e02.mkv", "Movies/X (2001)/X.mp4"}


def test_plain_folder_is_healthy_and_remembered_as_no_mountpoint(tmp_path: Path, library: Path) -> None:
    config = make_config(tmp_path)
    with Store(config.paths.database) as store:
        assert check_health(config, store).ok
        assert ensure_healthy(config, store).ok
        assert store.get_meta(mount.META_WAS_MOUNTPOINT) == "0"


def test_empty_source_while_index_has_files_prunes_nothing(
    tmp_path: Path, library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    assert reconcile(config)[0] == 0
    assert links_of(tmp_path) == ALL
    # What a dropped mount looks like: the same folder, now empty.
    shutil.rmtree(library)
    library.mkdir()
    caplog.set_level(logging.INFO)
    code, failures = reconcile(config, force=True)
    assert code == 1
    assert any(NOT_EMPTY in f for f in failures)
    assert links_of(tmp_path) == ALL
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and NOT_EMPTY in errors[0]
    with Store(config.paths.database) as store:
        assert store.count("link") == 3
        assert store.count("file") == 3  # the index was not read from the empty folder


def test_missing_anchor_is_unhealthy(tmp_path: Path, library: Path) -> None:
    config = make_config(tmp_path, anchor=".graylink-anchor")
    with Store(config.paths.database) as store:
        health = check_health(config, store)
        assert (health.ok, health.failed_check) == (False, ANCHOR)
        (library / ".graylink-anchor").touch()
        assert check_health(config, store).ok


def test_require_mountpoint_on_plain_folder(tmp_path: Path, library: Path) -> None:
    config = make_config(tmp_path, require_mountpoint="yes")
    with Store(config.paths.database) as store:
        health = check_health(config, store)
    assert (health.ok, health.failed_check) == (False, MOUNTPOINT)
    assert "require_mountpoint" in health.message


def test_remembered_mountpoint_is_required(tmp_path: Path, library: Path) -> None:
    config = make_config(tmp_path)
    with Store(config.paths.database) as store:
        store.set_meta(mount.META_WAS_MOUNTPOINT, "1")
        health = check_health(config, store)
    assert health.failed_check == MOUNTPOINT
    assert "first indexed" in health.message


def test_missing_source_is_unlistable(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with Store(config.paths.database) as store:
        health = check_health(config, store)
    assert (health.ok, health.failed_check) == (False, LISTABLE)


def test_remount_command_that_heals_lets_the_same_reconcile_go_on(tmp_path: Path, library: Path) -> None:
    anchor = library / "anchor"
    command = shlex.join([sys.executable, "-c", f"open({str(anchor)!r}, 'w').close()"])
    config = make_config(tmp_path, anchor="anchor", remount_command=command, remount_wait="5s")
    code, failures = reconcile(config)
    assert (code, failures) == (0, [])
    assert links_of(tmp_path) == ALL


def test_failing_remount_command_keeps_marks_and_reports(
    tmp_path: Path, library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    assert reconcile(config)[0] == 0
    (library / "Show/S01/e02.mkv").unlink()
    failing = make_config(
        tmp_path, anchor="anchor", remount_command=shlex.join([sys.executable, "-c", "raise SystemExit(3)"])
    )
    code, failures = reconcile(failing, full=True)
    assert code == 1 and failures
    assert "Show/S01/e02.mkv" in links_of(tmp_path)
    assert any("failed with exit code 3" in r.getMessage() for r in caplog.records)
    # Once healthy (no anchor asked for), the drop is remembered: everything is verified.
    with Store(config.paths.database) as store:
        assert store.get_meta(mount.META_DOWN_SINCE) is not None
        assert ensure_healthy(config, store).ok
        assert [m.reason for m in store.pending_marks()] == ["mount-recovered"]
    assert reconcile(config)[0] == 0
    assert links_of(tmp_path) == ALL - {"Show/S01/e02.mkv"}


def test_remount_command_not_found_is_one_clear_error(
    tmp_path: Path, library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, anchor="anchor", remount_command="/nonexistent/mount-it --now")
    with Store(config.paths.database) as store:
        assert not mount.remount(config, store)
    assert any("remount command not found" in r.getMessage() for r in caplog.records)


def test_remount_timeout_is_reported(tmp_path: Path, library: Path, caplog: pytest.LogCaptureFixture) -> None:
    command = shlex.join([sys.executable, "-c", "import time; time.sleep(30)"])
    config = make_config(tmp_path, anchor="anchor", remount_command=command, remount_timeout="1s")
    with Store(config.paths.database) as store:
        assert not mount.remount(config, store)
    assert any("did not finish within 1s" in r.getMessage() for r in caplog.records)


def test_dry_run_never_runs_the_remount_command(tmp_path: Path, library: Path) -> None:
    marker = tmp_path / "ran"
    command = shlex.join([sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"])
    config = make_config(tmp_path, anchor="anchor", remount_command=command)
    with Store(config.paths.database) as store:
        result = run_cycle(config, store, CycleOptions(dry_run=True))
    assert result.exit_code == 1 and not result.mount_healthy
    assert not marker.exists()


def test_backoff_doubles_and_caps() -> None:
    backoff = Backoff()
    assert backoff.ready(0.0)
    delays = [backoff.failed(0.0) for _ in range(8)]
    assert delays == [60, 120, 240, 480, 960, 1800, 1800, 1800]
    assert not backoff.ready(1799.0) and backoff.ready(1800.0)
    backoff.succeeded()
    assert backoff.ready(0.0) and backoff.failed(0.0) == 60


def test_mount_watch_spaces_remount_attempts(tmp_path: Path, library: Path) -> None:
    counter = tmp_path / "attempts"
    command = shlex.join([sys.executable, "-c", f"open({str(counter)!r}, 'a').write('x')"])
    config = make_config(tmp_path, anchor="anchor", remount_command=command, remount_wait="1s")
    watch = MountWatch()
    with Store(config.paths.database) as store:
        assert not watch.tick(config, store, now=0.0).ok
        assert not watch.tick(config, store, now=30.0).ok  # within the first minute: no attempt
        assert not watch.tick(config, store, now=61.0).ok
    assert counter.read_text() == "xx"
    assert watch.backoff.failures == 2


def test_doctor_fails_on_unhealthy_mount_with_a_hint(tmp_path: Path, library: Path) -> None:
    config = make_config(tmp_path, anchor="anchor")
    with Store(config.paths.database) as store:
        checks = mount_checks.doctor_checks(config, store)
        status = mount_checks.mount_status(config, store)
    assert checks[0].name == "mount" and not checks[0].ok and checks[0].hint
    assert status["healthy"] is False and status["failed_check"] == ANCHOR


def test_status_keeps_the_last_failure(tmp_path: Path, library: Path) -> None:
    config = make_config(tmp_path, anchor="anchor")
    with Store(config.paths.database) as store:
        ensure_healthy(config, store)
        (library / "anchor").touch()
        status = mount_checks.mount_status(config, store)
    assert status["healthy"] is True
    assert status["last_failure"]["check"] == ANCHOR
    assert status["down_since"] is not None  # cleared by the next gate, which schedules the verification


def test_mountinfo_parsing_picks_the_deepest_mount() -> None:
    text = (
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "42 27 0:39 / /mnt/g\\040drive rw,nosuid - fuse.rclone gdrive: rw,user_id=0\n"
    )
    assert fsinfo.fs_type("/mnt/g drive/Media/x", text) == "fuse.rclone"
    assert fsinfo.fs_type("/mnt/gx", text) == "ext4"
    assert fsinfo.is_mountpoint("/mnt/g drive", text)
    assert not fsinfo.is_mountpoint("/mnt/g drive/Media", text)


def test_vfs_prefix_of_a_plain_folder(tmp_path: Path) -> None:
    prefix = rc.vfs_path_prefix(str(tmp_path))
    entry = fsinfo.mount_of(str(tmp_path))
    assert entry is not None
    assert os.path.join(entry.mount_point, prefix) == os.path.realpath(tmp_path)


def test_source_gone_after_indexing_is_a_drop_not_bad_config(tmp_path: Path, library: Path) -> None:
    # source = /mnt/gdrive/Media with /mnt/gdrive unmounted: Media is simply gone.
    config = make_config(tmp_path)
    assert reconcile(config)[0] == 0
    library.rename(tmp_path / "elsewhere")
    code, failures = reconcile(config, force=True)
    assert code == 1 and "does not exist" in failures[0]
    assert links_of(tmp_path) == ALL


def test_a_lasting_drop_is_told_once_recalled_half_hourly_and_its_end_once(
    tmp_path: Path, library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two hours of the loop's checks every 30 s over a source really gone (the
    real check, its time stepped): one ERROR, a WARNING every half hour with how
    long, an ERROR again when the reason changes, one INFO with the outage's length."""
    config = make_config(tmp_path)
    assert reconcile(config)[0] == 0
    library.rename(tmp_path / "away")
    caplog.set_level(logging.DEBUG, logger="graylink")
    start = time.time()

    def told(level: int) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("graylink.triggers")]

    with Store(config.paths.database) as store:
        for elapsed in range(0, 2 * 3600 + 1, 30):
            assert not ensure_healthy(config, store, quiet_repeats=True, now=start + elapsed).ok
        assert len(told(logging.ERROR)) == 1 and "does not exist" in told(logging.ERROR)[0]
        assert [m.split(" (since")[0] for m in told(logging.WARNING)] == [
            f"the mount is still down after {span}" for span in ("30 min", "1 h 00 min", "1 h 30 min", "2 h 00 min")
        ]
        # Another reason (an empty folder where the library was) is told at once.
        library.mkdir()
        for elapsed in (7230, 7260):
            assert ensure_healthy(config, store, quiet_repeats=True, now=start + elapsed).failed_check == NOT_EMPTY
        assert len(told(logging.ERROR)) == 2 and NOT_EMPTY in told(logging.ERROR)[1]
        # A one-shot reconcile tells the failure every time.
        assert not ensure_healthy(config, store, now=start + 7270).ok
        assert len(told(logging.ERROR)) == 3
        library.rmdir()
        (tmp_path / "away").rename(library)
        assert ensure_healthy(config, store, quiet_repeats=True, now=start + 7290).ok
        assert ensure_healthy(config, store, quiet_repeats=True, now=start + 7320).ok
    back = [m for m in told(logging.INFO) if "is back" in m]
    assert back == ["the source is back after 2 h 02 min down: every folder will be verified"]
    assert len(told(logging.ERROR)) == 3 and len(told(logging.WARNING)) == 4


def test_doctor_on_a_missing_source_names_no_filesystem_of_its_parent(tmp_path: Path) -> None:
    """issue 27 item 7: doctor reported the parent's filesystem (tmpfs: 'trusted') for a source not there."""
    from graylink.report import doctor

    ini = tmp_path / "graylink.ini"  # tmp_path/src was never made: an rclone mount point not mounted
    ini.write_text(f"[paths]\nsource = {tmp_path / 'src'}\ntarget = {tmp_path / 'links'}\n")
    checks = {check.name: check for check in doctor.run_checks(str(ini))}
    assert not checks["source"].ok and "does not exist" in checks["source"].message
    filesystem = checks["filesystem"]
    assert not filesystem.ok and "does not exist" in filesystem.message
    assert "trusted" not in filesystem.message and fsinfo.fs_type(str(tmp_path)) not in filesystem.message


def test_the_back_line_and_the_recovery_alert_tell_one_outage_length(
    tmp_path: Path, library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The outage counts from its first failed check (here a one-shot run's, 40 s
    before the loop's), to the end of the check that saw the mount back (after a
    remount of 2 s): the log's "back after" and the alert's "down for" agree."""
    from graylink.alerts.observe import from_mount
    from graylink.alerts.rules import State, evaluate

    away = tmp_path / "away"
    command = f"sh -c {shlex.quote(f'sleep 2; mv {shlex.quote(str(away))} {shlex.quote(str(library))}')}"
    config = make_config(tmp_path, remount_command=command)
    assert reconcile(config)[0] == 0
    library.rename(away)
    caplog.set_level(logging.INFO, logger="graylink")
    start = time.time()
    state = State()
    with Store(config.paths.database) as store:
        assert not ensure_healthy(config, store, allow_remount=False, now=start - 40).ok  # the one-shot run
        loop_down = ensure_healthy(config, store, allow_remount=False, quiet_repeats=True, now=start)
        state, _ = evaluate(state, from_mount(loop_down, False), "the library")
        back = ensure_healthy(config, store, quiet_repeats=True, now=start + 1)
        assert back.ok
        state, alerts = evaluate(state, from_mount(back, True), "the library")
    told = [r.getMessage() for r in caplog.records if "is back" in r.getMessage()]
    assert len(told) == 1, told
    length = told[0].removeprefix("the source is back after ").split(" down:")[0]
    assert length.endswith(" s") and 43 <= int(length[:-2]) < 60, told  # 40 s + 1 s + the 2 s remount
    assert [a.body for a in alerts if "back" in a.title] == [f"It was down for {length}."]
