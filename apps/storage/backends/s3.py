"""The `s3` backend: django-storages' S3Storage (boto3) on any S3-compatible store.

Configured with django-storages' own settings (`AWS_STORAGE_BUCKET_NAME`, `AWS_S3_ENDPOINT_URL`,
`AWS_S3_REGION_NAME`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_S3_ADDRESSING_STYLE`).
Blob writes send `Content-MD5`, so S3 itself refuses bytes damaged on the way (BadDigest), and
check the answer's ETag (the MD5 of what was stored) for stores that do not; where the ETag
is not an MD5 (SSE-KMS), the stored size is read back instead. One botocore client, which is
thread-safe, serves every thread of the process (boto3 resources are per thread and slow to
make), and storages with the same credentials share one boto3 session.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from botocore.config import Config
from botocore.exceptions import ClientError
from storages.backends.s3 import S3Storage

from apps.storage.backends import StoredObject, WriteNotVerified

DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes

_SESSIONS: dict[tuple[Any, ...], Any] = {}  # (profile, key id, secret, token) -> boto3.Session
_SESSIONS_LOCK = threading.RLock()


def _not_found(error: ClientError) -> bool:
    response: dict[str, Any] = error.response
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")


class S3BlobStorage(S3Storage):
    parallelism = 16
    default_content_type = "application/octet-stream"

    def __init__(self, **options: Any) -> None:
        options.setdefault("file_overwrite", True)
        super().__init__(**options)
        if options.get("client_config") is None:
            self.client_config = Config(
                s3={"addressing_style": self.addressing_style} if self.addressing_style else None,
                signature_version=self.signature_version or "s3v4",
                proxies=self.proxies,
                max_pool_connections=max(self.parallelism * 2, 10),
                connect_timeout=5,
                read_timeout=60,
                retries={"mode": "standard", "max_attempts": 3},
                # Kiln checks MD5s itself; CRC trailers on every PUT would only cost time
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_client", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._client = None

    def _create_session(self) -> Any:
        """One boto3 session per set of credentials in the process: a new session loads botocore's
        models again (~140 ms a client, against ~8 ms from a session that has them), and
        storage_migrate, the health check and the tests make more than one storage."""
        key = (self.session_profile, self.access_key, self.secret_key, self.security_token)
        with _SESSIONS_LOCK:
            session = _SESSIONS.get(key)
            if session is None:
                session = _SESSIONS[key] = super()._create_session()
        return session

    @property
    def connection(self) -> Any:
        """django-storages' per-thread resource (presigned URLs), made under the same lock."""
        with _SESSIONS_LOCK:
            return super().connection

    @property
    def client(self) -> Any:
        if self._client is None:
            with _SESSIONS_LOCK:  # a boto3 session is not thread-safe, and storages now share them
                if self._client is None:
                    self._client = self._create_session().client(
                        "s3",
                        region_name=self.region_name,
                        use_ssl=self.use_ssl,
                        endpoint_url=self.endpoint_url,
                        config=self.client_config,
                        verify=self.verify,
                    )
        return self._client

    def _key(self, key: str) -> str:
        return str(self._normalize_name(key))

    def _put(self, key: str, body: Any, *, size: int, md5: Any) -> None:
        params = self.get_object_parameters(key)
        params.setdefault("ContentType", self.default_content_type)
        if self.default_acl and "ACL" not in params:
            params["ACL"] = self.default_acl
        answer = self.client.put_object(
            Bucket=self.bucket_name,
            Key=self._key(key),
            Body=body,
            ContentLength=size,
            ContentMD5=base64.b64encode(md5.digest()).decode(),
            **params,
        )
        if str(answer.get("ETag", "")).strip('"') == md5.hexdigest():
            return
        stored = self.blob_size(key)
        if stored != size:
            raise WriteNotVerified(f"{key}: the store holds {stored} bytes, {size} were written")

    def write_blob(self, key: str, data: bytes) -> None:
        self._put(key, data, size=len(data), md5=hashlib.md5(data, usedforsecurity=False))

    def write_blob_file(self, key: str, path: Path, *, size: int, sha256: str) -> None:
        md5 = hashlib.md5(usedforsecurity=False)
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                md5.update(chunk)
                digest.update(chunk)
            if handle.tell() != size or digest.hexdigest() != sha256:
                raise WriteNotVerified(f"{key}: the file changed while it was stored")
            handle.seek(0)
            self._put(key, handle, size=size, md5=md5)

    def open_blob(self, key: str) -> IO[bytes]:
        try:
            answer = self.client.get_object(Bucket=self.bucket_name, Key=self._key(key))
        except ClientError as exc:
            if _not_found(exc):
                raise FileNotFoundError(key) from None
            raise
        body: IO[bytes] = answer["Body"]
        return body

    def blob_size(self, key: str) -> int | None:
        try:
            answer = self.client.head_object(Bucket=self.bucket_name, Key=self._key(key))
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        return int(answer["ContentLength"])

    def delete_blobs(self, keys: Iterable[str]) -> None:
        names = [self._key(key) for key in keys]
        for start in range(0, len(names), DELETE_BATCH):
            batch = names[start : start + DELETE_BATCH]
            answer = self.client.delete_objects(
                Bucket=self.bucket_name, Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True}
            )
            errors = [error for error in answer.get("Errors", []) if error.get("Code") != "NoSuchKey"]
            if errors:
                raise OSError(f"the store refused to delete {len(errors)} blobs ({errors[0].get('Code')})")

    def list_blobs(self, prefix: str) -> Iterator[StoredObject]:
        base = self._key(prefix).rstrip("/") + "/"
        location = self._key("").rstrip("/")
        strip = len(location) + 1 if location else 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=base):
            for entry in page.get("Contents", ()):
                yield StoredObject(key=entry["Key"][strip:], size=int(entry["Size"]), modified=entry["LastModified"])

    def blob_url(self, key: str, *, filename: str, content_type: str, ttl: int) -> str | None:
        disposition = f"attachment; filename*=UTF-8''{_rfc5987(filename)}"
        if filename.isascii() and '"' not in filename and "\\" not in filename:
            disposition = f'attachment; filename="{filename}"'
        return str(
            self.url(
                key,
                parameters={"ResponseContentDisposition": disposition, "ResponseContentType": content_type},
                expire=ttl,
            )
        )

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket_name)


def _rfc5987(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
