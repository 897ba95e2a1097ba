"""Which files beside a video belong to it: subtitles, .nfo and artwork (``[rules] sidecars``).

A sidecar is linked only while a video it belongs to is linked, so a subtitle
whose video went (or was excluded) goes with it, and one that matches no
video is never linked. "Belongs" follows what Jellyfin reads beside a video:

- a file whose name starts with the video's name (without extension),
  followed by the end or a separator: ``Movie.en.srt``, ``Movie.forced.srt``,
  ``Movie-poster.jpg``, ``Movie.nfo`` (Jellyfin's
  ``MediaBrowser.Providers/MediaInfo/MediaInfoResolver.cs`` matches external
  subtitles by this prefix and ``NamingOptions.MediaFlagDelimiters``;
  ``MediaBrowser.LocalMetadata/Images/LocalImageProvider.cs`` takes
  ``<video>-poster``, ``<video>-fanart`` …);
- the folder's own artwork and metadata in a folder that holds a linked video:
  ``poster.jpg``, ``folder.jpg``, ``fanart.jpg``, ``backdrop.jpg``, ``movie.nfo``
  … (LocalImageProvider's names for an item in its own folder);
- a show's artwork and metadata in a folder with no video of its own but a
  linked video somewhere below: ``tvshow.nfo``, ``season.nfo``, ``poster.jpg``,
  ``season01-poster.jpg`` (``PopulateSeasonImagesFromSeriesFolder``).

Pure: names in, names out. A folder costs one pass over its names; matching a
name against the folder's videos is a set lookup per separator in the name,
never a loop over the videos.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Jellyfin's subtitle extensions (Emby.Naming NamingOptions.SubtitleFileExtensions).
SUBTITLE_EXTENSIONS = frozenset(
    {b".srt", b".ass", b".ssa", b".sub", b".idx", b".sup", b".vtt", b".smi", b".sami", b".mks", b".ttml"}
)
# BaseItem.SupportedImageExtensions, plus .bmp which Emby reads.
IMAGE_EXTENSIONS = frozenset({b".jpg", b".jpeg", b".png", b".webp", b".tbn", b".gif", b".bmp"})
METADATA_EXTENSIONS = frozenset({b".nfo"})
SIDECAR_EXTENSIONS = SUBTITLE_EXTENSIONS | IMAGE_EXTENSIONS | METADATA_EXTENSIONS

# What separates a video's name from a sidecar's suffix: "Movie.en.srt",
# "Movie-poster.jpg", "Movie_forced.srt", "Movie - English.srt".
_SEPARATORS = frozenset(b" .-_")

# The artwork of an item in its own folder (LocalImageProvider), without extension.
_FOLDER_IMAGES = frozenset(
    {
        b"poster", b"folder", b"cover", b"default", b"movie", b"show", b"jacket", b"keyart",
        b"fanart", b"backdrop", b"background", b"art", b"banner", b"logo", b"clearlogo",
        b"clearart", b"disc", b"discart", b"cdart", b"landscape", b"thumb",
    }
)  # fmt: skip
# Numbered backdrops: fanart1, fanart-2, backdrop3, background-1, art-4.
_NUMBERED = re.compile(rb"(?:fanart|backdrop|background|art)-?\d{1,2}")
# A show folder's season artwork: season01-poster, season-specials-fanart, season-all-banner.
_SEASON_IMAGE = re.compile(rb"season(?:\d{1,4}|-specials|-all)-(?:poster|fanart|banner|landscape|thumb)")
_FOLDER_NFOS = frozenset({b"movie", b"tvshow", b"season", b"video_ts"})


def is_sidecar(name: bytes) -> bool:
    """Whether a file name has a sidecar's extension (a subtitle, an image, an .nfo)."""
    dot = name.rfind(b".")
    return dot > 0 and name[dot:].lower() in SIDECAR_EXTENSIONS


def _folder_own(stem: bytes, ext: bytes) -> bool:
    """Whether ``stem`` + ``ext`` (lower case) is a folder's own artwork or metadata."""
    if ext in METADATA_EXTENSIONS:
        return stem in _FOLDER_NFOS
    if ext not in IMAGE_EXTENSIONS:
        return False
    return stem in _FOLDER_IMAGES or bool(_NUMBERED.fullmatch(stem) or _SEASON_IMAGE.fullmatch(stem))


def _owned(stem: bytes, videos: set[bytes]) -> bool:
    """Whether ``stem`` is a video's name, or one followed by a separator and more."""
    return stem in videos or any(byte in _SEPARATORS and stem[:i] in videos for i, byte in enumerate(stem))


def belonging(names: list[bytes], videos: list[bytes], linked_below: Callable[[], bool]) -> list[bytes]:
    """The names of ``names`` (a folder's files) that are sidecars of the linked ``videos``
    of the same folder. ``linked_below`` says whether a video is linked in a folder
    below this one; it is asked only of a folder with no video and a candidate."""
    stems = {v[: v.rfind(b".")].lower() for v in videos}
    chosen = set(videos)
    own: list[bytes] = []
    out: list[bytes] = []
    for name in names:
        dot = name.rfind(b".")
        if dot <= 0 or name[:1] == b"." or name in chosen:
            continue  # no extension, a hidden file (._poster.jpg of macOS), or linked already
        ext = name[dot:].lower()
        if ext not in SIDECAR_EXTENSIONS:
            continue
        stem = name[:dot].lower()
        if stems and _owned(stem, stems):
            out.append(name)
        elif _folder_own(stem, ext):
            own.append(name)
    if own and (videos or linked_below()):
        out.extend(own)
    return out
