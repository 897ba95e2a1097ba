"""rclone's name encoding, checked against the real rclone binary.

rclone's local backend applies the same ``ToStandardName`` to the names it
lists as the Drive backend does (backend/local/local.go ``cleanRemote``,
backend/drive/drive.go), so a local folder listed with ``--local-encoding X``
shows what a Drive remote with ``encoding = X`` shows; Drive's default is
``InvalidUtf8`` (lib/encoder/encoder.go, standard.go).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest

from graylink.rclone.encoder import DRIVE_DEFAULT, Encoder, from_standard, mount_name, parse_mask, to_standard

RCLONE = shutil.which("rclone")
needs_rclone = pytest.mark.skipif(RCLONE is None, reason="rclone is not installed")

# What rclone itself gives for a Drive with its default encoding (reproduced with a real mount).
KNOWN = {
    "Fate／Zero": "Fate‛／Zero",
    "a‛b.mkv": "a‛‛b.mkv",
    "AC/DC": "AC／DC",
    "nul\x00": "nul␀",
    "tab\tctl\x01del\x7f": "tab␉ctl␁del␡",
    ".": "．",
    "..": "．．",
    "plain 名前.mkv": "plain 名前.mkv",
}

SPECIAL = (
    " ", ".", "~", "/", "\\", ":", "?", "*", "|", '"', "'", "`", "$", "#", "%", "[", "]", ";", "<", ">",
    "\t", "\n", "\r", "\x01", "\x1f", "\x7f", "‛", "／", "．", "～", "␀", "␠", "␁", "␉", "␡", "＊", "＂",
    "：", "？", "＼", "‛4", "‛41", "‛ff", "\udcff", "\udcc3\udca9", "a", "名", "\ufffd", "!", "！",
)  # fmt: skip
ENCODINGS = (
    "InvalidUtf8",
    "Slash,InvalidUtf8",
    "None",
    "Colon,Question,Asterisk,Pipe,DoubleQuote,LtGt,BackSlash,LeftSpace,RightSpace,LeftPeriod,RightPeriod,InvalidUtf8",
    "Ctl,Del,Dot,CrLf,LeftTilde,LeftCrLfHtVt,RightCrLfHtVt,Hash,Percent,Dollar,BackQuote,SingleQuote,SquareBracket,Semicolon",
)


def test_known_names_map_as_rclone_shows_them():
    drive = Encoder(parse_mask(DRIVE_DEFAULT))
    for stored, shown in KNOWN.items():
        assert to_standard(drive, stored) == shown, stored
        # What rclone writes for a shown name lists back as that name (a lone ‛ stored by
        # another tool does not survive the way back: rclone's own search misses it too).
        assert to_standard(drive, from_standard(drive, shown)) == shown, shown


def _names(count: int) -> list[str]:
    rng = random.Random(17)
    names: set[str] = set()
    while len(names) < count:
        name = "".join(rng.choice(SPECIAL) for _ in range(rng.randint(1, 4)))
        if "/" not in name and "\x00" not in name and name not in (".", ".."):
            names.add(name)
    return sorted(names)


def _listing(folder: str, encoding: str, rclone: str | None = RCLONE) -> set[bytes]:
    done = subprocess.run(
        [rclone, "lsf", "-q", "--config", os.devnull, "--files-only", "--local-encoding", encoding, folder],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return set(done.stdout.split(b"\n")) - {b""}


# rclone 1.68 added these (lib/encoder: EncodeRaw, EncodeExclamation); older rclones refuse the names.
ENCODINGS_168 = ("Raw", "Exclamation,InvalidUtf8", "Raw,Slash,InvalidUtf8")


@pytest.mark.parametrize("encoding", ENCODINGS + ENCODINGS_168)
def test_names_list_as_rclone_lists_them(tmp_path, encoding, rclone_binary):
    if encoding in ENCODINGS_168 and not rclone_binary.at_least(1, 68):
        pytest.skip(f"{rclone_binary.id} predates the encoding {encoding} (1.68)")
    # Names are made on disk as bytes (surrogate escapes are bytes that are not UTF-8).
    names = [n for n in _names(400) if "\n" not in n]
    folder = tmp_path / "src"
    folder.mkdir()
    for name in names:
        (folder / name).touch()
    mask = Encoder(parse_mask(encoding))
    listed = _listing(str(folder), encoding, rclone_binary.path)
    assert listed == {mount_name(mask, os.fsdecode(os.fsencode(n))) for n in names}


def test_rclone_stores_a_shown_name_as_from_standard_says(tmp_path, rclone_binary):
    mask = Encoder(parse_mask(DRIVE_DEFAULT))
    folder = tmp_path / "dst"
    folder.mkdir()
    shown = [s for s in KNOWN.values() if s not in ("．", "．．") and "\x00" not in from_standard(mask, s)]
    shown = [s for s in shown if "/" not in from_standard(mask, s)]  # a local disk cannot store "/"
    for name in shown:
        touch = [rclone_binary.path, "touch", "-q", "--config", os.devnull, "--local-encoding", DRIVE_DEFAULT]
        subprocess.run(
            [*touch, f"{folder}/{name}"],
            check=True,
            timeout=60,
        )
    assert sorted(os.listdir(folder)) == sorted(from_standard(mask, s) for s in shown)


def test_raw_and_exclamation_as_rclone_168_reads_them():
    raw = Encoder(parse_mask("Raw"))
    assert raw.encode("a\x00/!") == "a\x00/!" and raw.decode("a‛／") == "a‛／"
    assert to_standard(raw, "Fate／Zero!") == "Fate‛／Zero!", "the mount still shows names in Standard"
    bang = Encoder(parse_mask("Exclamation,InvalidUtf8"))
    assert bang.encode("Hi!") == "Hi！" and bang.encode("Hi！") == "Hi‛！" and bang.decode("Hi！") == "Hi!"
    assert parse_mask("Raw,Slash") == 1 | parse_mask("Slash")


def test_bad_encoding_names_are_refused_like_rclone():
    with pytest.raises(ValueError, match="bad encoding 'Win'"):
        parse_mask("Win,Slash")
    assert parse_mask("0x2") == parse_mask("Slash")
