"""Contract tests for ratchet.artifacts, run against a local folder and memory:// store."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fsspec.core import url_to_fs

from ratchet.artifacts import CHUNK_SIZE, ArtifactStore, StoredArtifact
from ratchet.config import load_config
from ratchet.errors import (
    AlreadyExists,
    CorruptedArtifact,
    InvalidArgument,
    NotFound,
    StoreError,
)


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield ArtifactStore(str(tmp_path / "store"))
        return
    # The memory filesystem is process-wide, so each test gets its own root and clears it.
    url = f"memory://ratchet-test/{uuid.uuid4().hex}"
    yield ArtifactStore(url, cache_dir=tmp_path / "cache")
    fs, root = url_to_fs(url)
    fs.rm(root, recursive=True)


def tamper(uri: str, data: bytes = b"tampered") -> None:
    fs, path = url_to_fs(uri)
    fs.pipe_file(path, data)


def stored_entries(uri: str, sub: str) -> list[str]:
    fs, path = url_to_fs(uri)
    base = f"{path}/{sub}"
    return [p for p in fs.find(base, withdirs=True) if p.rstrip("/") != base]


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


TREE = {"model.bin": b"\x00\x01weights", "conf/a.json": b"{}", "conf/deep/b.txt": b"bee"}


def manifest_sha(files: dict[str, bytes]) -> str:
    lines = sorted(f"{rel}\t{hashlib.sha256(data).hexdigest()}\n" for rel, data in files.items())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_put_bytes_roundtrip(store: ArtifactStore) -> None:
    data = b"hello artifact"
    sha = hashlib.sha256(data).hexdigest()
    art = store.put_bytes(data)
    assert art == StoredArtifact(sha256=sha, uri=store.uri(sha), size=len(data), is_dir=False)
    assert art.uri.endswith(f"/sha256/{sha[:2]}/{sha}")
    assert store.exists(sha)
    with store.open(sha) as f:
        assert f.read() == data
    assert store.get(sha).read_bytes() == data
    store.verify(sha)


def test_put_large_file_roundtrip(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    art = store.put(source)
    assert (art.sha256, art.size, art.is_dir) == (
        hashlib.sha256(data).hexdigest(),
        len(data),
        False,
    )
    dest = store.get(art.sha256, tmp_path / "out" / "copy.bin")
    assert dest == tmp_path / "out" / "copy.bin"
    assert dest.read_bytes() == data
    with store.open(art.sha256) as f:
        assert f.read() == data


def test_local_get_returns_the_stored_path(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    art = store.put_bytes(b"x")
    assert store.get(art.sha256) == Path(art.uri)
    assert Path(art.uri).is_relative_to(tmp_path / "store")


def test_get_replaces_an_existing_dest_file(store: ArtifactStore, tmp_path: Path) -> None:
    art = store.put_bytes(b"new")
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"old")
    assert store.get(art.sha256, dest).read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dest")] == []


def test_put_folder_roundtrip(store: ArtifactStore, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", TREE)
    (source / "empty" / "nested").mkdir(parents=True)
    art = store.put(source)
    assert art.sha256 == manifest_sha(TREE)
    assert (art.size, art.is_dir) == (sum(len(d) for d in TREE.values()), True)
    assert read_tree(store.get(art.sha256)) == TREE
    assert read_tree(store.get(art.sha256, tmp_path / "copy")) == TREE
    store.verify(art.sha256)


def test_folder_hash_ignores_creation_order_and_mtime(store: ArtifactStore, tmp_path: Path) -> None:
    first = make_tree(tmp_path / "first", TREE)
    second = make_tree(tmp_path / "second", dict(reversed(TREE.items())))
    os.utime(second / "model.bin", (1_000_000, 1_000_000))
    (second / "only-an-empty-dir").mkdir()
    assert store.put(first).sha256 == store.put(second).sha256
    (second / "model.bin").write_bytes(b"other weights")
    assert store.put(second).sha256 != store.put(first).sha256


def test_folder_manifest_sorts_whole_lines(store: ArtifactStore, tmp_path: Path) -> None:
    # "a\x01" sorts after "a" as a path but before it as a line ("\x01" < "\t").
    files = {"a": b"1", "a\x01": b"2"}
    assert store.put(make_tree(tmp_path / "src", files)).sha256 == manifest_sha(files)


def test_put_of_existing_content_is_a_noop(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"same")
    first = store.put(source)
    fs, path = url_to_fs(first.uri)
    before = fs.info(path)
    assert store.put(source) == first == store.put_bytes(b"same")
    assert fs.info(path) == before  # not rewritten: same inode and mtime, or same creation time
    tree_art = store.put(make_tree(tmp_path / "tree", TREE))
    assert store.put(tmp_path / "tree") == tree_art
    root = first.uri.rsplit("/sha256/", 1)[0]
    assert stored_entries(root, "tmp") == []
    shas = stored_entries(root, "sha256")
    assert sum(1 for p in shas if p.endswith(first.sha256)) == 1


def test_corrupted_file_is_detected_on_every_read(store: ArtifactStore, tmp_path: Path) -> None:
    art = store.put_bytes(b"precious")
    tamper(art.uri)
    for read in (store.verify, store.open, store.get):
        with pytest.raises(CorruptedArtifact) as excinfo:
            read(art.sha256)
        message = str(excinfo.value)
        assert art.sha256 in message and art.uri in message and "\n" not in message
    with pytest.raises(CorruptedArtifact):
        store.get(art.sha256, tmp_path / "out" / "out.bin")
    assert list((tmp_path / "out").iterdir()) == []


def test_corrupted_folder_is_detected(store: ArtifactStore, tmp_path: Path) -> None:
    art = store.put(make_tree(tmp_path / "src", TREE))
    tamper(f"{art.uri}/conf/deep/b.txt")
    for read in (store.verify, store.get):
        with pytest.raises(CorruptedArtifact, match=art.sha256):
            read(art.sha256)
    with pytest.raises(CorruptedArtifact):
        store.get(art.sha256, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_extra_file_in_stored_folder_is_detected(store: ArtifactStore, tmp_path: Path) -> None:
    art = store.put(make_tree(tmp_path / "src", TREE))
    tamper(f"{art.uri}/intruder.txt", b"")
    with pytest.raises(CorruptedArtifact):
        store.verify(art.sha256)


def test_memory_store_get_refreshes_a_damaged_cache_copy(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://ratchet-test/{uuid.uuid4().hex}", cache_dir=tmp_path)
    art = store.put_bytes(b"cached")
    cached = store.get(art.sha256)
    assert cached == tmp_path / art.sha256
    cached.write_bytes(b"damaged")
    assert store.get(art.sha256).read_bytes() == b"cached"


def test_open_rejects_folders(store: ArtifactStore, tmp_path: Path) -> None:
    art = store.put(make_tree(tmp_path / "src", TREE))
    with pytest.raises(InvalidArgument, match="folder"):
        store.open(art.sha256)


def test_missing_artifact_is_not_found(store: ArtifactStore) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(sha)
    for read in (store.verify, store.open, store.get):
        with pytest.raises(NotFound, match=sha):
            read(sha)


@pytest.mark.parametrize("bad", ["abc", "A" * 64, "g" * 64, "a" * 63, "a" * 65, "", " " + "a" * 63])
def test_malformed_sha_is_invalid(store: ArtifactStore, bad: str) -> None:
    for call in (store.exists, store.verify, store.open, store.get, store.uri):
        with pytest.raises(InvalidArgument, match="sha256"):
            call(bad)


def test_put_missing_source_is_not_found(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nope"):
        store.put(tmp_path / "nope")


def test_empty_folder_is_invalid(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InvalidArgument, match="no files"):
        store.put(tmp_path / "empty")


def test_file_equal_to_a_folder_manifest_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    lines = sorted(f"{r}\t{hashlib.sha256(d).hexdigest()}\n" for r, d in TREE.items())
    store.put_bytes("".join(lines).encode())
    with pytest.raises(AlreadyExists, match=manifest_sha(TREE)):
        store.put(make_tree(tmp_path / "src", TREE))


def test_uncreatable_root_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(StoreError) as excinfo:
        ArtifactStore(str(blocker / "store"))
    assert "\n" not in str(excinfo.value) and str(blocker) in str(excinfo.value)


def test_open_from_config_and_file_url(tmp_path: Path) -> None:
    config = load_config(home=tmp_path / "home", environ={}, cwd=tmp_path)
    art = ArtifactStore.from_config(config).put_bytes(b"via config")
    assert Path(art.uri).is_relative_to(config.artifact_url)
    again = ArtifactStore.from_config(config)
    assert ArtifactStore(f"file://{config.artifact_url}").exists(art.sha256)
    with again.open(art.sha256) as f:
        assert f.read() == b"via config"


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ratchet.artifacts import ArtifactStore
    root, source, go = sys.argv[1:]
    while not Path(go).exists():
        time.sleep(0.005)
    store = ArtifactStore(root)
    print(store.put(Path(source) / "big.bin").sha256, store.put(source).sha256)
    """
)


def test_concurrent_puts_of_same_content_leave_one_intact_artifact(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {**TREE, "big.bin": os.urandom(4 * CHUNK_SIZE)})
    root, go = tmp_path / "store", tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(source), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(0.5)  # let every child import and wait at the gate, so the puts overlap
    go.touch()
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0] * 4, outputs
    assert len({out for out, _ in outputs}) == 1
    file_sha, folder_sha = outputs[0][0].split()
    store = ArtifactStore(str(root))
    store.verify(file_sha)
    store.verify(folder_sha)
    assert folder_sha == manifest_sha({**TREE, "big.bin": (source / "big.bin").read_bytes()})
    assert list((root / "tmp").iterdir()) == []
    assert sorted(p.name for p in (root / "sha256").glob("*/*")) == sorted([file_sha, folder_sha])


@pytest.mark.parametrize("what", ["big.bin", "."])
def test_put_that_loses_a_race_keeps_the_winner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    # The four-process test rarely lands in the gap between the existence check and the
    # move, so a rival put is forced into that gap here.
    root = str(tmp_path / "store")
    source = make_tree(tmp_path / "src", {**TREE, "big.bin": b"big"}) / what
    move, rivals = ArtifactStore._move, list[StoredArtifact]()

    def rival_moves_first(self: ArtifactStore, tmp: str, final: str, *, is_dir: bool) -> None:
        if not rivals:
            rivals.append(StoredArtifact("", "", 0, False))  # the rival itself must not recurse
            rivals[0] = ArtifactStore(root).put(source)
        move(self, tmp, final, is_dir=is_dir)

    monkeypatch.setattr(ArtifactStore, "_move", rival_moves_first)
    art = ArtifactStore(root).put(source)
    assert art == rivals[0]
    ArtifactStore(root).verify(art.sha256)
    assert list((tmp_path / "store" / "tmp").iterdir()) == []
