"""``graylink init`` speaks the terminal's language: Simplified Chinese when the locale asks for it
(``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``, in gettext's order), English otherwise; the file it
writes is the same either way. Driven through a pseudo-terminal (pexpect) against the loopback Emby
(``tests/emby_server.py``); every message of init has a zh-CN translation in its catalog
(``graylink/cli/locale``, extracted with ``pybabel``'s extractor through ``babel.cfg``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pexpect
import pytest

from graylink.i18n import CHINESE, DEFAULT, from_environ
from tests.catalogs import messages, untranslated
from tests.emby_server import FakeMediaServer
from tests.test_mount import rclone_mount  # noqa: F401  (the imported fixture)

ROOT = Path(__file__).resolve().parent.parent
KEY = "made-up-emby-key-4321"
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def env(tmp_path: Path, **locale: str) -> dict[str, str]:
    """The runner's environment without its own locale, then ``locale`` (e.g. ``LANG="zh_CN.UTF-8"``)."""
    base = {k: v for k, v in os.environ.items() if k not in LOCALE_VARIABLES}
    return {**base, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT), "COLUMNS": "200", **locale}


def graylink(tmp_path: Path, *args: str, **locale: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graylink", *args],
        capture_output=True,
        text=True,
        env=env(tmp_path, **locale),
        timeout=120,
    )


# The modules whose doctor checks graylink init shows: their N_-marked messages are in init's catalog.
DOCTOR_MODULES = (
    "graylink/report/doctor.py",
    "graylink/notify/emby_doctor.py",
    "graylink/notify/plex_doctor.py",
    "graylink/notify/plex.py",
    "graylink/notify/coverage.py",
    "graylink/triggers/mount_checks.py",
    "graylink/rclone/mountflags.py",
    "graylink/rclone/rc.py",
    "graylink/links/claim_report.py",
    "graylink/links/ownership.py",
    "graylink/drive/checks.py",
    "graylink/drive/mountmatch.py",
)


def test_every_message_of_init_is_translated_into_chinese() -> None:
    found = messages("graylink/cli", *DOCTOR_MODULES)
    assert len(found) >= 90  # every question, hint, error line, the summary and the doctor checks it shows
    assert "Source folder (your rclone mount)" in found and "interrupted: nothing written" in found
    assert "%(server)s refused the API key (%(reason)s)" in found and "API key accepted; %(count)s libraries" in found
    from graylink.cli.init import LOCALE_DIR
    from graylink.i18n import catalog_path

    assert untranslated(found, catalog_path(LOCALE_DIR, CHINESE)) == []


@pytest.mark.parametrize(
    ("environ", "locale"),
    [
        ({"LANG": "zh_CN.UTF-8"}, CHINESE),
        ({"LANG": "zh_CN.utf8"}, CHINESE),
        ({"LANG": "zh_TW.UTF-8"}, CHINESE),  # graylink has one Chinese, as on the pages
        ({"LANG": "en_US.UTF-8"}, DEFAULT),
        ({"LANG": "de_DE.UTF-8"}, DEFAULT),
        ({}, DEFAULT),
        ({"LANG": "C.UTF-8"}, DEFAULT),
        ({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, DEFAULT),  # LC_ALL comes first
        ({"LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, CHINESE),
        ({"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, CHINESE),
        ({"LC_ALL": "", "LC_MESSAGES": "", "LANG": "zh_CN.UTF-8"}, CHINESE),  # empty is unset
        ({"LANGUAGE": "en_US:zh_CN", "LANG": "zh_CN.UTF-8"}, DEFAULT),  # LANGUAGE comes first of all
        ({"LANGUAGE": "fr:zh_CN:en", "LANG": "en_US.UTF-8"}, CHINESE),  # the first language graylink speaks
        ({"LANGUAGE": "zh_CN", "LC_ALL": "en_US.UTF-8"}, CHINESE),
        ({"LANGUAGE": "fr", "LANG": "zh_CN.UTF-8"}, DEFAULT),  # as gettext: LANGUAGE named no catalog
    ],
)
def test_the_language_follows_the_terminals_locale(environ: dict[str, str], locale: str) -> None:
    assert from_environ(environ) == locale


def spawn(tmp_path: Path, ini: Path, *args: str, **locale: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "graylink", "-c", str(ini), "init", *args],
        env=env(tmp_path, **locale),
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 200),
    )


def answer(child: pexpect.spawn, prompt: str, reply: str) -> None:
    child.expect(re.escape(prompt))
    child.sendline(reply)


def setup(tmp_path: Path, words: dict[str, str], url: str, **locale: str) -> tuple[str, Any]:
    """One guided setup with the same answers in ``words``' language: the ini it wrote, and what it said."""
    src, links = tmp_path / "src", tmp_path / "links"
    ini = tmp_path / locale.get("LANG", "C") / "graylink.ini"
    child = spawn(tmp_path, ini, **locale)
    child.expect(re.escape(words["intro"]))
    answer(child, words["source"], str(src))
    answer(child, f"{words['target']} [{src}-links]", str(links))
    answer(child, f"{words['database']} [~/.local/share/graylink/graylink.db]", str(tmp_path / "g.db"))
    answer(child, words["url"], url)
    answer(child, words["key"], "a-wrong-key")
    child.expect(re.escape(words["refused"]))  # doctor's check, in init's words
    child.expect(re.escape(words["hint"]))
    answer(child, f"{words['again']} [Y/n]", "maybe")
    answer(child, words["y_or_n"], words["yes"])
    answer(child, words["key"], KEY)
    child.expect(re.escape(words["accepted"]))
    answer(child, f"[{links}=/media]", "")
    answer(child, words["plex"], "")
    child.expect(re.escape(words["write"]) + r".*\[Y/n\]")
    child.sendline("")
    child.expect(re.escape(words["wrote"]))
    child.expect(re.escape(words["passed"]))
    child.expect(re.escape(words["next"]))
    child.expect(pexpect.EOF)
    said = child.before
    child.close()
    assert child.exitstatus == 0, said
    return ini.read_text(), said


ENGLISH_WORDS = {
    "intro": "Enter takes the [default]; Ctrl-C stops and writes nothing.",
    "source": "Source folder (your rclone mount)",
    "target": "Link tree (where the links go)",
    "database": "Database",
    "url": "Emby/Jellyfin URL (empty: none)",
    "key": "Emby/Jellyfin API key",
    "hint": "    hint: ",
    "again": "Try another key?",
    "y_or_n": "Please answer y or n.",
    "yes": "y",
    "plex": "Plex URL (empty: none)",
    "write": "Write ",
    "wrote": "(mode 0600). graylink doctor says:",
    "passed": "All checks passed.",
    "next": "Next: run 'graylink -c",
    "refused": "Jellyfin refused the API key (",
    "accepted": "API key accepted; 1 libraries",
}
CHINESE_WORDS = {
    "intro": "直接回车即采用 [方括号] 里的默认值；按 Ctrl-C 退出，不会写入任何东西。",
    "source": "源目录（你的 rclone 挂载点）",
    "target": "链接目录（软链接放在这里）",
    "database": "数据库文件",
    "url": "Emby/Jellyfin 地址（留空表示不用）",
    "key": "Emby/Jellyfin 的 API 密钥",
    "hint": "    提示：",
    "again": "换一个密钥再试？",
    "y_or_n": "请输入 y 或 n。",
    "yes": "是",
    "plex": "Plex 地址（留空表示不用）",
    "write": "写入 ",
    "wrote": "（权限 0600）。graylink doctor 的检查结果：",
    "passed": "全部检查通过。",
    "next": "下一步：先运行一次 'graylink -c",
    "refused": "Jellyfin 拒绝了这个 API 密钥（",
    "accepted": "API 密钥有效；共 1 个媒体库",
}


def test_init_speaks_chinese_under_a_chinese_locale_and_writes_the_same_file(tmp_path: Path) -> None:
    (tmp_path / "src/TV/Show").mkdir(parents=True)
    (tmp_path / "src/TV/Show/e1.mkv").write_bytes(b"x")
    with FakeMediaServer("jellyfin", api_key=KEY, locations=["/media/TV"]) as jellyfin:
        chinese, said_zh = setup(tmp_path, CHINESE_WORDS, jellyfin.url, LANG="zh_CN.UTF-8")
        english, said_en = setup(tmp_path, ENGLISH_WORDS, jellyfin.url, LANG="en_US.UTF-8")
    assert chinese == english  # keys, values and the comment: English whatever the language
    assert f"api_key = {KEY}\n" in chinese and f"path_map = {tmp_path / 'links'}=/media\n" in chinese
    assert "(mode 0600)" not in said_zh and "全部检查通过" not in said_en
    assert KEY not in said_zh  # hidden input is not echoed


def test_the_non_interactive_form_says_its_errors_in_chinese(tmp_path: Path) -> None:
    ini = tmp_path / "graylink.ini"
    missing = graylink(
        tmp_path, "-c", str(ini), "init", "--source", str(tmp_path / "nope"), "--yes", LANG="zh_CN.UTF-8"
    )
    assert missing.returncode == 2 and missing.stderr == f"graylink: {tmp_path / 'nope'} 不是文件夹\n"
    (tmp_path / "src").mkdir()
    inside = ["-c", str(ini), "init", "--source", str(tmp_path / "src"), "--target", str(tmp_path / "src/links")]
    refused = graylink(tmp_path, *inside, "--yes", LANG="zh_CN.UTF-8")  # the validator's own words follow, English
    assert refused.returncode == 2 and refused.stderr.startswith("graylink: 配置无效：[paths] target ")
    assert not ini.exists()
    done = graylink(tmp_path, "-c", str(ini), "init", "--source", str(tmp_path / "src"), "--yes", LC_ALL="zh_CN.UTF-8")
    assert done.returncode == 0, done.stderr
    assert "全部检查通过。" in done.stdout and "下一步：" in done.stdout
    lines = done.stdout.splitlines()
    checks = [line for line in lines if line.startswith(("✔", "✘", "!"))]
    assert len(checks) >= 7 and all(re.search(r"[\u4e00-\u9fff]", line) for line in checks), done.stdout
    assert all(re.search(r"[\u4e00-\u9fff]", line) for line in lines), done.stdout  # every line init shows
    doctor = graylink(tmp_path, "-c", str(ini), "doctor", LANG="zh_CN.UTF-8")  # graylink doctor stays English
    assert "is readable" in doctor.stdout + doctor.stderr and not re.search(r"[\u4e00-\u9fff]", doctor.stdout)
    kept = graylink(tmp_path, "-c", str(ini), "init", "--source", str(tmp_path / "src"), "--yes", LANGUAGE="zh_CN")
    assert kept.returncode == 2 and "已存在" in kept.stderr and "--force" in kept.stderr
    english = graylink(tmp_path, "-c", str(ini), "init", "--source", str(tmp_path / "src"), "--yes", LANG="C.UTF-8")
    assert english.returncode == 2 and "exists; graylink init never replaces a config" in english.stderr


def test_ctrl_c_says_nothing_was_written_in_chinese(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    ini = tmp_path / "conf" / "graylink.ini"
    child = spawn(tmp_path, ini, "--source", str(tmp_path / "src"), LANG="zh_CN.UTF-8")
    answer(child, f"源目录（你的 rclone 挂载点） [{tmp_path / 'src'}]", "")
    child.expect(re.escape("链接目录（软链接放在这里）"))
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert "已中断：没有写入任何东西" in (child.before or "")
    assert not ini.exists() and not ini.parent.exists()


def test_init_on_a_real_rclone_mount_shows_every_check_in_chinese(
    tmp_path: Path,
    rclone_mount: Any,  # noqa: F811
) -> None:
    """The checks init shows for an rclone mount (its flags, its rc, the rc serving the mount), in Chinese;
    ``graylink doctor`` on the same file stays English."""
    import shutil

    if shutil.which("rclone") is None or not os.path.exists("/dev/fuse"):
        pytest.skip("FUSE TESTS SKIPPED: rclone or /dev/fuse missing")
    from tests.test_mount import free_port

    port = free_port()
    m = rclone_mount("--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-user", "graylink", "--rc-pass", "rc-pass-1234")
    ini = tmp_path / "conf" / "graylink.ini"
    args = ["-c", str(ini), "init", "--source", str(m.mnt), "--target", str(m.links), "--yes"]
    rc_pass = {"GRAYLINK_MOUNT_RCLONE_RC_PASS": "rc-pass-1234"}
    done = graylink(tmp_path, *args, "--database", str(tmp_path / "g.db"), LANG="zh_CN.UTF-8", **rc_pass)
    checks = [line for line in done.stdout.splitlines() if line.startswith(("✔", "✘", "!"))]
    names = {line.split(":")[0][2:] for line in checks}
    assert {"rclone flags", "rclone rc", "rclone rc source", "mount"} <= names, done.stdout
    untranslated = [line for line in checks if not re.search(r"[\u4e00-\u9fff]", line)]
    assert untranslated == [], done.stdout
    doctor = graylink(tmp_path, "-c", str(ini), "doctor", LANG="zh_CN.UTF-8", **rc_pass)
    assert "rclone rc at" in doctor.stdout and not re.search(r"[\u4e00-\u9fff]", doctor.stdout), doctor.stdout
