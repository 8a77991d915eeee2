"""The allow-list of places a ticket's objects may come from (`Settings.intake_roots`).

A forget set is read with the service's own credentials, so a ticket must not be able to point
them at `/etc/passwd` or another team's bucket. A URI is resolved first (percent escapes decoded,
`.`/`..` removed, symlinks followed) and only then compared with the roots; the refusal is the
same sentence whether or not anything exists at the path, so intake reveals nothing outside them.
A hard link (a file with more than one name) is refused like a symlink: its other name may be outside.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from infra.errors import InvalidRequestError, UnsupportedURIError
from infra.settings import Settings
from infra.storage import LocalStore, ObjectStore, S3Store, s3_client

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class OutsideIntakeRootsError(InvalidRequestError):
    """A URI that does not resolve to a place under one of the configured intake roots."""


@dataclass(frozen=True)
class Located:
    """Where an allowed object is: its store, its key there, and the canonical URI to file."""

    store: ObjectStore
    key: str
    uri: str


def _refused(uri: str) -> OutsideIntakeRootsError:
    return OutsideIntakeRootsError(f"{uri!r} is not under an allowed intake root (see GRIN_INTAKE_ROOTS)")


def _file_root(root: str) -> str:
    return os.path.realpath(url2pathname(urlsplit(root).path))


def _s3_root(root: str) -> tuple[str, str]:
    parts = urlsplit(root)
    prefix = parts.path.lstrip("/")
    return parts.netloc, prefix if not prefix or prefix.endswith("/") else prefix + "/"


def locate_allowed(uri: str, *, settings: Settings) -> Located:
    """The store and key of `uri` if it resolves under an intake root; else OutsideIntakeRootsError."""
    parts = urlsplit(uri)
    if parts.scheme not in ("s3", "file"):
        raise UnsupportedURIError(
            f"unsupported URI scheme {parts.scheme or '(none)'!r} in {uri!r}: use s3://bucket/key or file:///absolute/path"
        )
    if parts.query or parts.fragment:
        raise _refused(uri)
    if parts.scheme == "file":
        return _locate_file(uri, parts.netloc, parts.path, settings)
    return _locate_s3(uri, parts.netloc, uri[len(f"s3://{parts.netloc}") :], settings)


def _locate_file(uri: str, netloc: str, raw_path: str, settings: Settings) -> Located:
    if netloc not in ("", "localhost"):
        raise UnsupportedURIError(f"{uri!r}: file URIs must be local (file:///absolute/path)")
    path = url2pathname(raw_path)
    if not path.startswith("/") or _CONTROL.search(path):
        raise _refused(uri)
    resolved = os.path.realpath(path)  # `..`, `.`, `//` and every symlink on the way
    for root in settings.intake_roots:
        if urlsplit(root).scheme != "file":
            continue
        base = _file_root(root)
        if resolved != base and os.path.commonpath([resolved, base]) == base:
            _refuse_hard_link(uri, resolved, base)
            key = PurePosixPath(resolved).relative_to(base).as_posix()
            store = LocalStore(base)
            return Located(store, key, store.uri(key))
    raise _refused(uri)


def _refuse_hard_link(uri: str, resolved: str, base: str) -> None:
    """A file with another name may be one outside the root (`ln /etc/shadow inbox/x`): realpath does
    not see through hard links, so a file with more than one link, or on another device than its root
    (a mount inside it), is refused like a symlink pointing out."""
    try:
        found, root = os.stat(resolved), os.stat(base)
    except OSError:
        return  # nothing there (yet): the read says "no object at"
    if stat.S_ISREG(found.st_mode) and (found.st_nlink > 1 or found.st_dev != root.st_dev):
        raise OutsideIntakeRootsError(
            f"{uri!r} is a hard link or on another device than its intake root: refused like a symlink, "
            "as it may be a file outside the root"
        )


def _locate_s3(uri: str, bucket: str, raw_key: str, settings: Settings) -> Located:
    try:
        key = unquote(raw_key.lstrip("/"), errors="strict")
    except UnicodeDecodeError:
        raise _refused(uri) from None
    segments = key.split("/")
    if not bucket or not key or _CONTROL.search(key) or any(s in ("", ".", "..") for s in segments):
        raise _refused(uri)
    for root in settings.intake_roots:
        if urlsplit(root).scheme != "s3":
            continue
        root_bucket, prefix = _s3_root(root)
        if bucket == root_bucket and key.startswith(prefix) and key != prefix:
            store = S3Store(bucket, "", s3_client(settings))
            return Located(store, key, store.uri(key))
    raise _refused(uri)
