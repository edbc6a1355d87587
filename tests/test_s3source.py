"""S3Source against a real S3 server (moto on loopback): paging, resuming, reading, failing clearly."""

from __future__ import annotations

import calendar
import hashlib
import io
import os
import pickle
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from dedup.node import s3source
from dedup.node.s3source import ObjectEntry, S3Source, SourceError, changed
from moto_server import s3_endpoint  # noqa: F401

BUCKET = "archive"
SCRATCH = "scratch"  # objects added by single tests, so the archive's listing never changes
PREFIX = "photos/"
N_OBJECTS = 2500
# Keys whose order or encoding trips up naive code: spaces, '+', '%', non-ASCII, nesting.
SPECIAL_KEYS = ["photos/with space.jpg", "photos/plus+sign.tif", "photos/percent%20.png",
                "photos/ünïcode/étude.jpg", "photos/Z-upper.jpg", "photos/deep/a/b/c.jpg"]
OUTSIDE_KEYS = ["other/x.jpg", "photos-old/y.jpg", "photos.txt", "a-before.jpg"]
FOLDER_MARKERS = ["photos/", "photos/empty-folder/", "photos/deep/"]


@dataclass
class Store:
    endpoint: str
    client: object
    bodies: dict[str, bytes]  # key -> content, for every key under PREFIX that is not a folder marker
    uploaded_between: tuple[int, int]  # ns since epoch, bracketing the uploads

    def source(self, url: str = f"s3://{BUCKET}/{PREFIX}", **kw) -> S3Source:
        return S3Source(url, endpoint_url=self.endpoint, **kw)

    @property
    def keys(self) -> list[str]:
        return sorted(self.bodies, key=lambda k: k.encode())


def _body(key: str) -> bytes:
    # Distinct sizes and contents, so a mixed-up entry or body shows.
    return (key.encode() + b"\n") * (1 + len(key) % 7)


@pytest.fixture(scope="module")
def store(s3_endpoint: str) -> Store:  # noqa: F811
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.create_bucket(Bucket=SCRATCH)
    inside = [f"{PREFIX}{i % 10}/img-{i:05d}.jpg" for i in range(N_OBJECTS - len(SPECIAL_KEYS))] + SPECIAL_KEYS
    bodies = {k: _body(k) for k in inside}
    before = time.time_ns() - 2_000_000_000  # last-modified may be truncated to the second
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1]),
                      [*bodies.items(), *((k, b"outside") for k in OUTSIDE_KEYS),
                       *((k, b"") for k in FOLDER_MARKERS)]))
    after = time.time_ns() + 2_000_000_000
    return Store(s3_endpoint, client, bodies, (before, after))


def _counting_client(endpoint: str) -> tuple[object, list[int]]:
    """A client like S3Source's own, counting ListObjectsV2 requests, to prove the listing paged."""
    client = boto3.client("s3", endpoint_url=endpoint, config=s3source.CLIENT_CONFIG)
    calls: list[int] = []
    client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: calls.append(1))
    return client, calls


def test_lists_every_object_once_in_key_order_across_pages(store: Store) -> None:
    client, calls = _counting_client(store.endpoint)
    # Without a trailing slash the prefix still means the folder, not "photos-old/".
    entries = list(store.source(f"s3://{BUCKET}/photos", client=client, page_size=100).entries())
    assert [e.key for e in entries] == store.keys
    assert len(entries) == N_OBJECTS
    assert len(calls) >= N_OBJECTS // 100
    assert all(e.locator == f"s3://{BUCKET}/{e.key}" for e in entries)
    assert not {e.key for e in entries} & {*OUTSIDE_KEYS, *FOLDER_MARKERS}


def test_whole_bucket_listing_includes_everything_but_markers(store: Store) -> None:
    keys = [e.key for e in store.source(f"s3://{BUCKET}").entries()]
    assert keys == sorted([*store.bodies, *OUTSIDE_KEYS], key=lambda k: k.encode())


def test_resume_after_a_key_gives_exactly_the_remainder(store: Store) -> None:
    keys = store.keys
    source = store.source(page_size=100)
    for cut in (1234, 1999, len(keys) - 2):
        assert [e.key for e in source.entries(start_after=keys[cut])] == keys[cut + 1:]
    assert list(source.entries(start_after=keys[-1])) == []
    # A resume point before the prefix is the whole listing.
    narrow = store.source(f"s3://{BUCKET}/photos/deep/")
    assert [e.key for e in narrow.entries(start_after="a")] == ["photos/deep/a/b/c.jpg"]


def _entry(store: Store, key: str) -> ObjectEntry:
    """The listed entry for ``key``, fetched by resuming just before it rather than listing everything."""
    keys = store.keys
    i = keys.index(key)
    entry = next(store.source(page_size=1).entries(start_after=keys[i - 1] if i else None))
    assert entry.key == key
    return entry


def test_entries_carry_size_etag_and_last_modified(store: Store) -> None:
    lo, hi = store.uploaded_between
    for key in ("photos/with space.jpg", "photos/ünïcode/étude.jpg", store.keys[0], store.keys[500]):
        entry, body = _entry(store, key), store.bodies[key]
        assert entry.size == len(body)
        assert entry.etag == hashlib.md5(body).hexdigest()  # single-part upload: no quotes, plain MD5
        assert isinstance(entry.last_modified_ns, int) and lo <= entry.last_modified_ns <= hi
        head = store.client.head_object(Bucket=BUCKET, Key=key)
        assert entry.last_modified_ns // 1_000_000_000 == int(head["LastModified"].timestamp())
        assert entry.etag == head["ETag"].strip('"')


def test_multipart_etag_is_a_marker_not_an_md5(store: Store) -> None:
    key = "multipart/big.tif"
    parts = [os.urandom(5 * 1024 * 1024), b"tail"]
    upload = store.client.create_multipart_upload(Bucket=SCRATCH, Key=key)
    done = [{"PartNumber": n, "ETag": store.client.upload_part(
        Bucket=SCRATCH, Key=key, UploadId=upload["UploadId"], PartNumber=n, Body=data)["ETag"]}
        for n, data in enumerate(parts, 1)]
    store.client.complete_multipart_upload(Bucket=SCRATCH, Key=key, UploadId=upload["UploadId"],
                                           MultipartUpload={"Parts": done})
    (entry,) = store.source(f"s3://{SCRATCH}/multipart/").entries()
    content = b"".join(parts)
    assert entry.size == len(content)
    assert entry.etag.endswith("-2") and entry.etag != hashlib.md5(content).hexdigest()
    with store.source(f"s3://{SCRATCH}").open(entry) as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(content).digest()


def test_open_small_object_gives_exact_bytes_in_memory(store: Store) -> None:
    source = store.source()
    entry = _entry(store, "photos/plus+sign.tif")
    for handle in (entry, entry.key):
        with source.open(handle) as f:
            assert isinstance(f, io.BytesIO)
            assert f.read() == store.bodies[entry.key]
            f.seek(0)
            assert f.read(4) == store.bodies[entry.key][:4]


def test_open_large_object_spools_in_chunks(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3source, "SPOOL_THRESHOLD", 1024)
    monkeypatch.setattr(s3source, "CHUNK_SIZE", 4096)
    key = "large/scan.tif"
    data = os.urandom(300 * 1024 + 7)
    store.client.put_object(Bucket=SCRATCH, Key=key, Body=data)
    with S3Source(f"s3://{SCRATCH}", endpoint_url=store.endpoint).open(key) as f:
        assert isinstance(f, tempfile.SpooledTemporaryFile)
        # Past the threshold the spool lives on disk: the body was never held whole in memory.
        assert f._rolled
        assert f.tell() == 0
        assert f.read() == data
        f.seek(100)
        assert f.read(10) == data[100:110]


def test_open_at_exactly_the_threshold_stays_in_memory(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3source, "SPOOL_THRESHOLD", 1024)
    key = "large/exact.bin"
    data = os.urandom(1024)
    store.client.put_object(Bucket=SCRATCH, Key=key, Body=data)
    with S3Source(f"s3://{SCRATCH}", endpoint_url=store.endpoint).open(key) as f:
        assert isinstance(f, io.BytesIO) and f.read() == data


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_worker_builds_its_own_client(store: Store) -> None:
    # Scan workers fork from a process that has already listed: sharing its pooled
    # sockets would interleave two processes' requests on one connection.
    source = store.source()
    parent_client = source._s3(None)
    key = store.keys[0]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if source._s3(None) is not parent_client and source.open(key).read() == store.bodies[key]:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert source._s3(None) is parent_client


def test_open_rejects_an_entry_from_another_bucket(store: Store) -> None:
    foreign = ObjectEntry("s3://elsewhere/photos/a.jpg", "photos/a.jpg", 1, "x", 0)
    with pytest.raises(ValueError, match="elsewhere"):
        store.source().open(foreign)


def test_changed() -> None:
    e = ObjectEntry("s3://b/k.jpg", "k.jpg", 10, "abc", 1_700_000_000_000_000_000)
    assert changed(e, None)
    assert not changed(e, (10, 1_700_000_000_000_000_000, "abc"))
    assert changed(e, (11, 1_700_000_000_000_000_000, "abc"))
    assert changed(e, (10, 1_700_000_001_000_000_000, "abc"))
    assert changed(e, (10, 1_700_000_000_000_000_000, "abd"))


def test_missing_bucket_is_a_source_error_naming_it(store: Store) -> None:
    source = store.source("s3://no-such-bucket/photos/")
    with pytest.raises(SourceError) as listing:
        list(source.entries())
    assert "no-such-bucket" in str(listing.value) and "NoSuchBucket" in str(listing.value)
    assert listing.value.code == "NoSuchBucket" and listing.value.bucket == "no-such-bucket"
    with pytest.raises(SourceError, match="no-such-bucket/photos/a.jpg") as reading:
        source.open("photos/a.jpg")
    assert reading.value.code == "NoSuchBucket"


def test_missing_key_is_a_source_error_naming_it(store: Store) -> None:
    with pytest.raises(SourceError) as caught:
        store.source().open("photos/not-there.jpg")
    message = str(caught.value)
    assert f"s3://{BUCKET}/photos/not-there.jpg" in message and "NoSuchKey" in message
    assert caught.value.key == "photos/not-there.jpg"
    # The botocore exception is not chained in: callers print the message, not a traceback.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_unreachable_endpoint_fails_fast_and_clearly(s3_endpoint: str) -> None:  # noqa: F811
    """Uses the fixture only for its fake credentials; the endpoint here is a closed port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    source = S3Source(f"s3://{BUCKET}/{PREFIX}", endpoint_url=f"http://127.0.0.1:{closed_port}")
    started = time.monotonic()
    with pytest.raises(SourceError) as listing:
        list(source.entries())
    with pytest.raises(SourceError) as reading:
        source.open("photos/a.jpg")
    assert time.monotonic() - started < 15
    for caught in (listing, reading):
        assert caught.value.code == "EndpointUnreachable"
        assert BUCKET in str(caught.value) and f"127.0.0.1:{closed_port}" in str(caught.value)
    assert "photos/a.jpg" in str(reading.value)


def test_refusals_read_as_reasons() -> None:
    # moto does not enforce permissions, so this refusal is built as botocore would raise it.
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")
    err = S3Source(f"s3://{BUCKET}/{PREFIX}")._error(denied, "photos/a.jpg", "read")
    assert str(err).startswith(f"cannot read s3://{BUCKET}/photos/a.jpg: AccessDenied: access denied")
    assert err.code == "AccessDenied"


@pytest.mark.parametrize("page, why", [
    ({"Contents": [{"Key": "p/b.jpg"}, {"Key": "p/a.jpg"}], "IsTruncated": False}, "out of key order"),
    ({"Contents": [{"Key": "p/a.jpg"}], "IsTruncated": True}, "no new continuation token"),
])
def test_a_listing_that_cannot_be_resumed_safely_is_refused(page: dict, why: str) -> None:
    # No S3 server misbehaves on demand, so the store's answer is stubbed inside botocore.
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    listed = {"Key": "", "Size": 1, "ETag": '"e"', "LastModified": datetime(2024, 1, 1, tzinfo=timezone.utc)}
    page = dict(page, Contents=[dict(listed, **c) for c in page["Contents"]])
    with Stubber(client) as stub:
        stub.add_response("list_objects_v2", page)
        with pytest.raises(SourceError, match=why) as caught:
            list(S3Source("s3://bkt/p/", client=client).entries())
    assert caught.value.code == "BadListing" and "s3://bkt/p/" in str(caught.value)


def test_source_error_survives_pickling() -> None:
    # Scan workers are processes: an error crossing back must keep its fields.
    err = pickle.loads(pickle.dumps(SourceError("cannot read s3://b/k: NoSuchKey: gone", "b", "k", "NoSuchKey")))
    assert (str(err), err.bucket, err.key, err.code) == ("cannot read s3://b/k: NoSuchKey: gone", "b", "k", "NoSuchKey")


@pytest.mark.parametrize("url, bucket, prefix, root", [
    ("s3://b", "b", "", "s3://b"),
    ("s3://b/", "b", "", "s3://b"),
    ("s3://b/photos", "b", "photos/", "s3://b/photos"),
    ("s3://b/photos/", "b", "photos/", "s3://b/photos"),
    ("s3://b/photos/1990s/", "b", "photos/1990s/", "s3://b/photos/1990s"),
])
def test_url_parsing(url: str, bucket: str, prefix: str, root: str) -> None:
    source = S3Source(url)
    assert (source.bucket, source.prefix, source.root) == (bucket, prefix, root)


@pytest.mark.parametrize("url", ["http://b/photos", "s3://", "s3:///photos", "/data/photos"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        S3Source(url)


def test_last_modified_nanoseconds_are_exact() -> None:
    when = datetime(2024, 5, 17, 10, 30, 15, 123456, tzinfo=timezone.utc)
    assert s3source._ns(when) == calendar.timegm(when.utctimetuple()) * 1_000_000_000 + 123_456_000
