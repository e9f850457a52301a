"""Writing outputs without losing anything: a file or folder is written beside its destination under
a temporary name and renamed into place only when whole, and nothing the user has is replaced
unless they said --force."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from codec.errors import CodecError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_own(path: Path) -> int | None:
    """A read-only descriptor of ``path``, or None where it is missing, a link, not a regular file
    with one name, or not this user's: a file a cache can trust to be one it wrote itself. Opened
    without blocking, so a planted FIFO or device cannot hold the caller."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == os.geteuid():
        return fd
    os.close(fd)
    return None


def read_own(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if :func:`open_own` takes it and it holds at most ``limit`` bytes."""
    fd = open_own(path)
    if fd is None:
        return None
    with open(fd, "rb") as f:
        if os.fstat(f.fileno()).st_size > limit:
            return None
        data = f.read(limit + 1)
    return data if len(data) <= limit else None


def check_output(path: Path, force: bool) -> None:
    """Refuse to replace ``path`` without ``force``, or to write where there is no folder."""
    if path.exists() and not force:
        raise CodecError(f"{path}: exists; use --force to overwrite it")
    if not path.parent.is_dir():
        raise CodecError(f"{path.parent}: no such directory")


def remove_output(path: Path) -> None:
    """Delete a file or a folder that this program wrote, if it is there."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A fresh temporary path beside ``path`` (same suffix) to write a file or folder into: it
    replaces ``path`` only when the block succeeds and is removed whatever happens, so no failure
    leaves half an output behind or touches a file the user already had under another name."""
    tmp = path.with_name(f".{path.stem}-{secrets.token_hex(4)}-partial{path.suffix}")
    try:
        yield tmp
        if tmp.is_dir() or path.is_dir():  # a rename replaces a file, never a folder
            remove_output(path)
        os.replace(tmp, path)
    finally:
        remove_output(tmp)


@contextmanager
def replacing_output(path: Path, force: bool) -> Iterator[Path]:
    """:func:`atomic_path` for an output the user named: refused without ``force`` if it exists."""
    check_output(path, force)
    with atomic_path(path) as tmp:
        yield tmp


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers never see half."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path, obj: Any, compact: bool = False) -> None:
    """Write ``obj`` as JSON, indented for people to read, or ``compact`` (no spaces) for a file that
    every client downloads."""
    text = json.dumps(obj, separators=(",", ":")) if compact else json.dumps(obj, indent=2)
    write_atomic(path, (text + "\n").encode())
