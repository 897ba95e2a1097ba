"""rclone.conf found and read the way rclone does it.

Where: ``[drive] rclone_config`` when set; else rclone's own search
(``fs/config/config.go`` ``makeConfigPath``): ``RCLONE_CONFIG``, an
``rclone.conf`` beside the rclone binary, ``$XDG_CONFIG_HOME/rclone/rclone.conf``,
``~/.config/rclone/rclone.conf``, ``~/.rclone.conf``.

How: with an ``rclone`` binary on PATH, ``rclone config dump`` (rclone's own
parser, which also opens an encrypted config when ``RCLONE_CONFIG_PASS`` or
``RCLONE_PASSWORD_COMMAND`` is set); without one, a reader that follows the INI
library rclone uses (github.com/unknwon/goconfig ``read.go``): a UTF-8 BOM is
skipped, lines are trimmed, ``#``/``;`` start a comment only at the start of a
line, keys are case-sensitive, a value in backquotes or triple double quotes
loses them, plain double quotes stay part of the value.

On top of the file, as rclone's ``fs/configmap.go`` orders it:
``RCLONE_CONFIG_<REMOTE>_<KEY>`` beats ``RCLONE_<BACKEND>_<KEY>`` beats the
file; an empty value counts as unset. A remote may exist only as
``RCLONE_CONFIG_<REMOTE>_TYPE``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from graylink.errors import ConfigError

log = logging.getLogger(__name__)

DUMP_TIMEOUT = 30.0
ENCRYPTED_MARK = "RCLONE_ENCRYPT_V0:"
_VAR = re.compile(r"%\(([^)]+)\)s")
_DEFAULT_SECTION = "DEFAULT"
_WHERE = "[drive] rclone_config"
# Passwords graylink never needs (crypt's, sftp's...): dropped as soon as they are read.
_PASSWORD_KEYS = frozenset({"password", "password2", "pass", "key_file_pass"})


def find_rclone(env: Mapping[str, str]) -> str | None:
    """The rclone binary on the PATH of ``env``, or None."""
    return shutil.which("rclone", path=env.get("PATH", os.defpath))


def candidate_paths(env: Mapping[str, str], rclone: str | None) -> list[str]:
    """rclone's search order for an existing config file (after RCLONE_CONFIG)."""
    home = env.get("HOME") or os.path.expanduser("~")
    found: list[str] = []
    if rclone:
        found.append(os.path.join(os.path.dirname(os.path.realpath(rclone)), "rclone.conf"))
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg:
        found.append(os.path.join(xdg, "rclone", "rclone.conf"))
    if home:
        found.append(os.path.join(home, ".config", "rclone", "rclone.conf"))
        found.append(os.path.join(home, ".rclone.conf"))
    return found


def locate(configured: str, env: Mapping[str, str], rclone: str | None) -> str:
    """The config file rclone would use; "" means rclone's in-memory config (RCLONE_CONFIG empty)."""
    if configured:
        return configured
    if "RCLONE_CONFIG" in env:
        chosen = env["RCLONE_CONFIG"]
        return "" if chosen in ("", os.devnull) else os.path.abspath(chosen)
    for path in candidate_paths(env, rclone):
        if os.path.isfile(path):
            return path
    # None exists yet: name the file rclone would create.
    home = env.get("HOME") or os.path.expanduser("~")
    base = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return os.path.join(base, "rclone", "rclone.conf")


def is_encrypted(text: str) -> bool:
    """rclone's test (``fs/config/crypt.go``): the first line that is not blank or a comment."""
    for line in text.split("\n"):
        stripped = line.strip().lstrip("\ufeff")
        if not stripped or stripped[0] in "#;":
            continue
        return stripped.startswith("RCLONE_ENCRYPT_V")
    return False


class _ParseError(ValueError):
    pass


def _split_key(line: str) -> tuple[str, int]:
    quote = ""
    if line[0] == '"':
        quote = '"""' if len(line) >= 6 and line.startswith('"""') else '"'
    elif line[0] == "`":
        quote = "`"
    if not quote:
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut <= 0:
            raise _ParseError(line)
        return line[:cut].strip(), cut
    end = line.find(quote, len(quote))
    if end == -1:
        raise _ParseError(line)
    rest = line[end:]
    cut = min((i for i in (rest.find("="), rest.find(":")) if i >= 0), default=-1)
    if cut <= 0:
        raise _ParseError(line)
    return line[len(quote) : end], end + cut


def _value(text: str) -> str:
    right = text.strip()
    quote = ""
    if len(right) >= 2 and right[0] == "`":
        quote = "`"
    elif len(right) >= 6 and right.startswith('"""'):
        quote = '"""'
    if not quote:
        return right
    end = right.rfind(quote, len(quote))
    if end == -1:
        raise _ParseError(text)
    return right[len(quote) : end]


def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """rclone.conf's syntax, as goconfig reads it; ValueError names the line it cannot read."""
    if text.startswith("\ufeff"):
        text = text[1:]
    sections: dict[str, dict[str, str]] = {}
    section = _DEFAULT_SECTION
    counter = 1
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            section = line[1:-1].strip()
            sections.setdefault(section or _DEFAULT_SECTION, {})
            counter = 1
            continue
        if section == "":
            raise ValueError(f"a key before any section name: {line[:40]!r}")
        try:
            key, cut = _split_key(line)
            value = _value(line[cut + 1 :])
        except _ParseError:
            raise ValueError(f"cannot read the line {line[:40]!r}") from None
        if key == "-":
            key, counter = f"#{counter}", counter + 1
        if key:
            sections.setdefault(section, {})[key] = value
    return sections


@dataclass(frozen=True)
class RcloneConfig:
    """The remotes rclone would see: the file's sections plus the environment's overrides."""

    path: str  # the file read ("" when rclone would use none)
    sections: Mapping[str, Mapping[str, str]]
    reader: str  # "rclone config dump" | "graylink" | "none"
    env: Mapping[str, str] = field(repr=False, default_factory=dict)

    def file_value(self, section: str, key: str) -> str:
        """goconfig's GetValue: a dotted section falls back to its parent, %(name)s is substituted."""
        while True:
            values = self.sections.get(section, {})
            if key in values:
                return self._substitute(section, values[key])
            if "." not in section:
                return ""
            section = section.rpartition(".")[0]

    def _substitute(self, section: str, value: str) -> str:
        for _ in range(200):
            match = _VAR.search(value)
            if match is None:
                break
            name = match.group(1)
            default = self.sections.get(_DEFAULT_SECTION, {})
            found = default.get(name, self.sections.get(section, {}).get(name, ""))
            value = value.replace(match.group(0), found)
        return value

    def get(self, remote: str, key: str, backend: str = "") -> str:
        """A remote's option: RCLONE_CONFIG_<REMOTE>_<KEY>, RCLONE_<BACKEND>_<KEY>, then the file."""
        specific = self.env.get(config_env(remote, key))
        if specific:
            return specific
        if backend:
            general = self.env.get(option_env(backend, key))
            if general:
                return general
        return self.file_value(remote, key)

    def has_remote(self, name: str) -> bool:
        return name in self.sections or bool(self.env.get(config_env(name, "type")))

    def remote_type(self, name: str) -> str:
        return self.get(name, "type").strip()

    def remote_names(self) -> list[str]:
        names = [n for n in self.sections if self.file_value(n, "type")]
        for key, value in self.env.items():
            match = re.fullmatch(r"RCLONE_CONFIG_(.+?)_TYPE", key)
            if match and value and match.group(1).lower() not in names:
                names.append(match.group(1).lower())
        return names


def config_env(remote: str, key: str) -> str:
    """``fs.ConfigToEnv``: RCLONE_CONFIG_ + upper(remote_key), dashes of the key as underscores."""
    return "RCLONE_CONFIG_" + (remote + "_" + key.replace("-", "_")).upper()


def option_env(backend: str, key: str) -> str:
    """``fs.OptionToEnv`` of ``backend-key``: the backend-wide environment variable."""
    return "RCLONE_" + (backend + "_" + key).replace("-", "_").upper()


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable text"
        raise ConfigError(f"{_WHERE}: cannot read {path}: {reason}") from None


def _encrypted_error(path: str, rclone: str | None, detail: str) -> ConfigError:
    if rclone is None:
        return ConfigError(
            f"{_WHERE}: {path} is encrypted with a password; graylink opens encrypted configs through rclone: "
            "put the rclone binary on PATH and set RCLONE_CONFIG_PASS (or RCLONE_PASSWORD_COMMAND) "
            "in graylink's environment"
        )
    return ConfigError(
        f"{_WHERE}: {path} is encrypted with a password and rclone could not open it ({detail}); set "
        "RCLONE_CONFIG_PASS (or RCLONE_PASSWORD_COMMAND) in graylink's environment to the config password"
    )


def last_line(raw: bytes | str) -> str:
    """The last line of rclone's stderr, without its time stamp."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "no message"
    # rclone's log prefix "2006/01/02 15:04:05 " says nothing here.
    return re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\s+", "", lines[-1])[:300]


def dump(rclone: str, path: str, env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``rclone config dump``; RuntimeError with rclone's last line when it fails."""
    argv = [rclone, "--config", path or os.devnull, "--ask-password=false", "config", "dump"]
    try:
        done = subprocess.run(
            argv, env=dict(env), stdin=subprocess.DEVNULL, capture_output=True, timeout=DUMP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"rclone config dump took longer than {DUMP_TIMEOUT:.0f}s") from None
    except OSError as exc:
        raise RuntimeError(f"cannot run {rclone}: {exc.strerror}") from None
    if done.returncode != 0:
        raise RuntimeError(last_line(done.stderr))
    try:
        data = json.loads(done.stdout.decode("utf-8", "surrogateescape"))
    except ValueError:
        raise RuntimeError("rclone config dump printed no JSON") from None
    if not isinstance(data, dict):
        raise RuntimeError("rclone config dump printed no JSON object")
    return {
        str(name): {str(k): str(v) for k, v in values.items()}
        for name, values in data.items()
        if isinstance(values, dict)
    }


def _without_passwords(sections: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Each password becomes a SHA-256 digest of it: enough to notice that it changed (a crypt remote's
    decoded names are remembered under it), never the password itself."""
    return {
        name: {k: (_digest(v) if k in _PASSWORD_KEYS else v) for k, v in keys.items()}
        for name, keys in sections.items()
    }


def _digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def load(configured: str, env: Mapping[str, str] | None = None, *, use_rclone: bool = True) -> RcloneConfig:
    """The rclone config as rclone sees it; ConfigError (one line) when it cannot be read."""
    environ = dict(os.environ if env is None else env)
    rclone = find_rclone(environ) if use_rclone else None
    path = locate(configured, environ, rclone)
    text = _read_text(path) if path else None
    if text is None:
        if path and configured:
            raise ConfigError(f"{_WHERE}: {path} does not exist (run 'rclone config' first)")
        return RcloneConfig(path, {}, "none", environ)
    encrypted = is_encrypted(text)
    if rclone is not None:
        try:
            return RcloneConfig(path, _without_passwords(dump(rclone, path, environ)), "rclone config dump", environ)
        except RuntimeError as exc:
            if encrypted:
                raise _encrypted_error(path, rclone, str(exc)) from None
            log.debug("rclone config dump failed (%s): reading %s directly", exc, path)
    if encrypted:
        raise _encrypted_error(path, None, "")
    try:
        return RcloneConfig(path, _without_passwords(parse_ini(text)), "graylink", environ)
    except ValueError as exc:
        raise ConfigError(f"{_WHERE}: {path} is not a valid rclone config: {exc}") from None
