"""Files and directories that hold whole conversations are private to their owner.

Exports, HTML/Markdown reports and the archive itself are written 0600 and the
directories convostore creates for them 0700, whatever the umask: a conversation can
hold anything a person told a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, BinaryIO, Literal, TextIO, overload

FILE_MODE = 0o600
DIR_MODE = 0o700


@overload
def open_private(path: str | os.PathLike[str], *, binary: Literal[True]) -> BinaryIO: ...
@overload
def open_private(path: str | os.PathLike[str], *, binary: Literal[False] = False) -> TextIO: ...
@overload
def open_private(path: str | os.PathLike[str], *, binary: bool) -> BinaryIO | TextIO: ...
def open_private(path: str | os.PathLike[str], *, binary: bool = False) -> BinaryIO | TextIO:
    """Open ``path`` for writing (truncated), mode 0600: also an existing file written before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:  # not ours to change (a shared file we may write): keep its mode
        pass
    return os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents, each new one mode 0700 (existing ones untouched)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made by another process meanwhile
            continue
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask


def tighten_dir(path: Path) -> None:
    """Make an existing directory of ours 0700 (the default data directory of older releases was 0755)."""
    try:
        if path.is_dir() and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            os.chmod(path, DIR_MODE)
    except OSError:
        pass
