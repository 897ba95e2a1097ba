"""One writer at a time: an exclusive ``fcntl`` lock on ``<database>.lock``.

The lock file holds the pid of its holder, so a refused second graylink can say
who is in the way. The file itself is never deleted: unlinking a lock file
while another process waits on it would let two processes hold "the" lock.
The kernel drops the lock when its holder dies, so a crash leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from types import TracebackType

from graylink.errors import GraylinkError
from graylink.store.readonlyfs import read_only_refusal

# A read-only command may probe the lock for an instant (status asks whether
# the loop runs); a writer retries this long before calling the lock held.
PROBE_GRACE_S = 0.5


class LockHeld(GraylinkError):
    exit_code = 2


def lock_path(database: str) -> str:
    return database + ".lock"


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class InstanceLock:
    """The single-writer lock beside a database. Use as a context manager."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.path = lock_path(database)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        parent = os.path.dirname(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno == errno.EROFS:
                raise read_only_refusal(self.database) from None
            raise GraylinkError(f"cannot open lock file {self.path}: {exc.strerror}") from None
        deadline = time.monotonic() + PROBE_GRACE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    os.close(fd)
                    raise GraylinkError(f"cannot lock {self.path}: {exc.strerror}") from None
                if time.monotonic() >= deadline:
                    pid = _read_pid(fd)
                    os.close(fd)
                    who = f"pid {pid}" if pid is not None else "unknown pid"
                    raise LockHeld(f"another graylink ({who}) holds {self.path}") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def lost(self) -> bool:
        """Whether the lock file at the path is no longer the one locked (deleted,
        or replaced): another graylink could then lock the new one."""
        if self._fd is None:
            return False
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        held = os.fstat(self._fd)
        return (st.st_dev, st.st_ino) != (held.st_dev, held.st_ino)

    def reacquire(self) -> None:
        """Lock the file now at the path (raises LockHeld when another graylink has it)."""
        old, self._fd = self._fd, None
        try:
            self.acquire()
        except GraylinkError:
            self._fd = old
            raise
        if old is not None:
            os.close(old)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def refuse_if_held(database: str) -> None:
    """LockHeld, with the holder's pid, when another graylink holds the database's lock now.

    For checks that run before the lock is taken (binding the status page's
    port): a port held by the running service is not the cause to report.
    The lock itself stays the authority: a free lock here is taken later."""
    pid = holder(database)
    if pid is not None:
        who = f"pid {pid}" if pid else "unknown pid"
        raise LockHeld(f"another graylink ({who}) holds {lock_path(database)}")


def holder(database: str) -> int | None:
    """The pid of the graylink that holds the lock (0: held, pid unreadable), or None.

    Takes a shared lock for an instant to tell: a writer starting at that very
    moment waits out :data:`PROBE_GRACE_S` instead of failing.
    """
    path = lock_path(database)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                return _read_pid(fd) or 0
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
