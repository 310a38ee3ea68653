"""Archive files: paths to read in order (directories, rotated logs, `-` for stdin), checked to be readable, opened
plain or gzip."""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from ingest.archives.formats import GZIP_MAGIC

HEAD = 65536  # bytes an opened archive can peek at (format detection reads them)
STDIN = "-"
# lumberjack: <base>-<UTC 2006-01-02T15-04-05.000><ext>[.gz]; the live file is <base><ext>
_ROTATED = re.compile(r"^(?P<base>.+)-(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(\.\d{3})?)(?P<ext>\.[^.]+)?(\.gz)?$")


def _rotation_key(path: Path) -> tuple[str, int, str, str]:
    m = _ROTATED.match(path.name)
    if m:
        return str(path.with_name(m["base"] + (m["ext"] or ""))), 0, m["ts"], path.name
    return str(path), 1, "", path.name


def order_files(files: Sequence[Path]) -> list[Path]:
    """Rotated lumberjack files in time order (by the UTC time in their names), each live file after its
    rotated ones; other files in name order."""
    return sorted(files, key=_rotation_key)


def input_files(paths: Sequence[str]) -> list[str]:
    """Expand directories (recursively, in name order; rotated logs in time order, the live file last);
    keep `-` and files as given."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if p == STDIN:
            out.append(p)
        elif path.is_dir():
            out.extend(str(f) for f in order_files([f for f in path.rglob("*") if f.is_file()]))
        else:
            out.append(p)
    return out


def label_of(name: str) -> str:
    """How a file is named in origins and messages."""
    return "<stdin>" if name == STDIN else name


class _GzipReader(io.BufferedReader):
    """A buffered (peekable) gzip stream that closes the file under it too."""

    def __init__(self, inner: io.BufferedReader) -> None:
        self._inner = inner
        super().__init__(cast(Any, gzip.GzipFile(fileobj=inner)), HEAD)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._inner.close()


def open_archive(name: str) -> io.BufferedReader:
    """A file (or stdin for `-`), decompressed when it is gzip: told by its magic bytes, not by its name."""
    raw: Any = sys.stdin.buffer if name == STDIN else open(name, "rb", buffering=HEAD)  # noqa: SIM115
    buffered: io.BufferedReader = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, HEAD)
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return _GzipReader(buffered)
    return buffered


def input_problem(paths: Sequence[str]) -> str | None:
    """Why these inputs cannot all be read, or None: a path that is missing (or a broken link), a directory
    that cannot be listed, or a file that cannot be read. Checked before a read starts, so that a mistyped
    path stops a command instead of leaving half its work done. Pipes and devices are not opened here."""
    for p in paths:
        if p == STDIN:
            continue
        try:
            mode = os.stat(p).st_mode  # follows links: a broken one is missing
        except OSError as exc:
            broken = " (a broken symbolic link)" if os.path.islink(p) else ""
            return f"{p}: {exc.strerror}{broken}"
        if stat.S_ISDIR(mode):
            problem = _directory_problem(p)
            if problem:
                return problem
        elif stat.S_ISREG(mode) and not os.access(p, os.R_OK):
            return f"{p}: Permission denied"
    return None


def _directory_problem(top: str) -> str | None:
    errors: list[OSError] = []
    for folder, _dirs, files in os.walk(top, onerror=errors.append):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.access(path, os.R_OK):
                return f"{path}: Permission denied"
    if errors:
        return f"{errors[0].filename}: {errors[0].strerror}"
    return None
