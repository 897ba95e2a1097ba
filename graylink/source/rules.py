"""Which files get links: video extensions, excluded folders, download temp names, samples."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graylink.config.sections import RulesConfig

# Every extension Jellyfin/Emby treat as video (Emby.Naming VideoFileExtensions
# and MediaBrowser.Model MimeTypes), minus the ambiguous ones that are mostly
# not video (.001 .bin .img .nrg .ifo), plus what Chinese media tools add.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".3g2", ".3gp", ".3gp2", ".3gpp", ".amv", ".asf", ".avc", ".avi", ".bivx", ".divx",
        ".dv", ".dvr-ms", ".f4v", ".fli", ".flv", ".iso", ".m2p", ".m2t", ".m2ts", ".m2v",
        ".m4v", ".mk3d", ".mkv", ".mov", ".mp2v", ".mp4", ".mp4v", ".mpe", ".mpeg", ".mpg",
        ".mpv2", ".mts", ".mxf", ".nsv", ".nuv", ".ogm", ".ogv", ".pva", ".qt", ".rec", ".rm",
        ".rmvb", ".strm", ".svq3", ".tp", ".trp", ".ts", ".ty", ".viv", ".vob", ".vp3", ".webm",
        ".wmv", ".wtv", ".xvid",
    }
)  # fmt: skip

# Folders whose content is never linked, at any depth and in any case: a disc
# structure -- a Blu-ray's BDMV, a DVD's VIDEO_TS (and its AUDIO_TS beside
# it) -- holds stream fragments (.m2ts, .vob) that a media server linked file
# by file shows as broken separate videos; it plays the disc as its folder.
ALWAYS_EXCLUDED_DIRS: frozenset[str] = frozenset({"bdmv", "video_ts", "audio_ts"})

_TEMP_SUFFIXES = (b".part", b".partial", b".!qb", b".!ut", b".crdownload", b".tmp", b".downloading")
_TEMP_PREFIXES = (b".fuse_hidden", b"._", b".~", b"~$")
_TEMP_EXTS = frozenset(_TEMP_SUFFIXES)

# A sample, by name, as the media servers tell one. Jellyfin ignores
# ``sample.EXT``, ``*.sample.EXT`` and everything in a ``sample`` folder
# (Emby.Server.Implementations/Library/IgnorePatterns.cs); Plex ignores a file
# with "sample" in its name under 300 MB, and "samples" subfolders; release
# groups name them ``Movie-sample.mkv``. So: "sample" as a word of the name
# (bounded by the start, the end or a separator: "Samples of Life" and
# "resample" are not samples), or a folder named sample(s). The size floor
# (Plex's) keeps a real film whose title holds the word.
_SAMPLE_WORD = re.compile(rb"(?:^|[ ._\-\[\]()])sample(?:$|[ ._\-\[\]()])")
_SAMPLE_DIRS = frozenset({b"sample", b"samples"})
# Radarr skips its sample check for these (DetectSample.cs): a .strm is tiny
# by nature, a disc image is never a sample.
_NEVER_SAMPLES = frozenset({b".strm", b".iso", b".img"})


@dataclass(frozen=True)
class Rules:
    """The link rules, with names as lower-case bytes for fast matching."""

    extensions: frozenset[bytes]
    excluded_dirs: frozenset[bytes]
    sidecars: bool = False  # link the subtitles, .nfo and artwork of linked videos (graylink.source.sidecars)
    sample_floor: int = 0  # videos named like samples and smaller than this are not linked; 0 = off

    @classmethod
    def build(
        cls,
        extra_extensions: tuple[str, ...] = (),
        exclude_dirs: tuple[str, ...] = (),
        sidecars: bool = False,
        sample_floor: int = 0,
    ) -> Rules:
        exts = {e.lower() for e in VIDEO_EXTENSIONS} | {e.lower() for e in extra_extensions}
        dirs = set(ALWAYS_EXCLUDED_DIRS) | {d.lower() for d in exclude_dirs}
        return cls(
            extensions=frozenset(e.encode("utf-8", "surrogateescape") for e in exts),
            excluded_dirs=frozenset(d.encode("utf-8", "surrogateescape") for d in dirs),
            sidecars=sidecars,
            sample_floor=sample_floor,
        )

    @classmethod
    def of(cls, config: RulesConfig) -> Rules:
        """The rules of a config's ``[rules]`` section."""
        floor = config.sample_size if config.skip_samples else 0
        return cls.build(config.extensions, config.exclude_dirs, config.sidecars, floor)

    def wants_file(self, name: bytes) -> bool:
        """Whether a file with this name (no folder) gets a link."""
        return bool(self.wanted([name]))

    def wanted(self, names: list[bytes]) -> list[bytes]:
        """The names of ``names`` that get links (``wants_file`` over a folder's
        files in one call: a first run asks it of every file)."""
        extensions = self.extensions
        out = []
        for name in names:
            dot = name.rfind(b".")
            if dot <= 0:
                continue
            ext = name[dot:].lower()
            # Every temporary suffix is one extension, so "ends with it" is "is the extension".
            if ext not in extensions or ext in _TEMP_EXTS:
                continue
            first = name[:1]  # look at prefixes only when one can match
            if (first == b"." or first == b"~") and name.lower().startswith(_TEMP_PREFIXES):
                continue
            out.append(name)
        return out

    def wants_dir(self, rel_dir: bytes) -> bool:
        """Whether files under this folder (relative to the source) may get links."""
        if not rel_dir:
            return True
        excluded = self.excluded_dirs
        return not any(part.lower() in excluded for part in rel_dir.split(b"/"))

    def named_samples(self, rel_dir: bytes, names: list[bytes]) -> list[bytes]:
        """The names of ``names`` (videos of the folder ``rel_dir``) that are
        samples by name; whether each is one depends on its size (``is_sample``).
        Empty when the filter is off. One C-level lower() and ``in`` per name:
        the regex runs only on the few names holding "sample"."""
        if not self.sample_floor:
            return []
        folder = rel_dir.rpartition(b"/")[2].lower()
        in_sample_dir = folder in _SAMPLE_DIRS
        if not in_sample_dir and b"sample" not in b"\0".join(names).lower():
            return []  # nearly every folder: one join and one search in C, no loop
        out = []
        for name in names:
            dot = name.rfind(b".")
            if name[dot:].lower() in _NEVER_SAMPLES:
                continue
            if in_sample_dir:
                out.append(name)
                continue
            stem = name[:dot].lower()
            if b"sample" in stem and _SAMPLE_WORD.search(stem):
                out.append(name)
        return out

    def is_sample(self, size: int) -> bool:
        """Whether a video named like a sample (``named_samples``) of this size is one."""
        return 0 <= size < self.sample_floor

    def fingerprint(self) -> str:
        """Changes when the rules change, so a changed rule set re-plans everything."""
        return (
            ",".join(sorted(e.decode("utf-8", "surrogateescape") for e in self.extensions))
            + "|"
            + ",".join(sorted(d.decode("utf-8", "surrogateescape") for d in self.excluded_dirs))
            + f"|sidecars={int(self.sidecars)}|samples<{self.sample_floor}"
        )
