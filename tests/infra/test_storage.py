from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from infra.errors import (
    ChecksumMismatchError,
    InvalidRequestError,
    ObjectNotFoundError,
    UnsupportedURIError,
)
from infra.settings import Settings
from infra.storage import LocalStore, ObjectStore, S3Store, locate, open_store, s3_client

LARGE = 40 * 1024 * 1024  # above the 16 MB multipart threshold


@pytest.fixture(params=["local", "s3"])
def store_settings(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    """Storage needs no database: only the store fields are set."""
    if request.param == "local":
        return make_settings()
    return make_settings(**request.getfixturevalue("s3_storage_fields"))


@pytest.fixture
def store(store_settings: Settings) -> ObjectStore:
    return open_store(store_settings)


class _Chunks(io.RawIOBase):
    """A stream of unknown length that cannot seek, like a request body."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n], self._pending = self._pending[:n], self._pending[n:]
        return n


def test_backend_follows_the_storage_url(make_settings: Callable[..., Settings], s3_store_settings: Settings) -> None:
    settings = make_settings()
    assert isinstance(open_store(settings), LocalStore)
    s3 = open_store(s3_store_settings)
    assert isinstance(s3, S3Store)
    assert s3.uri("a/b") == f"{s3_store_settings.storage_url}/a/b"


def test_bytes_round_trip_with_sha256_recorded(store: ObjectStore) -> None:
    data = b'{"question": "q", "answer": "a"}\n'
    info = store.put_bytes("forget/t1/records.jsonl", data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    assert store.get_bytes("forget/t1/records.jsonl") == data
    head = store.head("forget/t1/records.jsonl")
    assert (head.sha256, head.size, head.uri) == (info.sha256, len(data), info.uri)
    assert store.exists("forget/t1/records.jsonl")
    assert not store.exists("forget/t1/other.jsonl")


def test_overwrite_replaces_bytes_and_hash(store: ObjectStore) -> None:
    store.put_bytes("k", b"one")
    store.put_bytes("k", b"two")
    assert store.get_bytes("k") == b"two"
    assert store.head("k").sha256 == hashlib.sha256(b"two").hexdigest()


def test_listing_by_prefix_shows_objects_only(store: ObjectStore) -> None:
    for key in [
        "masks/t1/mask.safetensors",
        "masks/t2/mask.safetensors",
        "masks-old/x",
        "ckpt/v2/model.safetensors",
    ]:
        store.put_bytes(key, key.encode())
    assert store.list("masks/") == ["masks/t1/mask.safetensors", "masks/t2/mask.safetensors"]
    assert store.list("masks") == [
        "masks-old/x",
        "masks/t1/mask.safetensors",
        "masks/t2/mask.safetensors",
    ]
    assert len(store.list()) == 4  # no sidecars, no temp files
    assert store.list("nothing/") == []


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put_bytes("scratch/t1/forget.json", b"x")
    store.delete("scratch/t1/forget.json")
    store.delete("scratch/t1/forget.json")
    assert not store.exists("scratch/t1/forget.json")
    assert store.list("scratch/") == []
    with pytest.raises(ObjectNotFoundError, match="no object at"):
        store.get_bytes("scratch/t1/forget.json")
    with pytest.raises(ObjectNotFoundError):
        store.head("scratch/t1/forget.json")


def test_files_round_trip_and_verify_expected_hash(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "model.safetensors"
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    info = store.put_file("ckpt/v2/model.safetensors", source)
    target = tmp_path / "down" / "model.safetensors"
    got = store.get_file("ckpt/v2/model.safetensors", target, expected_sha256=info.sha256)
    assert target.read_bytes() == source.read_bytes()
    assert got.sha256 == info.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()

    with pytest.raises(ChecksumMismatchError):
        store.get_file("ckpt/v2/model.safetensors", tmp_path / "bad" / "m", expected_sha256="0" * 64)
    assert not (tmp_path / "bad" / "m").exists()  # a failed download leaves nothing at the target
    assert [p.name for p in (tmp_path / "bad").iterdir()] == []


def test_large_object_streams_through(store: ObjectStore, tmp_path: Path) -> None:
    block = os.urandom(1024 * 1024)
    expected = hashlib.sha256(block * (LARGE // len(block))).hexdigest()
    info = store.put_stream("big/blob.bin", _Chunks(iter([block] * (LARGE // len(block)))))
    assert (info.size, info.sha256) == (LARGE, expected)
    assert store.head("big/blob.bin").sha256 == expected

    digest, size = hashlib.sha256(), 0
    with store.open("big/blob.bin") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    assert (size, digest.hexdigest()) == (LARGE, expected)

    # Ranged, parallel parts on S3, written in order through the hashing sink.
    got = store.get_file("big/blob.bin", tmp_path / "blob.bin", expected_sha256=expected)
    assert (got.size, got.sha256) == (LARGE, expected)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", ".hidden", "a/.sidecar"])
def test_bad_keys_are_refused_before_any_write(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidRequestError):
        store.put_bytes(key, b"x")
    assert store.list() == []


def test_local_writes_leave_no_temp_files(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    store = open_store(settings)
    store.put_bytes("a/b", b"1")
    store.put_stream("a/c", io.BytesIO(b"2"))
    root = Path(settings.storage_url.removeprefix("file://"))
    names = sorted(p.name for p in (root / "a").iterdir())
    assert names == [".b.sha256", ".c.sha256", "b", "c"]


def test_locate_reads_objects_in_other_buckets_and_directories(
    make_settings: Callable[..., Settings],
    s3_storage_fields: dict,
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    s3_store_settings = make_settings(**s3_storage_fields)
    other = f"grin-test-intake-{uuid.uuid4().hex[:8]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    client.create_bucket(Bucket=other)
    client.put_object(Bucket=other, Key="requests/jane.json", Body=b"[]")

    store, key = locate(f"s3://{other}/requests/jane.json", settings=s3_store_settings)
    assert key == "requests/jane.json"
    assert store.get_bytes(key) == b"[]"
    assert store.head(key).sha256 is None  # written by someone else: no recorded hash

    local = tmp_path / "with space" / "forget.json"
    local.parent.mkdir()
    local.write_bytes(b"[1]")
    store, key = locate(local.as_uri(), settings=s3_store_settings)
    assert store.get_bytes(key) == b"[1]"

    with pytest.raises(ObjectNotFoundError):
        store, key = locate(f"s3://{other}/requests/nobody.json", settings=s3_store_settings)
        store.head(key)
    with pytest.raises(ObjectNotFoundError):
        store, key = locate("s3://no-such-bucket-here/x.json", settings=s3_store_settings)
        store.head(key)


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/x.json",
        "gs://bucket/x.json",
        "ftp://h/x",
        "relative/path.json",
        "/abs/path.json",
    ],
)
def test_unsupported_schemes_are_refused_clearly(make_settings: Callable[..., Settings], uri: str) -> None:
    with pytest.raises(UnsupportedURIError, match="use s3://bucket/key or file:///absolute/path"):
        locate(uri, settings=make_settings())


@pytest.mark.parametrize("uri", ["s3://bucket-only", "s3://bucket/", "file:///"])
def test_uris_that_name_no_object_are_refused(make_settings: Callable[..., Settings], uri: str) -> None:
    with pytest.raises(InvalidRequestError):
        locate(uri, settings=make_settings())


def test_s3_client_is_shared_per_endpoint(make_settings: Callable[..., Settings], s3_storage_fields: dict) -> None:
    assert s3_client(make_settings(**s3_storage_fields)) is s3_client(make_settings(**s3_storage_fields))
