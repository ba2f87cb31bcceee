"""Content-addressed artifact store: files and folders kept by sha256 over fsspec.

Owns the on-store layout (`<root>/sha256/<2 hex>/<hex>`, a folder stored as a
folder there), the folder hash (sha256 of sorted "<posix path>\\t<file sha>\\n"
lines, empty sub-folders ignored), atomic and deduplicated writes, and hash
verification on every read. It does not know which run produced an artifact or
what it means; that lineage lives in the metadata store.

Writes go to `<root>/tmp/` first and are then moved into place: a rename on a
local store (atomic, so concurrent puts of the same content are safe), a
move on other fsspec stores, where a folder becomes visible file by file and a
crash mid-put leaves a folder that `verify` reports as corrupted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from ratchet.config import Config
from ratchet.errors import AlreadyExists, CorruptedArtifact, InvalidArgument, NotFound, StoreError

CHUNK_SIZE = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoredArtifact:
    """One artifact in the store; `size` sums the files of a folder."""

    sha256: str
    uri: str
    size: int
    is_dir: bool


class ArtifactStore:
    """Files and folders addressed by sha256 under one fsspec root."""

    def __init__(self, url: str, *, cache_dir: str | os.PathLike[str] | None = None) -> None:
        """Open (creating if needed) the store at a local path or fsspec URL.

        `cache_dir` receives verified local copies from `get` on non-local
        stores; it defaults to a `ratchet-artifacts` folder in the temp dir.
        """
        try:
            fs, root = url_to_fs(url)
        except (ValueError, ImportError) as e:  # unknown protocol, or its package is missing
            raise InvalidArgument(f"artifact store URL {url!r} is not usable: {e}") from e
        self._fs: Any = fs
        self._local = isinstance(fs, LocalFileSystem)
        self._root = str(root).rstrip("/")
        self._local_fs: Any = fs if self._local else LocalFileSystem()
        self._cache_dir = Path(cache_dir or Path(tempfile.gettempdir()) / "ratchet-artifacts")
        try:
            for sub in ("sha256", "tmp"):
                fs.makedirs(f"{self._root}/{sub}", exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create artifact store at {url!r}: {e}") from e

    @classmethod
    def from_config(cls, config: Config) -> ArtifactStore:
        """The store named by `config.artifact_url`."""
        return cls(config.artifact_url)

    def uri(self, sha256: str) -> str:
        """Where the artifact with this hash lives (or would live) in the store."""
        path = self._path(_checked(sha256))
        return path if self._local else str(self._fs.unstrip_protocol(path))

    def exists(self, sha256: str) -> bool:
        return bool(self._fs.exists(self._path(_checked(sha256))))

    def put(self, path: str | os.PathLike[str]) -> StoredArtifact:
        """Store a file or a whole folder; storing existing content is a no-op."""
        source = Path(path).absolute()
        if not source.exists():
            raise NotFound(f"cannot store {source}: no such file or folder")
        return self._commit(
            lambda tmp: _transfer(self._local_fs, source.as_posix(), self._fs, tmp), str(source)
        )

    def put_bytes(self, data: bytes) -> StoredArtifact:
        def write(tmp: str) -> tuple[str, int, bool]:
            with self._fs.open(tmp, "wb") as f:
                f.write(data)
            return hashlib.sha256(data).hexdigest(), len(data), False

        return self._commit(write, f"{len(data)} bytes")

    def verify(self, sha256: str) -> None:
        """Re-hash the stored bytes; raise CorruptedArtifact if they no longer match."""
        path = self._existing(sha256)
        self._check_digest(sha256, _transfer(self._fs, path, None, None)[0])

    def get(self, sha256: str, dest: str | os.PathLike[str] | None = None) -> Path:
        """A verified local path to the artifact.

        A local store with no `dest` returns the stored path itself. Otherwise
        the bytes are copied to `dest` (or to the cache folder) and hashed as
        they are copied, so the copy returned is the copy checked. An existing
        file at `dest` is replaced; an existing non-empty folder raises StoreError.
        """
        path = self._existing(sha256)
        if dest is None and self._local:
            self.verify(sha256)
            return Path(path)
        if dest is None:
            target = self._cache_dir / sha256
            if target.exists():
                if _transfer(self._local_fs, target.as_posix(), None, None)[0] == sha256:
                    return target
                _remove(target)
        else:
            target = Path(dest).absolute()
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.parent / f".{target.name}.{uuid.uuid4().hex}.part"
        try:
            digest, _, is_dir = _transfer(self._fs, path, self._local_fs, part.as_posix())
            self._check_digest(sha256, digest)
            # rename refuses to replace a non-empty folder; replace swaps a file atomically
            if is_dir:
                part.rename(target)
            else:
                part.replace(target)
        except OSError as e:
            if dest is None and target.exists():
                return target  # another process filled the cache first
            raise StoreError(f"cannot copy artifact {sha256} to {target}: {e}") from e
        finally:
            _remove(part)
        return target

    def open(self, sha256: str) -> BinaryIO:
        """A read handle on a stored file, opened only after its bytes are verified."""
        path = self._existing(sha256)
        if self._fs.isdir(path):
            raise InvalidArgument(f"artifact {sha256} is a folder; use get() instead of open()")
        if self._local:
            handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - returned to the caller
        else:
            # Spool remote bytes locally so the caller reads the very bytes hashed.
            handle = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller
            with self._fs.open(path, "rb") as remote:
                while chunk := remote.read(CHUNK_SIZE):
                    handle.write(chunk)
        try:
            handle.seek(0)
            self._check_digest(sha256, _hash_stream(handle)[0])
            handle.seek(0)
        except BaseException:
            handle.close()
            raise
        return handle

    def _path(self, sha256: str) -> str:
        return f"{self._root}/sha256/{sha256[:2]}/{sha256}"

    def _existing(self, sha256: str) -> str:
        path = self._path(_checked(sha256))
        if not self._fs.exists(path):
            raise NotFound(f"artifact {sha256} is not in the store at {self.uri(sha256)}")
        return path

    def _check_digest(self, sha256: str, actual: str) -> None:
        if actual != sha256:
            raise CorruptedArtifact(
                f"artifact {sha256} at {self.uri(sha256)} is corrupted (content hashes to {actual})"
            )

    def _commit(self, fill: Callable[[str], tuple[str, int, bool]], what: str) -> StoredArtifact:
        """Let `fill` write and hash the content at a temporary name, then move it in place."""
        tmp = f"{self._root}/tmp/{uuid.uuid4().hex}"
        try:
            digest, size, is_dir = fill(tmp)
            final = self._path(digest)
            self._fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            if not self._fs.exists(final):
                self._move(tmp, final, is_dir=is_dir)
        except OSError as e:
            raise StoreError(f"cannot write {what} to the artifact store: {e}") from e
        finally:
            if self._fs.exists(tmp):
                self._fs.rm(tmp, recursive=True)
        if bool(self._fs.isdir(final)) != is_dir:
            raise AlreadyExists(
                f"artifact {digest} is already stored as a {'file' if is_dir else 'folder'}"
                " with the same hash; a file's bytes equal this folder's manifest"
            )
        return StoredArtifact(sha256=digest, uri=self.uri(digest), size=size, is_dir=is_dir)

    def _move(self, tmp: str, final: str, *, is_dir: bool) -> None:
        if not self._local:
            # File by file: moving a folder onto one that appeared meanwhile would nest it.
            for src in self._fs.find(tmp) if is_dir else [tmp]:
                self._fs.mv(src, final + src[len(tmp) :])
            return
        try:
            os.replace(tmp, final)  # for a file, losing a race is harmless: same bytes
        except OSError:
            # A folder cannot replace a non-empty one: another process moved it in first.
            if not (is_dir and os.path.isdir(final)):
                raise


def _checked(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise InvalidArgument(f"{sha256!r} is not a sha256 (64 lowercase hex digits)")
    return sha256


def _hash_stream(src: Any, dst: Any = None) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := src.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
        if dst is not None:
            dst.write(chunk)
    return digest.hexdigest(), size


def _transfer(src_fs: Any, src: str, dst_fs: Any, dst: str | None) -> tuple[str, int, bool]:
    """Hash a file or folder while copying it to `dst` if given: (sha256, size, is_dir)."""
    if not src_fs.isdir(src):
        if dst is None:
            with src_fs.open(src, "rb") as f:
                return (*_hash_stream(f), False)
        dst_fs.makedirs(dst.rsplit("/", 1)[0], exist_ok=True)
        with src_fs.open(src, "rb") as f, dst_fs.open(dst, "wb") as out:
            return (*_hash_stream(f, out), False)
    files = {p[len(src) + 1 :]: p for p in src_fs.find(src)}
    if not files:
        raise InvalidArgument(f"folder {src} holds no files; an empty folder is not an artifact")
    lines, total = [], 0
    for rel, full in files.items():
        if "\t" in rel or "\n" in rel:
            raise InvalidArgument(f"{full}: tabs and newlines are not allowed in artifact paths")
        digest, size, _ = _transfer(src_fs, full, dst_fs, None if dst is None else f"{dst}/{rel}")
        lines.append(f"{rel}\t{digest}\n")
        total += size
    manifest = "".join(sorted(lines)).encode("utf-8")
    return hashlib.sha256(manifest).hexdigest(), total, True


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)  # a folder; fails quietly on a file or a link
    path.unlink(missing_ok=True)


def hash_path(path: str | os.PathLike[str]) -> str:
    """The sha256 a local file or folder gets in the store, without storing it."""
    fs, local = url_to_fs(os.fspath(path))
    if not fs.exists(local):
        raise NotFound(f"no file or folder at {os.fspath(path)}")
    return _transfer(fs, local, None, None)[0]
