"""Exclusive locks on files, for one writer at a time across processes and hosts.

A lock is `flock(2)` on a file that the holder removes on release. The kernel releases it
when the holder exits, however it exits, so a lock left by a dead process is simply
taken. A holder that releases between another process's `open` and `flock` leaves that
process locking a file no one else sees: `acquire` checks for it and starts again.
"""

import errno
import fcntl
import os


def acquire(path, blocking=True):
  """Locks `path` (created if absent); returns its file descriptor, or `None` if
  `blocking` is false and another process holds the lock."""
  flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, flags)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise
      return None
    try:
      same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
      same = False
    if same:
      return fd
    os.close(fd)


def release(path, fd):
  """Removes `path` and releases the lock that `acquire` returned as `fd`."""
  try:
    os.remove(path)
  except OSError:
    pass
  os.close(fd)
