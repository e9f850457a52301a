"""The frame cache: keyed by the source's bytes, rebuilt when damaged, listed and cleared by
``codec cache``, and refused up front where the disk cannot hold it."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from clips import synthetic_frames, write_clip
from conftest import run_cli

from codec.errors import CodecError
from codec.io.files import sha256_file
from codec.io.frame_store import (
    LAYOUT,
    FrameStore,
    cache_entries,
    cached,
    check_disk,
    clear_cache,
    frames_dir,
    open_store,
)
from codec.io.video import iter_frames, probe, read_clip


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
    asked = []  # a call the reaper cancels while the frames before its start are decoded stops there
    assert list(decoded.frames_from(20, 24, active=lambda: asked.append(1) or len(asked) < 3)) == []
    assert len(asked) == 3


FRAME_BYTES = 48 * 32 * 3  # the test clip's


def _matches(store: FrameStore, clip: Path) -> bool:
    """Whether ``store`` holds the frames decoding ``clip`` gives."""
    return all((a == b).all() for a, b in zip(store, iter_frames(clip), strict=True))


def _sidecar(digest: str, frames: str = "9") -> bytes:
    """The test clip's sidecar as the cache writes it, with ``frames`` as the JSON of its frame count."""
    meta = {"layout": LAYOUT, "sha256": digest, "source": "clip.mkv", "width": 48, "height": 32, "frames": 0}
    return json.dumps(meta).replace('"frames": 0', f'"frames": {frames}').encode()


@pytest.mark.parametrize("planted", [".rgb-partial", ".rgb", ".json"])
def test_a_link_planted_in_the_cache_is_neither_written_through_nor_read(
    cache: Path, clip: Path, tmp_path: Path, planted: str
) -> None:
    digest, folder, victim = sha256_file(clip), cache / "frames", tmp_path / "victim"
    folder.mkdir(parents=True)
    # .rgb, .json: a whole entry of wrong frames (zeros), the planted file a link to ours that holds what
    # it would; .rgb-partial: the link alone, where the decode used to write
    files = {} if planted == ".rgb-partial" else {".rgb": bytes(9 * FRAME_BYTES), ".json": _sidecar(digest)}
    victim.write_bytes(before := files.pop(planted, b"precious"))
    for suffix, data in files.items():
        (folder / f"{digest}{suffix}").write_bytes(data)
    (folder / f"{digest}{planted}").symlink_to(victim)
    store = open_store(clip)
    assert victim.read_bytes() == before and _matches(store, clip) and not store.path.is_symlink()
    regular = sum(p.lstat().st_size for p in folder.iterdir() if not p.is_symlink())
    assert clear_cache() == regular and not any(folder.iterdir()) and victim.read_bytes() == before


def test_clearing_the_cache_removes_a_link_not_its_target(cache: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"\x07" * (3 << 20))
    (cache / "frames").mkdir(parents=True)
    (cache / "frames" / "planted.rgb").symlink_to(victim)
    code, out, _ = run_cli("cache", "--clear")
    assert code == 0 and "0 MiB freed" in out and victim.read_bytes() == b"\x07" * (3 << 20)
    assert not any((cache / "frames").iterdir())


def test_a_lock_that_is_a_link_is_refused_and_its_target_untouched(cache: Path, clip: Path, tmp_path: Path) -> None:
    victim, lock = tmp_path / "victim", cache / "frames" / f"{sha256_file(clip)}.lock"
    victim.write_bytes(b"precious")
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    with pytest.raises(CodecError, match="link") as refused:
        open_store(clip)
    assert str(lock) in str(refused.value) and len(str(refused.value).splitlines()) == 1
    assert victim.read_bytes() == b"precious"
    lock.unlink()
    assert _matches(open_store(clip), clip)


DAMAGED = {
    "a list": lambda digest: b"[]",
    "an infinite frame count": lambda digest: _sidecar(digest, "1e400"),
    "100,000 nested lists": lambda digest: b"[" * 100_000,
    "nested too deep to parse within 64 KiB": lambda digest: b"[" * 50_000,
    "a whole sidecar over 64 KiB": lambda digest: _sidecar(digest) + b" " * (64 << 10),
}


@pytest.mark.parametrize("damaged", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_sidecar_is_an_absent_entry(cache: Path, clip: Path, damaged: Callable[[str], bytes]) -> None:
    digest, folder = sha256_file(clip), cache / "frames"
    folder.mkdir(parents=True)
    (folder / f"{digest}.rgb").write_bytes(bytes(9 * FRAME_BYTES))  # the right size, beside it
    (folder / f"{digest}.json").write_bytes(damaged(digest))
    assert cached(probe(clip), digest) is None
    code, out, _ = run_cli("cache", "--json")
    assert code == 0 and json.loads(out)["entries"] == []
    assert _matches(open_store(clip), clip) and len(cache_entries()) == 1
