"""Deleting stored files in bulk.

WHY: every deletion path used to call `storage.delete(key)` once per file. On S3 that
is one DELETE request per object: a platform purging ~1,650 recordings a second sends
~1,650 requests a second, each paying a round trip and a request charge. S3's
DeleteObjects takes up to 1,000 keys per request, so on django-storages' S3Storage
`storage_delete` sends those instead (in Quiet mode: the answer lists only failures).
Any other storage (the file system in development and tests) keeps the per-key loop.

WHAT COUNTS AS DELETED: a missing object, as Django's own storages (and S3Storage's
`delete`) already treat it: a purge retried after a crash finds some files gone.
Anything else raises, as a failing single delete does, so that the caller leaves its
rows for a retry; the storage sweep settles files left without a row.

LISTING (`storage_listing`): the storage sweep needs every stored file with its
modification time. Through the Storage API that is `listdir` plus one
`get_modified_time` per file, and on S3 each of those is a HEAD request: ten million
files, ten million requests a run. A ListObjectsV2 answer carries 1,000 keys with their
LastModified, so on S3Storage the listing is one request per 1,000 objects. It yields
keys in S3's order (UTF-8 byte order), and on any other storage in the same order, so
that a caller can merge it with rows read in byte order (`COLLATE "C"`).

S3 is looked for without importing it: `storages.backends.s3` imports boto3, which a
deployment on another storage need not install. An S3Storage object exists only once
its module is loaded, so a storage can be one only if `sys.modules` holds the module.
"""

import sys
from collections.abc import Iterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from django.core.files.storage import Storage, default_storage

# S3's limit on the keys of one DeleteObjects request
DELETE_OBJECTS_MAX = 1000
_S3_MODULE = "storages.backends.s3"
# what some S3-compatible servers answer for a key that does not exist (AWS answers
# success): it is deleted as far as anyone can tell
_MISSING_CODES = frozenset({"NoSuchKey"})


class StorageDeleteError(OSError):
    """Objects that a bulk delete left in place: `failures` holds (name, code, message)
    for each, in the order they were named; the message names the first."""

    def __init__(self, failures: list[tuple[str, str, str]], *, total: int) -> None:
        self.failures = failures
        name, code, message = failures[0]
        super().__init__(
            f"{len(failures)} of {total} stored objects were not deleted; "
            f"first {name!r}: {code} {message}".rstrip()
        )


def storage_delete(keys: Sequence[str], storage: Storage | None = None) -> None:
    """Delete the objects named `keys` from `storage` (default: `default_storage`).

    A missing object counts as deleted. On django-storages' S3Storage the keys go in
    DeleteObjects requests of up to 1,000 keys each (one request instead of a thousand,
    see the module's docstring), each key mapped as `S3Storage.delete` maps a name, so
    the storage's `location` prefix applies; every request is sent, then any key the
    answers list as failed raises StorageDeleteError (an OSError) naming the first. An
    error of a whole request (no access, no connection) is raised at once. On any other
    storage: `storage.delete` per key, FileNotFoundError ignored, the first other error
    raised.
    """
    storage = default_storage if storage is None else storage
    if not keys:
        return
    if _is_s3(storage):
        _s3_delete(storage, keys)
        return
    for key in keys:
        # Django's own storages already ignore a missing file; others may raise
        with suppress(FileNotFoundError):
            storage.delete(key)


def storage_listing(prefix: str, storage: Storage | None = None) -> Iterator[tuple[str, datetime]]:
    """Every stored object under the directory `prefix` (of `storage`, default
    `default_storage`), as (name, last modified: aware, in UTC), in UTF-8 byte order of
    the names.

    Names are what the storage's own methods take (`exists`, `delete`, an artefact's
    `storage_key`): relative to the storage's `location`. `prefix` names a directory
    ("audio/" or "audio"): "audio2/x" is not under "audio". A missing directory lists
    nothing.

    WHY: on S3 a modification time read per file is a HEAD request per file; a listing
    page gives 1,000 with their times (the module's docstring). On django-storages'
    S3Storage: one ListObjectsV2 paginator over the prefix as the storage maps a name
    (so the `location` applies), keys in S3's order, which is UTF-8 byte order;
    "directory" marker objects (a key ending in "/") are skipped, as `listdir` skips
    them. On any other storage (the file system): `listdir` walked recursively and
    `get_modified_time` per file (a local stat), each directory's entries sorted so
    that the whole walk comes out in the same byte order as S3's (a directory sorts as
    its name followed by "/"), and lazily, one directory at a time.
    """
    storage = default_storage if storage is None else storage
    if _is_s3(storage):
        yield from _s3_listing(storage, prefix)
        return
    directory = prefix.strip("/")
    yield from _walk(storage, directory)


def storage_is_s3(storage: Storage | None = None) -> bool:
    """Whether `storage` (default: `default_storage`) is django-storages' S3Storage, where
    each `exists` is a request and `storage_listing` is the cheap way to know what is
    stored."""
    return _is_s3(default_storage if storage is None else storage)


def _walk(storage: Storage, directory: str) -> Iterator[tuple[str, datetime]]:
    try:
        directories, files = storage.listdir(directory)
    except FileNotFoundError:
        return
    base = f"{directory}/" if directory else ""
    entries = [(f"{name}/", True) for name in directories] + [(name, False) for name in files]
    entries.sort(key=lambda entry: entry[0].encode())
    for name, is_directory in entries:
        if is_directory:
            yield from _walk(storage, base + name.rstrip("/"))
            continue
        key = base + name
        try:
            modified = storage.get_modified_time(key)
        except FileNotFoundError:
            continue  # deleted since the directory was read
        yield key, _utc(modified)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:  # USE_TZ off: the storage gives local time
        moment = moment.astimezone()
    return moment.astimezone(UTC)


def _s3_listing(storage: Any, prefix: str) -> Iterator[tuple[str, datetime]]:
    """`storage` is an S3Storage."""
    from storages.utils import clean_name

    path = storage._normalize_name(clean_name(prefix))
    if path and not path.endswith("/"):
        path += "/"  # a directory, as `listdir` lists one
    # an object's name is its key without the location, as S3Storage's files name it
    location = storage.location.strip("/")
    cut = len(location) + 1 if location else 0
    client = storage.connection.meta.client
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=storage.bucket_name, Prefix=path
    )
    for page in pages:
        for entry in page.get("Contents", ()):
            key: str = entry["Key"]
            if key.endswith("/"):
                continue
            yield key[cut:], _utc(entry["LastModified"])


def _is_s3(storage: Storage) -> bool:
    """Whether `storage` is django-storages' S3Storage (or a subclass), without
    importing the module when nothing has (see the module's docstring)."""
    kind = storage.__class__  # also sets up a lazy `default_storage`
    s3_class: Any = getattr(sys.modules.get(_S3_MODULE), "S3Storage", None)
    return s3_class is not None and issubclass(kind, s3_class)


def _s3_delete(storage: Any, keys: Sequence[str]) -> None:
    """`storage` is an S3Storage (django-storages ships no type information)."""
    from storages.utils import clean_name

    names: dict[str, str] = {}  # the object's key -> the name the caller gave
    for key in keys:
        if not key:
            raise ValueError("The name must be given to delete().")
        # exactly what S3Storage.delete does with a name
        names.setdefault(storage._normalize_name(clean_name(key)), key)
    client = storage.connection.meta.client
    object_keys = list(names)
    failed: dict[str, tuple[str, str]] = {}  # the object's key -> (code, message)
    for start in range(0, len(object_keys), DELETE_OBJECTS_MAX):
        answer = client.delete_objects(
            Bucket=storage.bucket_name,
            Delete={
                "Objects": [
                    {"Key": key} for key in object_keys[start : start + DELETE_OBJECTS_MAX]
                ],
                "Quiet": True,
            },
        )
        for error in answer.get("Errors", ()):
            code = str(error.get("Code", ""))
            if code not in _MISSING_CODES:
                failed[str(error.get("Key", ""))] = (code, str(error.get("Message", "")))
    if failed:
        # in the order the keys were named; a key the answer made up comes last
        ordered = [key for key in object_keys if key in failed]
        ordered += [key for key in failed if key not in names]
        raise StorageDeleteError(
            [(names.get(key, key), *failed[key]) for key in ordered], total=len(object_keys)
        )
