"""rclone's name encoding (``lib/encoder/encoder.go``, ``standard.go``), so Drive names match the mount.

rclone lists a Drive item as ``Standard.Encode(Drive.Decode(name))``
(``ToStandardName`` in ``backend/drive/drive.go``) and looks a path's element
up as ``Drive.Encode(Standard.Decode(leaf))`` (``FromStandardName``), where
Drive's mask is the remote's ``encoding`` option (default ``InvalidUtf8``) and
``Standard`` is what every rclone mount shows: NUL, ``/``, control characters,
DEL and the names ``.``/``..`` are replaced by look-alikes, and a look-alike
that was already in the name is quoted with ``‛`` (so ``Fate／Zero`` on the
Drive is ``Fate‛／Zero`` on the mount).

Names are ``str`` here with bytes that are not UTF-8 held as surrogate escapes
(``surrogateescape``), which is how they reach the filesystem as bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

QUOTE = "\u201b"  # ‛ SINGLE HIGH-REVERSED-9 QUOTATION MARK
_FULL = 0xFEE0  # ASCII + this = its FULLWIDTH form
_SYMBOL = 0x2400  # ␀: control character + this = its SYMBOL FOR picture

# The flag bits, in rclone's order (EncodeZero is 0: NUL is always encoded; EncodeRaw is bit 0 and,
# alone, turns every substitution off, NUL's too). Raw and Exclamation came with rclone 1.68.
_FLAG_NAMES = (
    "Slash", "LtGt", "DoubleQuote", "SingleQuote", "BackQuote", "Dollar", "Colon", "Question", "Asterisk",
    "Pipe", "Hash", "Percent", "BackSlash", "CrLf", "Del", "Ctl", "LeftSpace", "LeftPeriod", "LeftTilde",
    "LeftCrLfHtVt", "RightSpace", "RightPeriod", "RightCrLfHtVt", "InvalidUtf8", "Dot", "SquareBracket",
    "Semicolon", "Exclamation",
)  # fmt: skip
FLAGS = {name: 1 << (i + 1) for i, name in enumerate(_FLAG_NAMES)}
FLAGS["None"] = 0
FLAGS["Raw"] = 1

# Characters that become their FULLWIDTH form, per flag.
_FULLWIDTH = {
    "Asterisk": "*", "LtGt": "<>", "SquareBracket": "[]", "Semicolon": ";", "Question": "?", "Colon": ":",
    "Pipe": "|", "DoubleQuote": '"', "SingleQuote": "'", "BackQuote": "`", "Dollar": "$", "Slash": "/",
    "BackSlash": "\\", "Hash": "#", "Percent": "%", "Exclamation": "!",
}  # fmt: skip
_CRLFHTVT = "\t\n\v\r"


def _symbol(char: str) -> str:
    return chr(ord(char) + _SYMBOL)


def parse_mask(text: str) -> int:
    """rclone's ``MultiEncoder.Set``: comma-separated names or numbers; ValueError names the bad part."""
    mask = 0
    for part in (p.strip() for p in text.split(",")):
        if part in FLAGS:
            mask |= FLAGS[part]
            continue
        try:
            octal = re.fullmatch(r"0[0-7_]+", part)
            mask |= int(part, 8) if octal else int(part, 0)
        except ValueError:
            raise ValueError(f"bad encoding {part!r}: possible values are: {', '.join(sorted(FLAGS))}") from None
    return mask


def _is_raw_byte(char: str) -> bool:
    return "\udc80" <= char <= "\udcff"


def _normalise(text: str) -> str:
    """Re-read as UTF-8: bytes made one at a time may together form characters."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Encoder:
    """One ``MultiEncoder``: ``encode`` a raw name, ``decode`` an encoded one."""

    mask: int

    def has(self, name: str) -> bool:
        return bool(self.mask & FLAGS[name])

    def _tables(self) -> tuple[dict[str, str], set[str]]:
        """raw → encoded character, and the look-alikes that must be quoted when found raw."""
        table: dict[str, str] = {}
        for flag, chars in _FULLWIDTH.items():
            if self.has(flag):
                table.update({c: chr(ord(c) + _FULL) for c in chars})
        if self.has("CrLf"):
            table.update({c: _symbol(c) for c in "\r\n"})
        if self.has("Del"):
            table["\x7f"] = "\u2421"
        if self.has("Ctl"):
            table.update({chr(c): _symbol(chr(c)) for c in range(1, 0x20)})
        return table, set(table.values()) | {"\u2400", QUOTE}

    def _prefix(self, name: str) -> tuple[str, str]:
        first = name[0]
        rules = (
            ("LeftSpace", " ", "\u2420"),
            ("LeftPeriod", ".", "．"),
            ("LeftTilde", "~", "～"),
        )
        for flag, raw, encoded in rules:
            if self.has(flag):
                if first == raw:
                    return encoded, name[1:]
                if first == encoded:
                    return QUOTE + encoded, name[1:]
        if self.has("LeftCrLfHtVt"):
            if first in _CRLFHTVT:
                return _symbol(first), name[1:]
            if first in {_symbol(c) for c in _CRLFHTVT}:
                return QUOTE + first, name[1:]
        return "", name

    def _suffix(self, name: str) -> tuple[str, str]:
        last = name[-1]
        rules = (("RightSpace", " ", "\u2420"), ("RightPeriod", ".", "．"))
        for flag, raw, encoded in rules:
            if self.has(flag):
                if last == raw:
                    return encoded, name[:-1]
                if last == encoded:
                    return QUOTE + encoded, name[:-1]
        if self.has("RightCrLfHtVt"):
            if last in _CRLFHTVT:
                return _symbol(last), name[:-1]
            if last in {_symbol(c) for c in _CRLFHTVT}:
                return QUOTE + last, name[:-1]
        return "", name

    @property
    def raw(self) -> bool:
        """``EncodeRaw`` alone: names pass unchanged both ways (with other flags it is ignored)."""
        return self.mask == FLAGS["Raw"]

    def encode(self, name: str) -> str:
        if name == "" or self.raw:
            return name
        if self.has("Dot"):
            dots = {".": "．", "..": "．．", "．": QUOTE + "．", "．．": QUOTE + "．" + QUOTE + "．"}
            if name in dots:
                return dots[name]
        prefix, name = self._prefix(name)
        suffix = ""
        if name:
            suffix, name = self._suffix(name)
        table, quoted = self._tables()
        out = [prefix]
        for char in name:
            if char == "\x00":
                out.append("\u2400")
            elif _is_raw_byte(char):
                byte = ord(char) - 0xDC00
                out.append(f"{QUOTE}{byte:02X}" if self.has("InvalidUtf8") else char)
            elif char in table:
                out.append(table[char])
            elif char in quoted:
                out.append(QUOTE + char)
            else:
                out.append(char)
        out.append(suffix)
        return "".join(out)

    def _decode_prefix(self, name: str) -> tuple[str, str]:
        symbols = {_symbol(c) for c in _CRLFHTVT}
        first = name[:1]
        if self.has("LeftSpace") and first == "\u2420":
            return " ", name[1:]
        if self.has("LeftPeriod") and first == "．":
            return ".", name[1:]
        if self.has("LeftTilde") and first == "～":
            return "~", name[1:]
        if self.has("LeftCrLfHtVt") and first and first in symbols:
            return chr(ord(first) - _SYMBOL), name[1:]
        if first == QUOTE:
            second = name[1:2]
            if (
                (self.has("LeftSpace") and second == "\u2420")
                or (self.has("LeftPeriod") and second == "．")
                or (self.has("LeftTilde") and second == "～")
                or (self.has("LeftCrLfHtVt") and second and second in symbols)
            ):
                return second, name[2:]
        return "", name

    def _decode_suffix(self, name: str) -> tuple[str, str]:
        last = name[-1:]
        symbols = {_symbol(c) for c in _CRLFHTVT}
        for flag, raw, encoded in (("RightSpace", " ", "\u2420"), ("RightPeriod", ".", "．")):
            if self.has(flag) and last == encoded:
                name = name[:-1]
                return (encoded, name[:-1]) if name[-1:] == QUOTE else (raw, name)
        if self.has("RightCrLfHtVt") and last and last in symbols:
            name = name[:-1]
            return (last, name[:-1]) if name[-1:] == QUOTE else (chr(ord(last) - _SYMBOL), name)
        return "", name

    def decode(self, name: str) -> str:
        if self.raw:
            return name
        if self.has("Dot"):
            dots = {"．": ".", "．．": "..", QUOTE + "．": "．", QUOTE + "．" + QUOTE + "．": "．．"}
            if name in dots:
                return dots[name]
        prefix, name = self._decode_prefix(name)
        suffix, name = self._decode_suffix(name)
        table, _ = self._tables()
        back = {encoded: raw for raw, encoded in table.items()}
        out = [prefix]
        unquote_next = skip_next = False
        for i, char in enumerate(name):
            if skip_next:
                skip_next = False
                continue
            unquote, unquote_next = unquote_next, False
            if char == "\u2400":
                out.append(char if unquote else "\x00")
            elif char == QUOTE:
                if unquote:
                    out.append(char)
                else:
                    unquote_next = True
            elif char in back:
                out.append(char if unquote else back[char])
            else:
                if unquote:
                    pair = name[i : i + 2]
                    if self.has("InvalidUtf8") and re.fullmatch(r"[0-9A-Fa-f]{2}", pair):
                        byte = int(pair, 16)
                        out.append(chr(byte) if byte < 0x80 else chr(0xDC00 + byte))
                        skip_next = True
                        continue
                    out.append(QUOTE)
                out.append(char)
        if unquote_next:
            out.append(QUOTE)
        out.append(suffix)
        return _normalise("".join(out))


STANDARD = Encoder(FLAGS["Slash"] | FLAGS["Ctl"] | FLAGS["Del"] | FLAGS["Dot"])
DRIVE_DEFAULT = "InvalidUtf8"


def to_standard(backend: Encoder, name: str) -> str:
    """A name as the backend stores it → as rclone (and its mount) shows it."""
    return name if backend == STANDARD else STANDARD.encode(backend.decode(name))


def from_standard(backend: Encoder, name: str) -> str:
    """A name as rclone shows it → as the backend stores it."""
    return name if backend == STANDARD else backend.encode(STANDARD.decode(name))


def mount_name(backend: Encoder, name: str) -> bytes:
    """A stored name → the bytes of the entry the rclone mount lists."""
    return to_standard(backend, name).encode("utf-8", "surrogateescape")
