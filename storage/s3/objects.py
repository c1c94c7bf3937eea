"""The S3 edge of the archive: one file → one object, SHA-256 sent and read back (boto3).

`ObjectWriter.store(...)` uploads a local file (one PUT below the multipart threshold, else a
multipart upload whose finished parts are reported through a callback so the caller can persist
them and resume after a crash), then confirms the result with `head_object(ChecksumMode=ENABLED)`:
S3's own SHA-256 (single PUT) or composite SHA-256 of the part digests (multipart) must equal
the one computed here from the file, and the size must match. `find_existing` answers "is this
exact file already there?" so a retry after a lost response or a crash between the upload and
the queue update does not store the same recording twice.

The only module that talks to S3 for the uploader; credentials come from boto3's standard chain.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FileDigests", "ObjectWriter", "digests", "composite", "version_of", "MiB"]

MiB = 1024 * 1024
Part = dict[str, Any]


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def composite(part_digests: list[str]) -> str:
    """S3's multipart checksum: SHA-256 over the concatenated binary part digests (base64)."""
    return _b64(hashlib.sha256(b"".join(base64.b64decode(d) for d in part_digests)).digest())


@dataclass(frozen=True)
class FileDigests:
    """The file's SHA-256 (hex) and, per `part_size` chunk, each chunk's SHA-256 (base64)."""

    sha256: str
    size: int
    part_size: int
    parts: tuple[str, ...]

    def expected(self, multipart: bool) -> str:
        """The ChecksumSHA256 S3 reports for this file (without the `-N` part count)."""
        return composite(list(self.parts)) if multipart else _b64(bytes.fromhex(self.sha256))


def digests(path: str, part_size: int) -> FileDigests:
    """One pass over the file: whole-file SHA-256 and per-part SHA-256 digests."""
    whole = hashlib.sha256()
    parts: list[str] = []
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(part_size):
            whole.update(chunk)
            parts.append(_b64(hashlib.sha256(chunk).digest()))
            size += len(chunk)
    return FileDigests(whole.hexdigest(), size, part_size, tuple(parts))


class ObjectWriter:
    """Puts files into one bucket with the configured SSE, Object Lock and storage class."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        sse: str = "none",
        kms_key_id: str | None = None,
        lock_mode: str = "none",
        lock_days: int = 0,
        storage_class: str | None = None,
        multipart_threshold: int = 16 * MiB,
        part_size: int = 8 * MiB,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.lock_mode = lock_mode
        self.lock_days = lock_days
        self.storage_class = storage_class
        self.multipart_threshold = multipart_threshold
        self.part_size = max(5 * MiB, part_size)  # S3's smallest part (all but the last)

    def is_multipart(self, size: int) -> bool:
        return size >= self.multipart_threshold

    def object_args(self, key: str, sha_hex: str, recording_id: str) -> dict[str, Any]:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Metadata": {"sha256": sha_hex, "recording-id": recording_id},
        }
        if self.sse == "AES256":
            args["ServerSideEncryption"] = "AES256"
        elif self.sse == "aws:kms":
            args["ServerSideEncryption"] = "aws:kms"
            if self.kms_key_id:
                args["SSEKMSKeyId"] = self.kms_key_id
        if self.lock_mode in ("GOVERNANCE", "COMPLIANCE") and self.lock_days > 0:
            args["ObjectLockMode"] = self.lock_mode
            args["ObjectLockRetainUntilDate"] = dt.datetime.now(dt.UTC) + dt.timedelta(
                days=self.lock_days
            )
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        return args

    # -- reading back -----------------------------------------------------------------------

    def head(self, key: str, version: str | None = None) -> dict[str, Any] | None:
        """head_object with checksums, or None when there is no such object."""
        from botocore.exceptions import ClientError

        extra = {"VersionId": version} if version else {}
        try:
            return dict(
                self.client.head_object(
                    Bucket=self.bucket, Key=key, ChecksumMode="ENABLED", **extra
                )
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    @staticmethod
    def matches(head: dict[str, Any], expected: str, size: int) -> bool:
        got = str(head.get("ChecksumSHA256") or "").split("-")[0]
        return got == expected and int(head.get("ContentLength", -1)) == size

    def verify(self, key: str, version: str | None, expected: str, size: int) -> dict[str, Any]:
        """head_object of the stored object; raises unless checksum and size are the file's."""
        head = self.head(key, version)
        if head is None:
            raise RuntimeError(f"s3://{self.bucket}/{key} is missing right after its upload")
        if not self.matches(head, expected, size):
            got = str(head.get("ChecksumSHA256") or "none")
            raise RuntimeError(
                f"checksum mismatch for s3://{self.bucket}/{key}: S3 has {got} "
                f"({head.get('ContentLength')} bytes), expected {expected} "
                f"({size} bytes)"
            )
        return head

    def find_existing(
        self, key: str, sha_hex: str, expected: str, size: int
    ) -> dict[str, Any] | None:
        """head_object of the object at `key` if it is this very file (checksum, size and sha256
        metadata all match), else None."""
        head = self.head(key)
        if head is None or not self.matches(head, expected, size):
            return None
        if (head.get("Metadata") or {}).get("sha256") != sha_hex:
            return None
        return head

    # -- writing ----------------------------------------------------------------------------

    def put(self, path: str, args: dict[str, Any], d: FileDigests) -> str | None:
        with open(path, "rb") as f:
            resp = self.client.put_object(
                Body=f, ChecksumAlgorithm="SHA256", ChecksumSHA256=d.expected(False), **args
            )
        return version_of(resp)

    def multipart(
        self,
        path: str,
        args: dict[str, Any],
        d: FileDigests,
        upload_id: str | None,
        parts: list[Part],
        save: Callable[[str, list[Part]], None],
        stopping: Callable[[], bool],
    ) -> str | None:
        """Upload (or continue) a multipart upload; `save(upload_id, parts)` after every part."""
        if d.part_size != self.part_size:
            raise ValueError("digests were taken with another part size")
        key = args["Key"]
        if upload_id:
            try:  # resume: keep only parts S3 still has, with the same digest as the file now
                listed = self.client.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id)
                have = {p["PartNumber"] for p in listed.get("Parts", [])}
                parts = [
                    p
                    for p in parts
                    if p["PartNumber"] in have
                    and p.get("ChecksumSHA256") == d.parts[p["PartNumber"] - 1]
                ]
            except self.client.exceptions.NoSuchUpload:
                upload_id = None
        if not upload_id:
            upload_id = str(
                self.client.create_multipart_upload(ChecksumAlgorithm="SHA256", **args)["UploadId"]
            )
            parts = []
            save(upload_id, parts)
        done = {p["PartNumber"] for p in parts}
        with open(path, "rb") as f:
            for number, digest in enumerate(d.parts, start=1):
                if number in done:
                    continue
                f.seek((number - 1) * d.part_size)
                chunk = f.read(d.part_size)
                resp = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=digest,
                )
                parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": digest})
                save(upload_id, parts)
                if stopping():
                    raise RuntimeError("stopping: multipart upload paused (resumes at restart)")
        parts.sort(key=lambda p: p["PartNumber"])
        resp = self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        return version_of(resp)


def version_of(resp: dict[str, Any]) -> str | None:
    """The VersionId of a response; None for an unversioned bucket ("null")."""
    version = resp.get("VersionId")
    return None if version in (None, "null") else str(version)
