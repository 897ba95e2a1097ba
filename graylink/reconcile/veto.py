"""The last look before a prune: is the source file really gone?

A mount restarted during a walk can make the index lose files that are still
there (see :mod:`graylink.source.sourcecheck`); so before any prune, the
source file itself is looked at once (one lstat each: prunes are few), under
a deadline.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass

from graylink.links.planner import TEMP_RE, Op, Plan
from graylink.source.rules import Rules
from graylink.source.sourcecheck import CHECK_TIMEOUT, StopFn
from graylink.system import deadline

log = logging.getLogger(__name__)


def _gone(root: bytes, rel: bytes, folders: dict[bytes, bool | None]) -> bool | None:
    """True when no video is at ``rel`` any more, False when one is, None when that cannot be told.

    A video is a regular file reached through real folders: a folder, a
    symlink or a FIFO put in its place (or a folder on its way replaced by a
    symlink) is no video, and its link goes (graylink never serves through a
    symlink in the source). ``folders`` caches each folder's verdict."""
    folder = rel.rpartition(b"/")[0]
    through = real_folder(root, folder, folders)
    if through is not False:
        return None if through is None else True
    try:
        st = os.lstat(root + b"/" + rel)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return None
    return not stat.S_ISREG(st.st_mode)


def real_folder(root: bytes, folder: bytes, folders: dict[bytes, bool | None]) -> bool | None:
    """False when ``folder`` and each folder above it is a real directory; True when one is
    not (gone, a symlink, a file); None when that cannot be told."""
    if not folder:
        return False
    if folder in folders:
        return folders[folder]
    above = real_folder(root, folder.rpartition(b"/")[0], folders)
    verdict: bool | None
    if above is not False:
        verdict = above
    else:
        try:
            verdict = not stat.S_ISDIR(os.lstat(root + b"/" + folder).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            verdict = True
        except OSError:
            verdict = None
    folders[folder] = verdict
    return verdict


@dataclass(frozen=True)
class Veto:
    message: str  # one line for the failures, "" when every prune was confirmed
    folders: tuple[bytes, ...] = ()  # folders to list again: the index lost files that are there


def _wanted(rules: Rules, rel: bytes) -> bool:
    """Whether the rules still want a link at ``rel`` whatever the index says. A
    video named like a sample may be one (its size decides, and the index
    dropped it), and a sidecar goes with its video: neither holds a prune."""
    folder, _, name = rel.rpartition(b"/")
    return rules.wants_dir(folder) and rules.wants_file(name) and not rules.named_samples(folder, [name])


def veto_prunes(
    plan: Plan, source: str, rules: Rules, timeout: float = CHECK_TIMEOUT, should_stop: StopFn | None = None
) -> Veto:
    """Withhold each prune whose source file is still there (one lstat each: prunes are few).

    "There" is a regular file: a path that is no longer one is no longer a video.

    Only prunes of links the rules still want are looked at: a link the rules
    no longer want (an extension dropped, a folder excluded) goes although its
    file stays. A source that does not answer withholds every such prune."""
    prunes = [
        a
        for a in plan.actions
        if a.op is Op.PRUNE and not TEMP_RE.match(os.path.basename(a.link)) and _wanted(rules, a.link)
    ]
    if not prunes:
        return Veto("")
    root = os.fsencode(source).rstrip(b"/")

    def look() -> list[bool | None]:
        folders: dict[bytes, bool | None] = {}
        return [_gone(root, a.link, folders) for a in prunes]

    try:
        verdicts = deadline.call(look, timeout, "confirming prunes in the source", should_stop)
    except deadline.NoAnswer as exc:
        verdicts = [None] * len(prunes)
        why = f"{len(prunes)} prune(s) withheld: the source does not answer ({exc})"
    else:
        why = ""
    vetoed = [a for a, gone in zip(prunes, verdicts, strict=True) if gone is not True]
    if not vetoed:
        return Veto("")
    ids = {id(a) for a in vetoed}
    plan.braked.extend(vetoed)
    plan.actions = [a for a in plan.actions if id(a) not in ids]
    message = why or (
        f"{len(vetoed)} prune(s) withheld: the source file is still there although the index lost it "
        "(was the mount restarted during a walk?); its folder is listed again"
    )
    log.error("%s", message)
    folders = () if why else tuple(sorted({a.link.rpartition(b"/")[0] for a in vetoed}))
    return Veto(message, folders)
