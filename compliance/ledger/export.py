"""Where the checkpoints and leaves are published: LEDGER_EXPORT, a local directory or an
S3-compatible prefix (`s3://bucket/prefix/`).

Every object is written once and never rewritten. In a directory: a temporary file
linked into place (`link` fails if the name exists). In S3: a conditional PUT
(`If-None-Match: *`, which S3 and most compatible stores honour) after a look that
the key is free; either way an object that exists already must hold the same bytes,
or the write raises ExportConflict and leaves it as it was. With
LEDGER_EXPORT_OBJECT_LOCK_MODE (`COMPLIANCE` or `GOVERNANCE`) each object is also put
under S3 Object Lock for LEDGER_EXPORT_OBJECT_LOCK_DAYS: in compliance mode nobody,
the bucket's owner included, can delete or overwrite it before then (the bucket must
have been created with Object Lock enabled; docs/runtime.md).

Names sort in publication order (`checkpoints/<20-digit size>`,
`entries/<20-digit first>-<20-digit last>`), so a listing `after` a name is what was
published since.
"""

import functools
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings


class ExportConflict(Exception):
    """An exported file exists with other bytes than the ones to publish."""


class ExportStore(Protocol):
    def names(self, folder: str, *, after: str | None = None) -> list[str]: ...

    def read(self, relative: str) -> bytes | None: ...

    def write_once(self, relative: str, content: bytes) -> None: ...


class LocalExport:
    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self, folder: str, *, after: str | None = None) -> list[str]:
        directory = self.root / folder
        if not directory.is_dir():
            return []
        return sorted(
            path.name
            for path in directory.iterdir()
            if not path.name.startswith(".") and (after is None or path.name > after)
        )

    def read(self, relative: str) -> bytes | None:
        try:
            return (self.root / relative).read_bytes()
        except FileNotFoundError:
            return None

    def write_once(self, relative: str, content: bytes) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            if path.read_bytes() != content:
                raise ExportConflict(f"{path} exists and holds other bytes")
            return
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".export-")
        try:
            os.write(fd, content)
            os.fsync(fd)
            os.close(fd)
            try:
                os.link(temporary, path)
            except FileExistsError:
                if path.read_bytes() != content:
                    raise ExportConflict(f"{path} exists and holds other bytes") from None
        finally:
            Path(temporary).unlink(missing_ok=True)


@functools.cache
def _s3_client(endpoint_url: str | None, region: str | None) -> Any:
    import boto3  # only a deployment that exports to S3 needs it

    return boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None)


class S3Export:
    def __init__(self, url: str) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"LEDGER_EXPORT {url!r} names no bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = _s3_client(
            getattr(settings, "AWS_S3_ENDPOINT_URL", None),
            getattr(settings, "AWS_S3_REGION_NAME", None),
        )

    def _key(self, relative: str) -> str:
        return self.prefix + relative

    def names(self, folder: str, *, after: str | None = None) -> list[str]:
        base = self._key(folder.strip("/") + "/")
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base}
        if after is not None:
            arguments["StartAfter"] = base + after
        names = []
        for page in self.client.get_paginator("list_objects_v2").paginate(**arguments):
            for item in page.get("Contents", []):
                name = item["Key"][len(base) :]
                if name and "/" not in name:
                    names.append(name)
        return sorted(names)

    def read(self, relative: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(relative))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        return bytes(response["Body"].read())

    def write_once(self, relative: str, content: bytes) -> None:
        from botocore.exceptions import ClientError

        existing = self.read(relative)
        if existing is not None:
            if existing != content:
                raise ExportConflict(f"s3://{self.bucket}/{self._key(relative)} holds other bytes")
            return
        arguments: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(relative),
            "Body": content,
            "IfNoneMatch": "*",
        }
        mode = getattr(settings, "LEDGER_EXPORT_OBJECT_LOCK_MODE", "")
        if mode:
            days = int(getattr(settings, "LEDGER_EXPORT_OBJECT_LOCK_DAYS", 0) or 0)
            arguments["ObjectLockMode"] = mode
            arguments["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=days)
        try:
            self.client.put_object(**arguments)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise
            # written meanwhile by another process: the same bytes, or a conflict
            if self.read(relative) != content:
                raise ExportConflict(
                    f"s3://{self.bucket}/{self._key(relative)} holds other bytes"
                ) from None


def export_store() -> ExportStore:
    """The store LEDGER_EXPORT names."""
    configured = settings.LEDGER_EXPORT
    if isinstance(configured, str) and configured.startswith("s3://"):
        return S3Export(configured)
    return LocalExport(Path(configured))
