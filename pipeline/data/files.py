"""Checks that a dataset's files are present, and checksums of what was found."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from pipeline.errors import DataError


def require_files(dataset: str, paths: Iterable[Path], how_to_get: str) -> None:
    """Raise one DataError naming every missing path, so a user fixes them all in one go."""
    missing = [path for path in paths if not path.is_file()]
    if missing:
        listing = "\n  ".join(str(path) for path in missing)
        raise DataError(f"{dataset}: missing file(s):\n  {listing}\n{how_to_get}")


def file_checksums(paths: Iterable[Path], relative_to: Path) -> dict[str, str]:
    """sha256 of each of `paths` that exists, keyed by its path relative to `relative_to`."""
    found = [path for path in paths if path.is_file()]
    return {path.relative_to(relative_to).as_posix(): sha256_file(path)
            for path in tqdm(found, desc="checksums", unit="file", leave=False)}


def tree_digest(directory: Path, *, contents: bool) -> str:
    """One sha256 for a directory tree: over each file's relative path and its content hash or size.

    Sizes instead of contents keep this cheap for ImageNet-sized trees (about 140 GB), where hashing
    every byte would take longer than the run it documents.
    """
    digest = hashlib.sha256()
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    for path in tqdm(files, desc=f"digest {directory.name}", unit="file", leave=False):
        stamp = sha256_file(path) if contents else str(path.stat().st_size)
        digest.update(f"{path.relative_to(directory).as_posix()}\t{stamp}\n".encode())
    return digest.hexdigest()


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
