"""Applying a plan to the link tree: the only code that changes it.

Links are created with one symlink(2) (atomic on its own) and replaced via a
temporary symlink and rename(2), so a reader never sees a half state. Nothing
is created outside the target root: every parent directory is checked to be a
real directory, never a symlink, before anything goes into it.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from graylink.links.planner import TEMP_PREFIX, Action, Op
from graylink.store.db import join, parent_of
from graylink.system.fsinfo import describe

log = logging.getLogger(__name__)

# Errors after which nothing more can be written: stop cleanly, keep the marks.
FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# What symlink(2) answers on a filesystem that has no symlinks (vfat, exFAT,
# some SMB shares and FUSE filesystems): every other link would fail alike.
NO_SYMLINK_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EIO, errno.ENOSYS})


class Blocked(Exception):
    """Something that is not a directory stands where a directory must be."""


class NoSymlinks(OSError):
    """The target's filesystem refused a symlink the way filesystems without them do."""


@dataclass
class ApplyResult:
    done: list[Action] = field(default_factory=list)
    failed: list[tuple[Action, str]] = field(default_factory=list)
    unreached: list[Action] = field(default_factory=list)  # not tried: applying stopped before them
    made_dirs: list[bytes] = field(default_factory=list)
    removed_dirs: list[bytes] = field(default_factory=list)
    stopped: str = ""  # why applying stopped early (disk full, read-only)


STOPPED_ON_REQUEST = "stopped on request"


class Applier:
    def __init__(
        self,
        target_root: bytes,
        is_made_dir: Callable[[bytes], bool],
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """``progress``: told after each create, repair and prune, tried so far (done or failed)."""
        self.root = target_root.rstrip(b"/") or b"/"
        self.is_made_dir = is_made_dir
        self.should_stop = should_stop
        self.progress = progress
        self.result = ApplyResult()
        self._dirs_ok: set[bytes] = {b""}
        self._missing: set[bytes] = set()  # folders dirs_to_make found missing
        self._probe: bool | None = None  # whether the root takes symlinks, once asked

    def dirs_to_make(self, actions: list[Action]) -> list[bytes]:
        """The folders applying ``actions`` will create (missing parents of new links).

        They are recorded as graylink's before anything is made, so a run
        killed between mkdir and the final commit still knows they are its
        own and removes them once they empty."""
        missing: set[bytes] = set()
        seen: set[bytes] = {b""}
        # A link pruned to make way for a folder (a video replaced by a folder of its name).
        pruned = {a.link for a in actions if a.op is Op.PRUNE}
        for action in actions:
            if action.op is not Op.CREATE and action.op is not Op.REPAIR:
                continue
            rel = action.link.rpartition(b"/")[0]
            if rel in seen:  # the usual case: a sibling of the previous link
                continue
            chain: list[bytes] = []
            while rel not in seen:
                seen.add(rel)
                chain.append(rel)
                rel = parent_of(rel)
            # Top down: below a missing folder everything is missing, no stat needed
            # (on a first run that is every folder but the top-level ones).
            for rel in reversed(chain):
                if parent_of(rel) in missing or rel in pruned or not os.path.lexists(self._abs(rel)):
                    missing.add(rel)
        self._missing = missing
        return sorted(missing)

    def _abs(self, rel: bytes) -> bytes:
        return self.root + b"/" + rel if rel else self.root

    def apply(self, actions: list[Action]) -> ApplyResult:
        os.makedirs(self.root, exist_ok=True)
        first = [a for a in actions if a.op is not Op.PRUNE]
        prunes = [a for a in actions if a.op is Op.PRUNE]
        # Prunes go last (a stop leaves links rather than holes), except those
        # whose link stands where a new link's folder must go.
        ahead = _in_the_way(prunes, first)
        if ahead:
            prunes = [a for a in prunes if a.link not in ahead]
            first = [a for a in actions if a.op is Op.PRUNE and a.link in ahead] + first
        ordered = first + prunes
        create = Op.CREATE
        changes = (Op.CREATE, Op.REPAIR, Op.PRUNE)
        progress = self.progress
        tried = 0
        for position, action in enumerate(ordered):
            if self.should_stop is not None and self.should_stop():
                # Between two actions: what is done gets recorded, the marks stay.
                self.result.stopped = STOPPED_ON_REQUEST
                log.info("applying stopped on request after %d actions", len(self.result.done))
                self._leave(ordered[position:])
                break
            try:
                if action.op is create:  # a first run's every action: no dispatch
                    self._create(action)
                else:
                    self._apply_one(action)
            except Blocked as exc:
                self._fail(action, str(exc))
            except OSError as exc:
                reason = f"{exc.strerror or exc}"
                if isinstance(exc, NoSymlinks) and self._root_takes_symlinks():
                    exc = OSError(exc.errno, exc.strerror)  # one folder refuses (immutable, a mount inside): not fatal
                if isinstance(exc, NoSymlinks) or exc.errno in FATAL_ERRNOS:
                    self.result.failed.append((action, reason))  # the one line below says it
                    self.result.stopped = self._stop_reason(exc, reason)
                    log.error("%s; what was done so far is recorded", self.result.stopped)
                    self._leave(ordered[position + 1 :])
                    break
                self._fail(action, reason)
            finally:
                # Done or failed: the count the summary's created, repaired, pruned and failed add up to.
                if progress is not None and action.op in changes:
                    tried += 1
                    progress(tried)
        self._remove_emptied_dirs(prunes)
        return self.result

    def _root_takes_symlinks(self) -> bool:
        """Whether a symlink can be made at the link tree's root: tells a filesystem
        without symlinks from one folder that refuses them (EPERM in an immutable
        folder, another filesystem mounted inside). Asked once, on the first refusal."""
        if self._probe is None:
            probe = self.root + b"/" + TEMP_PREFIX + secrets.token_hex(6).encode() + b".tmp"
            try:
                os.symlink(b"probe", probe)
            except OSError:
                self._probe = False
            else:
                os.unlink(probe)
                self._probe = True
        return self._probe

    def _leave(self, rest: list[Action]) -> None:
        self.result.unreached.extend(a for a in rest if a.op in (Op.CREATE, Op.REPAIR, Op.PRUNE))

    def _stop_reason(self, exc: OSError, reason: str) -> str:
        where = describe(os.fsdecode(self.root))
        if isinstance(exc, NoSymlinks):
            return f"stopped: the filesystem of the link tree ({where}) does not take symlinks ({reason})"
        if exc.errno == errno.EROFS:
            return f"stopped: the filesystem of the link tree ({where}) is read-only"
        return f"stopped: the filesystem of the link tree ({where}) is full ({reason})"

    def _fail(self, action: Action, reason: str) -> None:
        log.error("cannot %s %s: %s", action.op.value, os.fsdecode(action.link), reason)
        self.result.failed.append((action, reason))

    def _apply_one(self, action: Action) -> None:
        if action.op is Op.CREATE:
            self._create(action)
        elif action.op is Op.REPAIR:
            self._repair(action)
        elif action.op is Op.PRUNE:
            self._prune(action)
        elif action.op in (Op.ADOPT, Op.FORGET):
            self.result.done.append(action)  # database only

    def _ensure_dir(self, rel_dir: bytes) -> None:
        if rel_dir in self._dirs_ok:
            return
        self._ensure_dir(parent_of(rel_dir))
        path = self._abs(rel_dir)
        if rel_dir in self._missing:
            # Seen missing moments ago: make it, and look only if that fails.
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                pass
            else:
                self.result.made_dirs.append(rel_dir)
                self._dirs_ok.add(rel_dir)
                return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            self.result.made_dirs.append(rel_dir)
            self._dirs_ok.add(rel_dir)
            return
        if not stat.S_ISDIR(st.st_mode):
            kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "a file"
            raise Blocked(f"{os.fsdecode(rel_dir)} is {kind}, not a directory; left alone")
        self._dirs_ok.add(rel_dir)

    def _create(self, action: Action) -> None:
        # Once per link of a first run: the folder check and the symlink call inline.
        folder = action.link.rpartition(b"/")[0]
        if folder not in self._dirs_ok:
            self._ensure_dir(folder)
        path = self.root + b"/" + action.link
        try:
            os.symlink(action.target, path)
        except FileExistsError:
            # Something appeared since planning: a correct link is fine, anything else is not ours.
            if os.path.islink(path) and os.readlink(path) == action.target:
                self.result.done.append(Action(Op.ADOPT, action.link, action.target))
                return
            raise Blocked("something appeared at the link path while applying; left alone") from None
        except OSError as exc:
            if exc.errno not in NO_SYMLINK_ERRNOS:
                raise
            raise NoSymlinks(exc.errno, exc.strerror, exc.filename) from None
        self.result.done.append(action)

    def _repair(self, action: Action) -> None:
        self._ensure_dir(parent_of(action.link))
        path = self._abs(action.link)
        temp = self._abs(join(parent_of(action.link), TEMP_PREFIX + secrets.token_hex(6).encode() + b".tmp"))
        _symlink(action.target, temp)
        try:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                pass  # ours, gone from the link tree: put back
            else:
                if not stat.S_ISLNK(st.st_mode):
                    raise Blocked("no longer a symlink; left alone")
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
        self.result.done.append(action)

    def _prune(self, action: Action) -> None:
        path = self._abs(action.link)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.result.done.append(action)
            return
        if not stat.S_ISLNK(st.st_mode) or os.readlink(path) != action.target:
            raise Blocked("changed since it was planned; left alone")
        os.unlink(path)
        self.result.done.append(action)

    def _remove_emptied_dirs(self, prunes: list[Action]) -> None:
        if self.result.stopped:
            return
        candidates = {parent_of(a.link) for a in prunes}
        made = set(self.result.made_dirs)
        for rel in sorted(candidates, key=len, reverse=True):
            while rel and (rel in made or self.is_made_dir(rel)):
                try:
                    os.rmdir(self._abs(rel))
                except OSError as exc:
                    if exc.errno != errno.ENOTEMPTY or not self._remove_made_below(rel, made):
                        break
                    continue  # its made subfolders are gone: try it again
                self.result.removed_dirs.append(rel)
                rel = parent_of(rel)

    def _remove_made_below(self, rel: bytes, made: set[bytes]) -> bool:
        """Remove the empty folders graylink made below ``rel`` that hold no pruned link
        (one made for a link that could not be created, e.g. past PATH_MAX); whether any went."""
        try:
            with os.scandir(self._abs(rel)) as entries:
                subs = [join(rel, os.fsencode(e.name)) for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            return False
        removed = False
        for sub in subs:
            if sub not in made and not self.is_made_dir(sub):
                continue
            self._remove_made_below(sub, made)
            try:
                os.rmdir(self._abs(sub))
            except OSError:
                continue
            self.result.removed_dirs.append(sub)
            removed = True
        return removed


def _in_the_way(prunes: list[Action], others: list[Action]) -> set[bytes]:
    """The pruned links that stand where a folder of a created or repaired link must be."""
    if not prunes:
        return set()
    pruned = {a.link for a in prunes}
    found: set[bytes] = set()
    looked: set[bytes] = set()
    for action in others:
        if action.op is not Op.CREATE and action.op is not Op.REPAIR:
            continue
        folder = parent_of(action.link)
        while folder and folder not in looked:
            looked.add(folder)
            if folder in pruned:
                found.add(folder)
            folder = parent_of(folder)
    return found


def _symlink(content: bytes, path: bytes) -> None:
    try:
        os.symlink(content, path)
    except OSError as exc:
        if exc.errno in NO_SYMLINK_ERRNOS:
            raise NoSymlinks(exc.errno, exc.strerror, exc.filename) from None
        raise
