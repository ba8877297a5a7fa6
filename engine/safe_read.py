"""Reading a file a user named, so that it can neither block nor fill the memory.

Only a regular file is read: a FIFO, a device (/dev/zero, /dev/stdin) or a socket is refused
before it is opened for reading, and it is opened non-blocking in case the path changes in
between. At most ``limit`` + 1 bytes are read, whatever the file's size claims. The callers
(spec files, formula files) turn what goes wrong into their own located errors.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

__all__ = ["open_regular", "read_regular", "read_head", "NotRegular", "FileTooLarge", "file_kind"]


class NotRegular(Exception):
    """The path is a pipe, a device, a socket...: ``kind`` says which, in words."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class FileTooLarge(Exception):
    """More than the limit: ``size`` is the file's size when it was known before reading."""

    def __init__(self, size: Optional[int]) -> None:
        super().__init__(size)
        self.size = size


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: Path, limit: Optional[int] = None) -> int:
    """A descriptor of the regular file ``path`` open for reading (of at most ``limit`` bytes
    where one is given). Raises NotRegular, FileTooLarge, IsADirectoryError, FileNotFoundError,
    another OSError, or ValueError (a NUL byte in the name)."""
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(str(path))
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(file_kind(st.st_mode))
    if limit is not None and st.st_size > limit:
        raise FileTooLarge(st.st_size)
    # O_NONBLOCK: should the path have become a FIFO since the stat, opening it cannot block.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegular(file_kind(mode))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, of at most ``limit`` bytes. Raises as
    :func:`open_regular` does."""
    fd = open_regular(path, limit)
    try:
        chunks, size = [], 0
        while size <= limit:  # at most limit + 1 bytes, whatever the file claims
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise FileTooLarge(None)
    return b"".join(chunks)


def read_head(path: Path, count: int, offset: int = 0):
    """``(bytes, size)``: at most ``count`` bytes of the regular file ``path`` from ``offset``
    (fewer where the file ends first), and the file's size — the header of a weight file, whose
    data is never read. Raises as :func:`open_regular` does (never FileTooLarge)."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        chunks, got = [], 0
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        while got < count:
            chunk = os.read(fd, min(1 << 20, count - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks), size
