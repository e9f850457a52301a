"""Quality that follows the network: the rule on its own, and `codec play --quality auto` through a
bandwidth-limited proxy on 127.0.0.1 in front of a real `codec serve`."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from conftest import Server, run_cli
from throttle import ThrottledProxy

from aecodec.client.abr import HOLD, Abr, Playback, parse_bitrate
from aecodec.client.player import play, start_frame
from aecodec.v1 import codec_pb2, codec_pb2_grpc
from codec.errors import CodecError
from codec.io.bundle import load_bundle

RATES = {0: 100e3, 1: 200e3, 2: 400e3}


def _gops(abr: Abr, rate: float, count: int) -> list[int]:
    """The levels chosen after ``count`` GOPs of 100 kbit each arriving at ``rate`` bits/s."""
    levels = []
    for _ in range(count):
        abr.sample(100e3, 100e3 / rate)
        levels.append(abr.choose())
    return levels


def test_the_rule_steps_down_at_once_and_up_one_level_at_a_time() -> None:
    abr = Abr.for_ladder(RATES, preferred=1, cap=None)
    assert abr.level == 1
    ups = _gops(abr, 10e6, 2 * HOLD)
    assert ups == [1] * (HOLD - 1) + [2] * (HOLD + 1)  # up after holding, then no higher level exists
    assert _gops(abr, 150e3, 1) == [0]  # a slow GOP: down at once, past level 1 (needs 200k > 0.9 x 150k)
    assert _gops(abr, 300e3, 4) == [0, 1, 1, 1]  # after holding, 200k <= 0.7 x 300k: up; 400k is not
    # Hysteresis: at 250 kbit/s level 1 (0.8 of it) neither goes up nor down, GOP after GOP.
    assert set(_gops(abr, 250e3, 6)) == {1}


def test_the_cap_and_an_empty_ladder() -> None:
    assert Abr.for_ladder(RATES, preferred=2, cap=250e3).level == 1
    capped = Abr.for_ladder(RATES, preferred=2, cap=250e3)
    assert set(_gops(capped, 1e9, 8)) == {1}
    assert Abr.for_ladder(RATES, preferred=2, cap=10.0).rates == {0: 100e3}  # nothing fits: the lowest only


def test_playback_counts_stalls_against_a_clock() -> None:
    clock = Playback(fps=10.0)
    for frame, at in enumerate([0.0, 0.1, 0.15, 0.5, 0.6]):
        clock.ready(frame, at)
    assert clock.stalls == 1 and clock.longest == pytest.approx(0.2)


def test_bad_bitrates_and_starts_are_one_line_errors(models: Path, tmp_path: Path) -> None:
    assert parse_bitrate("500k") == 500e3 and parse_bitrate("2.5M") == 2.5e6 and parse_bitrate("1000") == 1000
    for bad in ("", "k", "-5k", "nan", "inf", "5x"):
        with pytest.raises(CodecError):
            parse_bitrate(bad)
    assert start_frame("300", 25.0, "x") == 300 and start_frame("2.5", 25.0, "x") == 62
    assert start_frame("4s", 25.0, "x") == 100
    for bad in ("-1", "1e999", "soon", "nans"):
        with pytest.raises(CodecError):
            start_frame(bad, 25.0, "x")
    srv = Server(models)
    try:
        for args in (["--quality", "best"], ["--quality", "2", "--max-bitrate", "1M"], ["--max-bitrate", "fast"]):
            code, _, err = run_cli("play", srv.url(), "-o", tmp_path / "o.mkv", *args)
            assert code == 2 and len(err.strip().splitlines()) == 1, err
        code, _, err = run_cli("play", srv.url(), "-o", tmp_path / "o.mkv", "--start", "5s")
        assert code == 2 and "not within" in err
    finally:
        srv.stop()


def _ladder(port: int) -> tuple[dict[int, float], codec_pb2.Video]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        video = codec_pb2_grpc.VideoCodecStub(channel).ListVideos(codec_pb2.ListVideosRequest(), timeout=10).videos[0]
    rates = {r.quality: r.bytes * 8 * video.fps / video.frames for r in video.ladder}
    return rates, video


def test_auto_quality_follows_a_network_that_drops_and_recovers(ladder_models: Path, tmp_path: Path) -> None:
    srv = Server(ladder_models, "--prepare")
    try:
        rates, video = _ladder(srv.port)
        assert all(rates.values()) and sorted(rates.values()) == list(rates.values())  # stored, rising
        bundle = load_bundle(ladder_models / "long")
        top, low = len(bundle.meta.coding.quality_steps) - 1, min(rates)  # the top latent level; refined ones follow
        assert rates[top] > 1.6 * rates[low] and rates[max(rates)] > rates[top]
        gop_bytes = rates[top] / 8 * video.gop / video.fps
        decoder = bundle.shipped_bytes
        # Unlimited for the decoder and the first 6 GOPs' worth, then 1.25x what the lowest level
        # needs for 3 GOPs' worth at the top latent level, then unlimited again.
        drop, recover = decoder + 6 * gop_bytes, decoder + 9 * gop_bytes
        slow = 1.25 * rates[low] / 8

        def rate(sent: int) -> float:
            return slow if drop <= sent < recover else 50e6

        proxy = ThrottledProxy(srv.port, rate)
        try:
            url = f"grpc://127.0.0.1:{proxy.port}/long"
            result = play(url, tmp_path / "auto.mkv", quality="auto", cache=tmp_path / "decoders")
        finally:
            proxy.close()
        switches = result["levels"]["switches"]
        downs = [s for s in switches if s[2] < s[1]]
        assert downs, (result["levels"], rates)
        assert any(s[2] > s[1] for s in switches if s[0] > downs[0][0]), result  # and back up
        assert result["frames"] == video.frames and result["resumes"] == 0  # every check held
        assert result["longest_stall_s"] <= video.gop / video.fps, result
        # --max-bitrate caps it, on an open network.
        cap = str(int(rates[1] * 1.01))
        code, out, err = run_cli("play", srv.url("long"), "-o", tmp_path / "cap.mkv", "--max-bitrate", cap, "--json")
        capped = json.loads(out)
        assert code == 0 and capped["quality"] == "auto", err
        assert capped["levels"]["start"] <= 1 and all(s[2] <= 1 for s in capped["levels"]["switches"]), capped
        # --start in seconds, from the GOP's I-frame: the frames after it are the unbroken stream's.
        code, out, err = run_cli("play", srv.url("long"), "-o", tmp_path / "s.mkv", "--start", "1.5s", "--json")
        assert code == 0 and json.loads(out)["start_frame"] == 37 and 0 <= json.loads(out)["lead_in_frames"] <= 5, err
    finally:
        srv.stop()
