"""Drive names as the rclone mount shows them: rclone's encoding, then a crypt remote's decryption.

A stored name becomes ``Standard.Encode(Drive.Decode(name))`` with the
remote's ``encoding`` option (graylink/rclone/encoder.py). Below a crypt
remote that name is encrypted: rclone decrypts it (``rclone cryptdecode``,
with the crypt remote's own options and passwords, which graylink never
reads); a name rclone cannot decrypt is one the crypt mount does not list.

``rclone cryptdecode`` takes at most 10 names a call (rclone
``cmd/cryptdecode/cryptdecode.go``: ``CheckArgs(2, 11, …)``, the remote and
10 names; more and it exits non-zero). Decoded names are kept in memory
across polls (``DecodedNames``, bounded, least recently used out first), so
a season pack met again by the next poll, or by the Activity feed's overlap,
costs no process. Not in the DB: the item record already keeps every
resolved folder path there, so after a restart only the names of new changes
are asked again, and a plain name in the DB would be one more copy of what
the encryption hides. The cache is keyed by a digest of the crypt remote's
options, so a changed password never reuses an old answer.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from graylink.drive.remote import CryptLayer, Remote
from graylink.errors import ConfigError
from graylink.rclone import conffile
from graylink.rclone.encoder import DRIVE_DEFAULT, Encoder, from_standard, parse_mask, to_standard

log = logging.getLogger(__name__)

DECODE_TIMEOUT = 60.0
BATCH = 10  # names per call: rclone cmd/cryptdecode/cryptdecode.go CheckArgs(2, 11) (the remote + 10)
CACHE_SIZE = 50_000  # decoded names kept across polls: a few MB, more than a large library's new names a day
_FAILED = "Failed to decrypt"


class CryptError(RuntimeError):
    """rclone could not be run to decrypt names (not: a name it cannot decrypt)."""


class DecodedNames:
    """Encrypted → plain names of the service's life, least recently used out first (thread-safe)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._names: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, layer: str, name: str) -> tuple[bool, str | None]:
        """(known, plain name or None when rclone could not decrypt it)."""
        with self._lock:
            key = (layer, name)
            if key not in self._names:
                return False, None
            self._names.move_to_end(key)
            return True, self._names[key]

    def put(self, layer: str, name: str, plain: str | None) -> None:
        with self._lock:
            self._names[(layer, name)] = plain
            self._names.move_to_end((layer, name))
            while len(self._names) > self.size:
                self._names.popitem(last=False)

    def __len__(self) -> int:
        return len(self._names)

    def clear(self) -> None:
        with self._lock:
            self._names.clear()


DECODED = DecodedNames()


@dataclass
class CryptNames:
    """Encrypted names → plain ones, asked of rclone 10 at a time and remembered across polls."""

    layer: CryptLayer
    rclone: str
    env: Mapping[str, str] = field(repr=False, default_factory=dict)
    cache: DecodedNames = field(default=DECODED, repr=False)
    calls: int = 0

    @property
    def _key(self) -> str:
        # The same names decrypt alike only with the same rclone config, remote and options.
        return "\0".join((self.layer.conf_path, self.layer.spec, self.layer.fingerprint))

    def _run(self, args: list[str]) -> list[str]:
        argv = [self.rclone, "--config", self.layer.conf_path or os.devnull, "--ask-password=false"]
        argv += ["cryptdecode", *args]
        self.calls += 1
        try:
            done = subprocess.run(
                argv,
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=DECODE_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CryptError(f"cannot run rclone cryptdecode: {exc.__class__.__name__}") from None
        if done.returncode != 0:
            raise CryptError(f"rclone cryptdecode {self.layer.spec} failed: {conffile.last_line(done.stderr)}")
        return done.stdout.decode("utf-8", "surrogateescape").splitlines()

    def prefetch(self, names: Iterable[str]) -> None:
        key = self._key
        todo = sorted({n for n in names if n and not self.cache.get(key, n)[0]})
        for start in range(0, len(todo), BATCH):
            chunk = todo[start : start + BATCH]
            found: dict[str, str | None] = dict.fromkeys(chunk)
            for line in self._run([self.layer.spec, *chunk]):
                encrypted, sep, decoded = line.partition(" \t ")  # Go's Sprintln(name, "\t", plain)
                if sep and encrypted in found:
                    found[encrypted] = None if decoded == _FAILED else decoded
            for name, plain in found.items():
                self.cache.put(key, name, plain)

    def plain(self, name: str) -> str | None:
        known, plain = self.cache.get(self._key, name)
        if not known:
            self.prefetch([name])
            plain = self.cache.get(self._key, name)[1]
        return plain

    def encrypt_path(self, path: str) -> str:
        """A plain path inside the crypt remote → the path below it on the Drive."""
        if not path:
            return ""
        lines = self._run(["--reverse", self.layer.spec, path])
        _, sep, encrypted = (lines[0] if lines else "").partition(" \t ")  # "plain \t encrypted"
        if not sep or not encrypted or encrypted.startswith("Failed to"):
            raise CryptError(f"rclone could not encrypt the path {path!r} of {self.layer.spec}")
        return encrypted


@dataclass
class Names:
    """How one remote's Drive names appear on the mount."""

    encoder: Encoder = field(default_factory=lambda: Encoder(parse_mask(DRIVE_DEFAULT)))
    crypt: CryptNames | None = None
    skip_shortcuts: bool = False  # the remote's skip_shortcuts: shortcuts are not on the mount at all

    def shown(self, name: str) -> str | None:
        """The name the mount lists for a stored name, None if the mount cannot list it."""
        standard = to_standard(self.encoder, name)
        return standard if self.crypt is None else self.crypt.plain(standard)

    def mount_name(self, name: str) -> bytes | None:
        shown = self.shown(name)
        return None if shown is None else shown.encode("utf-8", "surrogateescape")

    def prefetch(self, names: Iterable[str]) -> None:
        if self.crypt is not None:
            self.crypt.prefetch(to_standard(self.encoder, n) for n in names)

    def stored(self, shown: str) -> str:
        """A path element as rclone shows it → the name rclone searches the Drive for."""
        return from_standard(self.encoder, shown)


DEFAULT_NAMES = Names()


def names_for(remote: Remote, env: Mapping[str, str] | None = None) -> Names:
    """The name mapping of ``remote``; ConfigError when a crypt remote has no rclone to decrypt it."""
    encoder = Encoder(parse_mask(remote.encoding))
    if remote.crypt is None:
        return Names(encoder, skip_shortcuts=remote.skip_shortcuts)
    environ = dict(os.environ if env is None else env)
    rclone = conffile.find_rclone(environ)
    if rclone is None:
        raise ConfigError(
            f"[drive] remote: {remote.crypt.spec} is a crypt remote; graylink decrypts its names with rclone "
            "itself: put the rclone binary on PATH (or turn the feed off with [drive] enabled = no)"
        )
    return Names(encoder, CryptNames(remote.crypt, rclone, environ), remote.skip_shortcuts)


def root_key(remote: Remote, folder_id: str) -> str:
    """What besides (start, path) decides the root folder: a crypt layer's own path."""
    if remote.crypt is None or folder_id:
        return ""
    return f" crypt {remote.crypt.spec}{remote.crypt.path}"


def root_path(remote: Remote, names: Names, path: str, folder_id: str) -> str:
    """The Drive path of the mount's root below ``path``: a crypt remote's path is encrypted there."""
    if remote.crypt is None or folder_id or names.crypt is None or not remote.crypt.path:
        return path
    try:
        encrypted = names.crypt.encrypt_path(remote.crypt.path)
    except CryptError as exc:
        raise ConfigError(f"[drive] remote: {exc}") from None
    return "/".join(p for p in (path, encrypted) if p)


def encode_name(name: str) -> bytes:
    """A Drive name as the rclone mount shows it, with Drive's default encoding (no crypt)."""
    shown = DEFAULT_NAMES.mount_name(name)
    assert shown is not None  # only a crypt layer hides names
    return shown
