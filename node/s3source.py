"""Objects in S3-compatible storage (AWS, MinIO, Ceph, Wasabi, ...) as a scan source.

A listing is paged and can resume after the last key the catalogue fully recorded, so an
interrupted scan of millions of objects does not start over. Each object is described by
what the listing already says (size, last-modified, ETag), so deciding that an object is
unchanged costs no request of its own. Reading returns a seekable file object, because
the image reader seeks, while keeping at most one bounded buffer of a large object in
memory. Every failure surfaces as a :class:`SourceError` naming the bucket and key and
saying why, never as a botocore traceback.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSLError,
)

#: Objects up to this size are read whole into memory; larger ones are spooled to a
#: temporary file, which holds at most this much in memory before it moves to disk.
SPOOL_THRESHOLD = 64 * 1024 * 1024
#: Bytes read from the network per step while spooling.
CHUNK_SIZE = 1024 * 1024

#: Short connect timeout and few retries: an unreachable store should fail the scan in
#: seconds with a clear message, not hang for minutes inside botocore's retry loop.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_REASONS = {
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "the object does not exist",
    "404": "not found",
    "AccessDenied": "access denied (check the credentials and the bucket policy)",
    "403": "access denied (check the credentials and the bucket policy)",
    "AllAccessDisabled": "all access to this bucket has been disabled",
    "InvalidAccessKeyId": "the store does not know this access key",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "ExpiredToken": "the session token has expired",
    "InvalidBucketName": "not a valid bucket name",
    "PermanentRedirect": "the bucket is in another region (set the region)",
    "AuthorizationHeaderMalformed": "the bucket is in another region (set the region)",
}


class SourceError(Exception):
    """An object store could not be listed or read; the message says where and why.

    ``code`` is the store's error code (``NoSuchBucket``, ``AccessDenied``, ...) or one of
    ``EndpointUnreachable``, ``Timeout``, ``NoCredentials``, ``TLS``, ``BadListing``,
    ``Truncated``, ``LocalIO`` for failures that happen before or after the store answers.
    """

    def __init__(self, message: str, bucket: str, key: str | None = None, code: str = "") -> None:
        super().__init__(message, bucket, key, code)
        self.bucket = bucket
        self.key = key
        self.code = code

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class ObjectEntry:
    """One object as listed: enough to locate it and to tell whether it changed.

    ``etag`` is a change marker only, never a content hash: for multipart uploads (and
    objects encrypted with customer or KMS keys) it is not the MD5 of the content, and
    the same bytes uploaded differently get different ETags.
    """

    locator: str  # s3://bucket/key
    key: str
    size: int
    etag: str
    last_modified_ns: int


def changed(entry: ObjectEntry, known: tuple[int, int, str] | None) -> bool:
    """Whether ``entry`` must be read again, given the (size, last_modified_ns, etag) recorded.

    All three are compared because none alone is enough: last-modified has one-second
    resolution on some stores, and an ETag can repeat when an object is rewritten with
    the same bytes (harmless) or differ when only the upload method changed (a re-read).
    """
    if known is None:
        return True
    return tuple(known) != (entry.size, entry.last_modified_ns, entry.etag)


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket[/prefix]`` -> (bucket, prefix), the prefix ending in '/' or empty.

    The prefix is treated as a folder, so ``s3://b/photos`` never picks up ``photos-old/``.
    """
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


class S3Source:
    """One bucket, optionally narrowed to a prefix, listed and read through boto3.

    Credentials come from boto3's usual chain (environment, shared profile, instance
    role) unless a ready ``client`` is passed. The client is built on first use, and
    rebuilt in a forked child: a connection pool inherited across ``fork`` would share
    sockets with the parent.
    """

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 client: Any = None, page_size: int = 1000) -> None:
        self._bucket, self._prefix = parse_url(url)
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be 1..1000 (the store caps a page at 1000), not {page_size}")
        self.endpoint_url = endpoint_url
        self.region = region
        self.page_size = page_size
        self._given_client = client
        self._client: Any = None
        self._client_pid = 0

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        """The key prefix listed: empty, or ending in '/'."""
        return self._prefix

    @property
    def root(self) -> str:
        """``s3://bucket`` or ``s3://bucket/prefix`` (no trailing slash): the catalogue's source name."""
        return f"s3://{self._bucket}/{self._prefix.rstrip('/')}" if self._prefix else f"s3://{self._bucket}"

    def locator(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Source({self.root!r}{where})"

    def _s3(self, key: str | None) -> Any:
        if self._given_client is not None:
            return self._given_client
        if self._client is None or self._client_pid != os.getpid():
            try:
                session = boto3.session.Session(region_name=self.region)
                self._client = session.client("s3", endpoint_url=self.endpoint_url, config=CLIENT_CONFIG)
            except (BotoCoreError, ValueError) as exc:
                raise SourceError(f"cannot connect to the store for {self._where(key)}: {exc}",
                                  self._bucket, key, type(exc).__name__) from None
            self._client_pid = os.getpid()
        return self._client

    def _where(self, key: str | None) -> str:
        return self.locator(key) if key is not None else f"{self.root}/"

    def _error(self, exc: Exception, key: str | None, doing: str) -> SourceError:
        """A SourceError for ``exc`` raised while ``doing`` something to ``key`` (None: the listing)."""
        code, reason = self._reason(exc)
        return SourceError(f"cannot {doing} {self._where(key)}: {code}: {reason}", self._bucket, key, code)

    def _reason(self, exc: Exception) -> tuple[str, str]:
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
            reason = _REASONS.get(code) or err.get("Message") or "the store refused the request"
            return code, reason
        endpoint = self.endpoint_url or "the default AWS endpoint"
        if isinstance(exc, SSLError):
            return "TLS", f"TLS failure talking to {endpoint}: {exc}"
        if isinstance(exc, ReadTimeoutError):
            return "Timeout", f"{endpoint} stopped answering: {exc}"
        if isinstance(exc, BotoConnectionError):
            return "EndpointUnreachable", f"endpoint {endpoint} unreachable: {exc}"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return "NoCredentials", ("no usable credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                                     f"or AWS_PROFILE): {exc}")
        if isinstance(exc, OSError):
            return "LocalIO", f"cannot buffer the object locally: {exc}"
        return type(exc).__name__, str(exc)

    def entries(self, start_after: str | None = None) -> Iterator[ObjectEntry]:
        """Every object under the prefix, in key order, one page of requests at a time.

        ``start_after`` (a full key) resumes an interrupted listing after the last key
        fully recorded. Keys ending in '/' are folder markers made by consoles and sync
        tools, not content, and are skipped. Keys must come back strictly increasing,
        since resuming relies on it; a store that breaks that order raises SourceError.
        """
        params: dict[str, Any] = {"Bucket": self._bucket, "Prefix": self._prefix, "MaxKeys": self.page_size}
        if start_after:
            params["StartAfter"] = start_after
        token: str | None = None
        last = start_after or ""
        while True:
            request = dict(params, ContinuationToken=token) if token else params
            try:
                page = self._s3(None).list_objects_v2(**request)
            except (ClientError, BotoCoreError) as exc:
                raise self._error(exc, None, "list") from None
            for obj in page.get("Contents", ()):
                key = obj["Key"]
                if key <= last:
                    raise SourceError(f"cannot list {self._where(None)}: BadListing: the store returned "
                                      f"{key!r} after {last!r}, out of key order", self._bucket, key, "BadListing")
                last = key
                if key.endswith("/"):
                    continue
                yield ObjectEntry(
                    locator=self.locator(key), key=key, size=int(obj["Size"]),
                    etag=str(obj.get("ETag", "")).strip('"'),
                    last_modified_ns=_ns(obj["LastModified"]),
                )
            if not page.get("IsTruncated"):
                return
            following = page.get("NextContinuationToken")
            if not following or following == token:
                raise SourceError(f"cannot list {self._where(None)}: BadListing: the store said there is more "
                                  "but gave no new continuation token", self._bucket, None, "BadListing")
            token = following

    def open(self, entry_or_key: ObjectEntry | str) -> BinaryIO:
        """A seekable binary file holding the object's bytes, positioned at the start.

        Objects up to SPOOL_THRESHOLD bytes come back as BytesIO; larger ones (and any
        whose length the store does not announce) are copied in CHUNK_SIZE steps into a
        SpooledTemporaryFile, which moves to disk past the threshold, so the whole body is
        never held in memory. A plain string is a key in this source's bucket.
        """
        if isinstance(entry_or_key, ObjectEntry):
            key = entry_or_key.key
            if entry_or_key.locator != self.locator(key):
                raise ValueError(f"{entry_or_key.locator} is not in bucket {self._bucket}")
        else:
            key = entry_or_key
        try:
            response = self._s3(key).get_object(Bucket=self._bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key, "read") from None
        body = response["Body"]
        length = response.get("ContentLength")
        threshold = SPOOL_THRESHOLD
        out: BinaryIO | None = None
        try:
            if length is not None and length <= threshold:
                data = body.read()
                received = len(data)
                out = io.BytesIO(data)
            else:
                out = tempfile.SpooledTemporaryFile(max_size=threshold)  # type: ignore[assignment]
                received = 0
                for chunk in body.iter_chunks(CHUNK_SIZE):
                    out.write(chunk)
                    received += len(chunk)
                out.seek(0)
        except (ClientError, BotoCoreError, OSError) as exc:
            if out is not None:
                out.close()
            raise self._error(exc, key, "read") from None
        finally:
            body.close()
        if length is not None and received != length:
            out.close()
            raise SourceError(f"cannot read {self.locator(key)}: Truncated: got {received} of {length} bytes",
                              self._bucket, key, "Truncated")
        return out


def _ns(when: datetime) -> int:
    """A listing's LastModified as integer nanoseconds since the epoch, exactly (no float rounding)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000
