"""Atomic file writes.

Every artefact is written to a temporary file in the destination directory, flushed to disk, and renamed
over the target, so a killed job never leaves a file that looks finished and a failed write (disk full,
read-only directory) leaves the previous version intact.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[io.BufferedWriter]:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise PipelineError(f"cannot write {path}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; results are shared with collaborators and DVC remotes.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PipelineError(f"cannot write {path}: {exc.strerror or exc}; the previous version is kept") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with _atomic_target(Path(path)) as handle:
        handle.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj: Any) -> None:
    """Write `obj` as indented, key-sorted JSON (stable bytes for identical content)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
