"""The frame cache: keyed by the source's bytes, rebuilt when damaged, listed and cleared by
``codec cache``, and refused up front where the disk cannot hold it."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from clips import synthetic_frames, write_clip
from conftest import run_cli

from codec.errors import CodecError
from codec.io.frame_store import cache_entries, check_disk, frames_dir, open_store
from codec.io.video import probe, read_clip


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AECODEC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("store") / "clip.mkv", synthetic_frames(9, 48, 32), codec="ffv1")


def test_a_renamed_copy_hits_and_a_damaged_entry_is_decoded_again(cache: Path, clip: Path, tmp_path: Path) -> None:
    store = open_store(clip)
    assert frames_dir() == cache / "frames" and len(store) == 9
    assert all((a == b).all() for a, b in zip(store, read_clip(clip).frames, strict=True))
    copy = shutil.copy(clip, tmp_path / "renamed.mkv")
    assert open_store(copy).path == store.path and len(cache_entries()) == 1
    with open(store.path, "r+b") as f:  # a crash, or a full disk, cut the file short
        f.truncate(5 * 48 * 32 * 3)
    again = open_store(clip)
    assert len(again) == 9 and again.path.stat().st_size == 9 * 48 * 32 * 3
    (cache / "frames" / f"{again.path.stem}.json").write_text("{not json")
    assert len(open_store(clip)) == 9


def test_codec_cache_lists_and_clears(cache: Path, clip: Path) -> None:
    open_store(clip)
    code, out, _ = run_cli("cache", "--json")
    listed = json.loads(out)
    assert code == 0 and listed["folder"] == str(cache / "frames")
    assert [(e["source"], e["frames"], e["bytes"]) for e in listed["entries"]] == [("clip.mkv", 9, 9 * 48 * 32 * 3)]
    code, out, _ = run_cli("cache")
    assert code == 0 and "clip.mkv  48x32  9 frames" in out and "1 videos" in out
    code, out, _ = run_cli("cache", "--clear")
    assert code == 0 and "deleted" in out and cache_entries() == []


def test_a_decode_the_disk_cannot_hold_is_refused_before_it_starts(cache: Path, clip: Path) -> None:
    cache.mkdir()
    film = dataclasses.replace(probe(clip), declared_frames=10**12)  # what a hostile container may declare
    with pytest.raises(CodecError, match=r"decoded frames need .* GiB .* free"):
        check_disk(film, cache)


def test_a_cache_that_cannot_be_made_is_one_line(tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("AECODEC_CACHE", str(blocker))
    code, _, err = run_cli("train", clip, "-o", tmp_path / "m", "--steps", "1", "--quiet")
    assert code == 2 and err.startswith("error:") and "AECODEC_CACHE" in err and len(err.splitlines()) == 1


def test_a_served_stream_starts_from_the_cache_with_the_frames_decoding_gives(models: Path) -> None:
    from aecodec.server.catalog import load_catalog

    entry = load_catalog(models)["short"]  # trained here, so the cache holds its frames
    assert entry.store is not None and len(entry.store) == 24
    decoded = dataclasses.replace(entry, store=None)  # as a server with an empty cache streams
    for start, end in ((0, 3), (17, 24)):
        cached, fresh = list(entry.frames_from(start, end)), list(decoded.frames_from(start, end))
        assert len(cached) == end - start and all((a == b).all() for a, b in zip(cached, fresh, strict=True))
