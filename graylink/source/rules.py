"""Which files get links: video extensions, excluded folders, download temp names."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Rules:
    """The link rules, with names as lower-case bytes for fast matching."""

    extensions: frozenset[bytes]
    excluded_dirs: frozenset[bytes]

    @classmethod
    def build(cls, extra_extensions: tuple[str, ...] = (), exclude_dirs: tuple[str, ...] = ()) -> Rules:
        exts = {e.lower() for e in VIDEO_EXTENSIONS} | {e.lower() for e in extra_extensions}
        dirs = set(ALWAYS_EXCLUDED_DIRS) | {d.lower() for d in exclude_dirs}
        return cls(
            extensions=frozenset(e.encode("utf-8", "surrogateescape") for e in exts),
            excluded_dirs=frozenset(d.encode("utf-8", "surrogateescape") for d in dirs),
        )

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

    def fingerprint(self) -> str:
        """Changes when the rules change, so a changed rule set re-plans everything."""
        return (
            ",".join(sorted(e.decode("utf-8", "surrogateescape") for e in self.extensions))
            + "|"
            + ",".join(sorted(d.decode("utf-8", "surrogateescape") for d in self.excluded_dirs))
        )
