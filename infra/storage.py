"""Object storage: one interface over any S3 endpoint (boto3 managed transfers) and a local directory.

Every object grin writes carries the sha256 of its bytes, computed on the way in: S3 user
metadata (`x-amz-meta-sha256`) or, locally, a hidden sidecar `.<name>.sha256` beside the file.
Objects written by others (a forget set dropped in a bucket) may have none: `sha256` is then None.
URIs are `s3://bucket/key` and `file:///absolute/path`; `locate` opens any of them, whatever
bucket or directory it is in, and refuses every other scheme.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import urlsplit
from urllib.request import url2pathname

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from infra.errors import (
    ChecksumMismatchError,
    InvalidRequestError,
    ObjectNotFoundError,
    UnsupportedURIError,
)
from infra.settings import Settings

CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 64 * 1024 * 1024
TRANSFER = TransferConfig(multipart_threshold=16 * CHUNK, multipart_chunksize=16 * CHUNK, max_concurrency=4)
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    key: str
    size: int
    sha256: str | None  # None: not written by grin, no hash recorded


class _HashingWriter(io.RawIOBase):
    """A write-only, non-seekable sink that hashes what passes through (boto3 then writes in order)."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink, self.digest, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.sink.write(data)


def _check_key(key: str, *, writing: bool) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidRequestError(f"object key {key!r} must be a relative path without empty, '.' or '..' parts")
    if writing and any(p.startswith(".") for p in parts):
        raise InvalidRequestError(f"object key {key!r}: parts starting with '.' are reserved")
    return key


def _verified(sha256: str, expected: str | None, uri: str) -> None:
    if expected is not None and sha256 != expected:
        raise ChecksumMismatchError(f"{uri}: sha256 {sha256} is not the expected {expected}")


class ObjectStore(ABC):
    """Keys are '/'-separated paths relative to the store's root (a bucket prefix or a directory)."""

    @abstractmethod
    def uri(self, key: str) -> str: ...

    @abstractmethod
    def _put(self, key: str, body: IO[bytes], sha256: str) -> None:
        """Store a seekable body positioned at 0 whose hash is already known."""

    @abstractmethod
    def _download(self, key: str, sink: IO[bytes]) -> None: ...

    @abstractmethod
    def open(self, key: str) -> Any:
        """A context manager over a readable binary stream of the object."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix` (a plain string prefix, as S3 has it), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing one that is not there is not an error."""

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectNotFoundError:
            return False
        return True

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        sha256 = hashlib.sha256(data).hexdigest()
        self._put(_check_key(key, writing=True), io.BytesIO(data), sha256)
        return ObjectInfo(self.uri(key), key, len(data), sha256)

    def put_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        with open(path, "rb") as body:
            sha256 = hashlib.file_digest(body, "sha256").hexdigest()
            size = body.tell()
            body.seek(0)
            self._put(_check_key(key, writing=True), body, sha256)
        return ObjectInfo(self.uri(key), key, size, sha256)

    def put_stream(self, key: str, stream: IO[bytes]) -> ObjectInfo:
        """Store a stream of unknown length; it is spooled once so its hash can go on the object."""
        _check_key(key, writing=True)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            writer = _HashingWriter(spool)
            shutil.copyfileobj(stream, writer, CHUNK)
            spool.seek(0)
            sha256 = writer.digest.hexdigest()
            self._put(key, spool, sha256)
        return ObjectInfo(self.uri(key), key, writer.size, sha256)

    def get_bytes(self, key: str, *, expected_sha256: str | None = None) -> bytes:
        buffer = io.BytesIO()
        writer = _HashingWriter(buffer)
        self._download(_check_key(key, writing=False), writer)
        _verified(writer.digest.hexdigest(), expected_sha256, self.uri(key))
        return buffer.getvalue()

    def get_file(self, key: str, path: str | os.PathLike[str], *, expected_sha256: str | None = None) -> ObjectInfo:
        """Download to `path` atomically; the returned sha256 is that of the bytes written."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with _atomic_file(target) as sink:
            writer = _HashingWriter(sink)
            self._download(_check_key(key, writing=False), writer)
            _verified(writer.digest.hexdigest(), expected_sha256, self.uri(key))
        return ObjectInfo(self.uri(key), key, writer.size, writer.digest.hexdigest())


@contextmanager
def _atomic_file(target: Path) -> Iterator[IO[bytes]]:
    """A temp file beside `target` that replaces it only if the block completes."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as sink:
            yield sink
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalStore(ObjectStore):
    """A directory; writes are atomic (temp file + rename) and hashes live in hidden sidecars."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        return self.root / key

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(f".{path.name}.sha256")

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def _put(self, key: str, body: IO[bytes], sha256: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Sidecar off first: a crash in between leaves an object with no hash, never a wrong one.
        self._sidecar(path).unlink(missing_ok=True)
        with _atomic_file(path) as sink:
            shutil.copyfileobj(body, sink, CHUNK)
        with _atomic_file(self._sidecar(path)) as sink:
            sink.write(sha256.encode())

    def _existing(self, key: str) -> Path:
        path = self._path(_check_key(key, writing=False))
        if not path.is_file():
            raise ObjectNotFoundError(f"no object at {self.uri(key)}")
        return path

    def _download(self, key: str, sink: IO[bytes]) -> None:
        with self._existing(key).open("rb") as body:
            shutil.copyfileobj(body, sink, CHUNK)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        with self._existing(key).open("rb") as body:
            yield body

    def head(self, key: str) -> ObjectInfo:
        path = self._existing(key)
        sidecar = self._sidecar(path)
        sha256 = sidecar.read_text().strip() if sidecar.is_file() else None
        return ObjectInfo(self.uri(key), key, path.stat().st_size, sha256)

    def list(self, prefix: str = "") -> list[str]:
        if ".." in prefix.split("/"):
            raise InvalidRequestError(f"prefix {prefix!r} must stay inside the store")
        base = self.root / prefix.rpartition("/")[0]
        keys = []
        for directory, subdirs, names in os.walk(base):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            for name in names:
                if not name.startswith("."):
                    key = Path(directory, name).relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(_check_key(key, writing=False))
        path.unlink(missing_ok=True)
        self._sidecar(path).unlink(missing_ok=True)


class S3Store(ObjectStore):
    """A bucket (and optional key prefix) on any S3 API, through boto3's managed transfers."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket, self.client = bucket, client
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _put(self, key: str, body: IO[bytes], sha256: str) -> None:
        self.client.upload_fileobj(
            body,
            self.bucket,
            self.prefix + key,
            ExtraArgs={"Metadata": {"sha256": sha256}},
            Config=TRANSFER,
        )

    def _download(self, key: str, sink: IO[bytes]) -> None:
        with self._not_found_as(key):
            self.client.download_fileobj(self.bucket, self.prefix + key, sink, Config=TRANSFER)

    @contextmanager
    def open(self, key: str) -> Iterator[Any]:
        with self._not_found_as(key):
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + _check_key(key, writing=False))["Body"]
        try:
            yield body
        finally:
            body.close()

    def head(self, key: str) -> ObjectInfo:
        with self._not_found_as(key):
            meta = self.client.head_object(Bucket=self.bucket, Key=self.prefix + _check_key(key, writing=False))
        return ObjectInfo(self.uri(key), key, meta["ContentLength"], meta.get("Metadata", {}).get("sha256"))

    def list(self, prefix: str = "") -> list[str]:
        keys = []
        with self._not_found_as(prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            ):
                keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + _check_key(key, writing=False))

    @contextmanager
    def _not_found_as(self, key: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                raise ObjectNotFoundError(f"no object at {self.uri(key)}") from None
            raise


@lru_cache(maxsize=8)
def _s3_client(endpoint_url: str | None, region: str, key_id: str | None, secret: str | None) -> Any:
    # Custom endpoints (MinIO, moto) are addressed by path; AWS itself by virtual host.
    config = BotoConfig(
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config,
    )


def s3_client(settings: Settings) -> Any:
    """The S3 client for the configured endpoint and credentials (shared; boto3 clients are thread-safe)."""
    secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
    return _s3_client(settings.s3_endpoint_url, settings.s3_region, settings.s3_access_key_id, secret)


def _split(uri: str) -> tuple[str, str, str]:
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        return "s3", parts.netloc, uri[len(f"s3://{parts.netloc}") :].lstrip("/")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UnsupportedURIError(f"{uri!r}: file URIs must be local (file:///absolute/path)")
        return "file", "", url2pathname(parts.path)
    raise UnsupportedURIError(
        f"unsupported URI scheme {parts.scheme or '(none)'!r} in {uri!r}: use s3://bucket/key or file:///absolute/path"
    )


def open_store(settings: Settings) -> ObjectStore:
    """The service's own store, at `settings.storage_url`."""
    scheme, bucket, path = _split(settings.storage_url)
    if scheme == "s3":
        return S3Store(bucket, path, s3_client(settings))
    return LocalStore(path)


def locate(uri: str, *, settings: Settings) -> tuple[ObjectStore, str]:
    """The store holding the object at `uri` and its key there; any bucket, any local path."""
    scheme, bucket, path = _split(uri)
    if scheme == "s3":
        if not bucket or not path:
            raise InvalidRequestError(f"{uri!r} must be s3://bucket/key")
        return S3Store(bucket, "", s3_client(settings)), path
    if not path.startswith("/") or path == "/":
        raise InvalidRequestError(f"{uri!r} must name an absolute file path")
    return LocalStore("/"), path.lstrip("/")
