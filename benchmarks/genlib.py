"""Generate a synthetic media library of zero-byte files, for benchmarks.

The layout is what graylink meets in the wild:

    Movies/Title (Year)/Title (Year).mkv  + .nfo .srt poster.jpg fanart.jpg
    Movies/Title (Year)/Extras/...          (some movies)
    Movies/Title (Year)/BDMV/STREAM/00001.m2ts, CLIPINF, PLAYLIST, BACKUP (Blu-ray discs)
    TV/Show (Year)/Season NN/Show SNNEEE.mkv + .nfo .srt
    Anime/日本語 or 中文 title (Year)/Season NN/... + .ass

plus a few awkward names (double spaces, a leading dash, emoji, apostrophes).
The output is a pure function of ``files`` and ``seed``: the same arguments
give the same tree, so runs on different days compare. About 7.3 files per
folder, the ratio of the libraries graylink's design was measured on
(138k files in 19k folders).

    python benchmarks/genlib.py DEST [--files N] [--seed S] [--videos SHARE]

``--videos 0.6`` makes a video-heavy library (a Drive library without local
metadata): sidecars are left out until 60 % of the files are videos.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

DEFAULT_FILES = 140_000
MAX_FILES = 1_000_000

# Extensions the generator writes that graylink links (every other file it
# writes is a sidecar, or sits under a BDMV folder).
VIDEO_EXTS = (".mkv", ".mp4", ".avi", ".ts", ".m4v", ".rmvb", ".wmv")
_VIDEO_WEIGHTS = (70, 18, 4, 3, 2, 2, 1)

_EN_WORDS = (
    "Silent", "River", "Dark", "Night", "Last", "Summer", "Iron", "Crown", "Broken", "Arrow", "Golden", "Hour",
    "Lost", "City", "Red", "Horizon", "Cold", "Fire", "Hidden", "Garden", "Winter", "Light", "Black", "Water",
    "Long", "Road", "Distant", "Star", "Glass", "House", "Wild", "Heart", "Paper", "Moon", "Storm", "Empire",
    "Secret", "Shadow", "Blue", "Velvet", "Midnight", "Train", "Savage", "Kingdom", "Quiet", "Crimson", "Tide",
    "Northern", "Lights", "Falling", "Sky", "Steel", "Rain", "Electric", "Dream", "Burning", "Bridge", "Hollow",
    "Point", "Endless", "Ocean", "First", "Contact", "Final", "Frontier", "Morning", "Glory", "Twisted", "Fate",
    "Perfect", "Stranger", "Silver", "Lining", "Desert", "Rose",
)  # fmt: skip
_EN_PATTERNS = ("{a} {b}", "The {a} {b}", "{a} of the {b}", "{a} {b} {c}", "A {a} {b}", "{a}'s {b}")

_JA_WORDS = (
    "星", "空", "海", "夢", "剣", "花", "月", "風", "桜", "魔法", "少女", "勇者", "学園", "天使", "悪魔",
    "時間", "世界", "約束", "記憶", "銀河", "青春", "忍者", "竜", "雪", "光", "影", "恋", "旅人", "王国",
)  # fmt: skip
_JA_PATTERNS = ("{a}の{b}", "{a}と{b}", "{a}{b}物語", "{a}の{b}は{c}", "とある{a}の{b}")
_ZH_WORDS = (
    "天空", "龙", "剑", "梦", "江湖", "少年", "星辰", "长安", "仙", "侠", "风云", "山海", "明月", "凡人",
    "斗破", "苍穹", "吞噬", "完美", "世界", "时光", "灵笼", "雪中", "刀", "诛仙", "神墓",
)  # fmt: skip
_ZH_PATTERNS = ("{a}之{b}", "{a}{b}传", "{a}{b}", "{a}与{b}")
_FANSUBS = ("[SweetSub] ", "[Nekomoe kissaten] ", "[LoliHouse] ", "[喵萌奶茶屋] ", "[桜都字幕组] ")

# A few names that trip naive tools: leading dash, double spaces, emoji, quotes.
_ODD_TITLES = (
    "-Dash Leading Title",
    "Double  Spaced  Title",
    "🎬 Popcorn Night",
    "Ocean's Twelve Remix",
    "Rock & Roll #1",
    "Café Déjà Vu",
    "50% Off; Really",
    "Non\u00a0Breaking Space",
)


@dataclass
class LibraryStats:
    """What was written: counts, the videos graylink should link, sample folders."""

    root: str
    files: int = 0
    dirs: int = 0
    videos: int = 0  # files graylink links with default rules (videos outside BDMV)
    bdmv_files: int = 0
    seconds: float = 0.0
    season_dirs: list[str] = field(default_factory=list)  # a few, relative to root, for "new episode" tests


@dataclass(frozen=True)
class _Dir:
    path: str  # relative to the library root
    files: tuple[str, ...]


class _Names:
    """Unique, deterministic titles."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()
        # Every awkward name shows up early, so even a small smoke library has them all.
        self.odd = list(_ODD_TITLES)

    def _unique(self, base: str) -> str:
        name, n = base, 2
        while name in self.seen:
            name = f"{base} {n}"
            n += 1
        self.seen.add(name)
        return name

    def _fill(self, pattern: str, words: tuple[str, ...]) -> str:
        a, b, c = (self.rng.choice(words) for _ in range(3))
        return pattern.format(a=a, b=b, c=c)

    def english(self) -> str:
        if self.odd:
            base = self.odd.pop(0)
        elif self.rng.random() < 0.01:
            base = self.rng.choice(_ODD_TITLES)
        else:
            base = self._fill(self.rng.choice(_EN_PATTERNS), _EN_WORDS)
        return self._unique(f"{base} ({self.rng.randint(1950, 2024)})")

    def asian(self) -> str:
        if self.rng.random() < 0.5:
            base = self._fill(self.rng.choice(_JA_PATTERNS), _JA_WORDS)
        else:
            base = self._fill(self.rng.choice(_ZH_PATTERNS), _ZH_WORDS)
        if self.rng.random() < 0.2:
            base = self.rng.choice(_FANSUBS) + base
        return self._unique(f"{base} ({self.rng.randint(1980, 2024)})")


def _video_ext(rng: random.Random) -> str:
    return rng.choices(VIDEO_EXTS, _VIDEO_WEIGHTS)[0]


def _movie(rng: random.Random, names: _Names) -> Iterator[_Dir]:
    title = names.english()
    top = f"Movies/{title}"
    if rng.random() < 0.07:  # a Blu-ray disc folder: nothing under BDMV is linked
        streams = rng.randint(3, 6)
        yield _Dir(top, ("movie.nfo", "poster.jpg", "fanart.jpg"))
        yield _Dir(f"{top}/BDMV", ("index.bdmv", "MovieObject.bdmv"))
        yield _Dir(f"{top}/BDMV/STREAM", tuple(f"{i:05d}.m2ts" for i in range(1, streams + 1)))
        yield _Dir(f"{top}/BDMV/CLIPINF", tuple(f"{i:05d}.clpi" for i in range(1, streams + 1)))
        yield _Dir(f"{top}/BDMV/PLAYLIST", ("00000.mpls", "00001.mpls"))
        yield _Dir(f"{top}/BDMV/BACKUP", ("index.bdmv", "MovieObject.bdmv"))
        return
    files = [f"{title}{_video_ext(rng)}", f"{title}.nfo", "poster.jpg", "fanart.jpg"]
    files += rng.sample([f"{title}.srt", f"{title}.zh.srt", f"{title}.en.srt", f"{title}.chs.ass"], rng.randint(1, 2))
    if rng.random() < 0.03:  # a multi-part movie
        files += [f"{title} - part2{_video_ext(rng)}"]
    if rng.random() < 0.005:  # a download still in progress: never linked
        files += [f"{title}.mkv.part"]
    yield _Dir(top, tuple(files))
    if rng.random() < 0.3:
        extras = tuple(f"Featurette {i}.mkv" for i in range(1, rng.randint(2, 4)))
        yield _Dir(f"{top}/Extras", extras)
    if rng.random() < 0.25:
        yield _Dir(f"{top}/Subs", (f"{title}.eng.srt", f"{title}.chi.srt"))


def _series(rng: random.Random, names: _Names, category: str, asian: bool) -> Iterator[_Dir]:
    show = names.asian() if asian else names.english()
    top = f"{category}/{show}"
    bare = show.rsplit(" (", 1)[0]
    yield _Dir(top, ("tvshow.nfo", "poster.jpg", "fanart.jpg"))
    seasons = rng.randint(1, 3) if asian else rng.randint(1, 5)
    for season in range(1, seasons + 1):
        episodes = rng.choice((12, 13, 24)) if asian else rng.randint(6, 13)
        ext = ".mkv" if asian else _video_ext(rng)
        sub = ".ass" if asian else ".srt"
        files = ["poster.jpg"]
        for ep in range(1, episodes + 1):
            stem = f"{bare} - S{season:02d}E{ep:02d}" if asian else f"{bare} S{season:02d}E{ep:02d}"
            files += [stem + ext, stem + ".nfo"]
            if rng.random() < 0.6:
                files.append(stem + sub)
        yield _Dir(f"{top}/Season {season:02d}", tuple(files))
    if asian and rng.random() < 0.3:
        yield _Dir(f"{top}/Specials", tuple(f"{bare} - SP{i:02d}.mkv" for i in range(1, rng.randint(2, 5))))


class _Thinner:
    """Leaves sidecars out so that a share ``videos`` of the files are videos.

    A Drive library that no local media manager wrote into has few .nfo and
    artwork files: mostly videos and their subtitles. Every video stays; a
    non-video file stays while the non-videos kept so far are within the
    share the target allows (deterministic: no randomness of its own)."""

    def __init__(self, videos: float) -> None:
        self.allowed = (1 - videos) / videos
        self.videos = 0
        self.others = 0

    def __call__(self, d: _Dir) -> _Dir:
        chosen: list[str] = []
        for name in d.files:
            if _is_video(d.path, name):
                self.videos += 1
                chosen.append(name)
            elif self.others + 1 <= self.allowed * self.videos:
                self.others += 1
                chosen.append(name)
        return _Dir(d.path, tuple(chosen))


def plan_library(files: int, seed: int = 0, videos: float | None = None) -> Iterator[_Dir]:
    """The folders of the library, in creation order, holding ``files`` files in all.

    ``videos`` (0 < videos <= 1): the share of the files that are videos,
    reached by leaving sidecars out; None keeps the natural mix (~30 %)."""
    rng = random.Random(seed)
    names = _Names(rng)
    thin = _Thinner(videos) if videos is not None else None
    left = files
    while left > 0:
        roll = rng.random()
        if roll < 0.9:
            unit = _movie(rng, names)
        elif roll < 0.97:
            unit = _series(rng, names, "TV", asian=False)
        else:
            unit = _series(rng, names, "Anime", asian=True)
        for d in unit:
            if thin is not None:
                d = thin(d)
            if left <= 0:
                return
            chosen = d.files[:left]
            left -= len(chosen)
            yield _Dir(d.path, chosen)


def _is_video(rel_dir: str, name: str) -> bool:
    if any(part.lower() == "bdmv" for part in rel_dir.split("/")):
        return False
    return os.path.splitext(name)[1].lower() in VIDEO_EXTS


def generate(root: str, files: int = DEFAULT_FILES, seed: int = 0, videos: float | None = None) -> LibraryStats:
    """Write the library under ``root`` (created; must not hold a library already)."""
    if not 1 <= files <= MAX_FILES:
        raise ValueError(f"files must be between 1 and {MAX_FILES}")
    if videos is not None and not 0 < videos <= 1:
        raise ValueError("videos must be a share above 0 and at most 1")
    start = time.perf_counter()
    root = os.path.abspath(root)
    os.makedirs(root, exist_ok=True)
    stats = LibraryStats(root=root)
    made: set[str] = {""}
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for d in plan_library(files, seed, videos):
        parts = d.path.split("/")
        for depth in range(1, len(parts) + 1):
            rel = "/".join(parts[:depth])
            if rel not in made:
                os.mkdir(os.path.join(root, rel))
                made.add(rel)
                stats.dirs += 1
        # Creating names relative to an open folder skips resolving the path each time.
        dir_fd = os.open(os.path.join(root, d.path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in d.files:
                os.close(os.open(name, flags, 0o644, dir_fd=dir_fd))
        finally:
            os.close(dir_fd)
        stats.files += len(d.files)
        in_bdmv = any(p.lower() == "bdmv" for p in parts)
        if in_bdmv:
            stats.bdmv_files += len(d.files)
        else:
            stats.videos += sum(1 for n in d.files if _is_video(d.path, n))
        if parts[-1].startswith("Season ") and len(stats.season_dirs) < 8:
            stats.season_dirs.append(d.path)
    stats.seconds = time.perf_counter() - start
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic media library of zero-byte files.")
    parser.add_argument("dest", help="folder to create the library in")
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help=f"number of files (default {DEFAULT_FILES})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--videos", type=float, metavar="SHARE", help="share of videos, e.g. 0.6 (default: the natural ~30 %%)"
    )
    args = parser.parse_args(argv)
    if os.path.isdir(args.dest) and os.listdir(args.dest):
        print(f"genlib: {args.dest} is not empty", file=sys.stderr)
        return 2
    try:
        stats = generate(args.dest, args.files, args.seed, args.videos)
    except (ValueError, OSError) as exc:
        print(f"genlib: {exc}", file=sys.stderr)
        return 2
    print(
        f"{stats.files} files ({stats.videos} videos to link, {stats.bdmv_files} under BDMV) "
        f"in {stats.dirs} folders under {stats.root}, {stats.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
