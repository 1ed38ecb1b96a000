"""The container of every saved model: a zip whose entries are checked by SHA-256.

``checksums.json`` lists the SHA-256 of every other entry; reading checks each one, so an
edited or corrupted entry, a missing one and an added one are each refused by name.
Writing goes to a temporary file in the target folder that replaces the target only once
complete and synced, so an error never leaves a half-written model behind; the file gets
the ordinary permissions of a new file (``0666`` less the process umask), not the
temporary file's 0600. What the entries hold is the business of
:mod:`amortized.approximators.serialization` (one approximator) and
:mod:`amortized.approximators.ensemble` (several).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

CHECKSUMS = "checksums.json"


class ModelFileError(ValueError):
    """A saved model is missing, corrupted, or from a newer format."""


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A deflated zip archive of ``{name: content}`` in memory, with ``checksums.json``
    holding the SHA-256 of every entry (see :func:`read_checked_zip`)."""
    checksums = {name: sha256(content) for name, content in entries.items()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
        zf.writestr(CHECKSUMS, json.dumps(checksums, indent=1))
    return buf.getvalue()


def read_checked_zip(
    path: str | os.PathLike, data: bytes | None = None, *, newest: int
) -> dict[str, bytes]:
    """Every entry of the zip at ``path`` (or of its content ``data``), ``{name: bytes}``,
    checked against ``checksums.json``: an entry whose content changed, one that is missing
    and one that no checksum lists are each refused by name. An archive without
    ``checksums.json`` is refused when it declares a format version from 2 to ``newest``
    (which always have one); a version 1 archive is returned as it is (its reader checks
    what that version recorded), and a newer one is left to the reader's version check."""
    path = Path(path)
    if data is None and not path.exists():
        raise FileNotFoundError(f"load: no saved model at {str(path)!r}")
    try:
        with zipfile.ZipFile(path if data is None else io.BytesIO(data)) as zf:
            entries = {name: zf.read(name) for name in zf.namelist()}
        checksums = json.loads(entries.pop(CHECKSUMS)) if CHECKSUMS in entries else None
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as e:
        raise ModelFileError(
            f"load: {str(path)!r} is not a readable amortized model file ({type(e).__name__}: "
            f"{e}); it may be corrupted or truncated"
        ) from e
    if checksums is None:
        version = _declared_version(entries)
        if not isinstance(version, int) or 2 <= version <= newest:
            raise ModelFileError(
                f"load: {str(path)!r} has no {CHECKSUMS}, so its content cannot be checked; "
                f"the file was modified or is not an amortized model file"
            )
        return entries
    if not isinstance(checksums, dict):
        raise ModelFileError(f"load: {str(path)!r} has a malformed {CHECKSUMS}")
    for name in sorted(set(checksums) | set(entries)):
        if name not in entries:
            raise ModelFileError(f"load: entry {name!r} of {str(path)!r} is missing")
        if name not in checksums:
            raise ModelFileError(
                f"load: entry {name!r} of {str(path)!r} was added after saving (no checksum "
                f"lists it); the file was modified"
            )
        if sha256(entries[name]) != checksums[name]:
            raise ModelFileError(
                f"load: entry {name!r} of {str(path)!r} fails its SHA-256 checksum: it was "
                f"modified or corrupted after saving; refusing to load it"
            )
    return entries


def write_zip_atomically(path: str | os.PathLike, entries: dict[str, bytes]) -> Path:
    """Write the zip of ``entries`` to a temporary file in the target folder that replaces
    ``path`` only once complete and synced, so an error never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = zip_bytes(entries)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _declared_version(entries: dict[str, bytes]) -> int | None:
    """The ``format_version`` of the archive's manifest (None when unreadable)."""
    for name in ("manifest.json", "ensemble.json"):
        if name in entries:
            try:
                return json.loads(entries[name]).get("format_version")
            except (json.JSONDecodeError, AttributeError):
                return None
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_format(manifest: dict[str, Any], path: Path, fmt: str, newest: int) -> None:
    """Raise a :class:`ModelFileError` unless ``manifest`` declares format ``fmt`` at a
    version this library reads (at most ``newest``)."""
    if manifest.get("format") != fmt:
        raise ModelFileError(
            f"load: {str(path)!r} has format {manifest.get('format')!r}, expected {fmt!r}"
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > newest:
        raise ModelFileError(
            f"load: {str(path)!r} uses format version {version}; this amortized reads versions "
            f"up to {newest}. Upgrade amortized to load it."
        )
