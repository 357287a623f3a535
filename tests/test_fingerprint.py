"""Content fingerprints of data files (unetgan_core.data.fingerprint): keys follow bytes, not folders or mtimes."""

from __future__ import annotations

import hashlib
import os

import pytest

from unetgan_core.data import fingerprint
from unetgan_core.data.fingerprint import file_digest, file_fingerprint
from unetgan_core.errors import DataError


def test_names_are_relative_to_the_root_and_the_digest_is_the_content_hash(tmp_path):
    root = tmp_path / "data"
    (root / "p1").mkdir(parents=True)
    inside = root / "p1" / "image.dcm"
    inside.write_bytes(b"pixels")
    outside = tmp_path / "other.csv"
    outside.write_bytes(b"a,b\n")
    (got_in, got_out) = file_fingerprint([inside, outside], root, tmp_path / "cache")
    assert got_in == ["p1/image.dcm", 6, hashlib.sha256(b"pixels").hexdigest()]
    assert got_out == [str(outside), 4, hashlib.sha256(b"a,b\n").hexdigest()]
    # A sibling folder whose name starts like the root's is not inside it.
    twin = tmp_path / "data2" / "x"
    twin.parent.mkdir()
    twin.write_bytes(b"")
    assert file_fingerprint([twin], root, tmp_path / "cache")[0][0] == str(twin)


def test_each_file_version_is_hashed_once_and_a_damaged_memo_is_hashed_again(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 3_000_000)
    cache = tmp_path / "cache"
    calls = []
    real = fingerprint._hash_file
    monkeypatch.setattr(fingerprint, "_hash_file", lambda p: calls.append(p) or real(p))
    first = file_digest(path, cache)
    assert first == hashlib.sha256(b"x" * 3_000_000).hexdigest() and len(calls) == 1
    fingerprint._seen.clear()  # a new process: the on-disk memo answers
    assert file_digest(path, cache) == first and len(calls) == 1
    (memo,) = (cache / "digests").iterdir()
    memo.write_text("not a digest")
    fingerprint._seen.clear()
    assert file_digest(path, cache) == first and len(calls) == 2
    # New content (even with the same size): a new version, hashed again.
    path.write_bytes(b"y" * 3_000_000)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert file_digest(path, cache) == hashlib.sha256(b"y" * 3_000_000).hexdigest() and len(calls) == 3


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="gone.dcm: file is missing or unreadable"):
        file_fingerprint([tmp_path / "gone.dcm"], tmp_path, tmp_path / "cache")


def test_reading_only_writes_no_memo(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    cache = tmp_path / "cache"
    fingerprint._seen.clear()
    assert file_fingerprint([path], tmp_path, cache, remember=False)[0][2] == hashlib.sha256(b"abc").hexdigest()
    assert not cache.exists()  # planning and validate write nothing
    fingerprint._seen.clear()
    file_fingerprint([path], tmp_path, cache)
    assert len(list((cache / "digests").iterdir())) == 1
