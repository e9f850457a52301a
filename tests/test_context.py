"""The P-frames' temporal contexts: integer buckets, tables fitted on the video, exact round trips."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from codec.coding.common.bitstream import I_FRAME, P_FRAME
from codec.coding.common.context import CONTEXTS, INTRA_PASSES, NEIGHBOUR_LIMIT, PREDICTED_PASSES, context_buckets
from codec.coding.common.entropy_coding import MAX_MAGNITUDE_BITS, CodingTables, SymbolRangeEncoder
from codec.coding.common.intra_refinement import join_intra
from codec.coding.common.latent_codec import LatentPacker, LatentUnpacker, _Models
from codec.errors import CodecError

PRIOR = {"intra_loc": [0.0, 0.0], "intra_scale": [4.0, 4.0], "inter_scale": [1.5, 1.5]}
GOP = 10


def test_buckets_sum_the_neighbourhood_of_the_previous_residual() -> None:
    residual = np.zeros((1, 3, 4), np.int64)
    residual[0, 0, 0] = -1
    residual[0, 2, 3] = 20
    buckets = context_buckets(residual)
    # activity 1 near the corner (bucket 1), 20 near the other (bucket 7), nothing between (bucket 0)
    assert buckets.tolist() == [[[1, 1, 0, 0], [1, 1, 7, 7], [0, 0, 7, 7]]]


def _video(rng: np.random.Generator) -> np.ndarray:
    """Integer latents (T, 2, 8, 8) whose left half stands still and right half keeps moving."""
    q = np.zeros((30, 2, 8, 8), np.int64)
    for t in range(1, len(q)):
        q[t] = q[t - 1]
        q[t, :, :, 4:] += rng.integers(-6, 7, (2, 8, 4))
    return q


def test_context_tables_fitted_on_the_video_code_it_smaller_and_exactly() -> None:
    q = _video(np.random.default_rng(1))
    fitted = CodingTables.build(PRIOR, [1.0], q.astype(np.float64), GOP)
    plain = CodingTables.build(PRIOR, [1.0])
    assert len(set(fitted.levels[0].inter_table[0])) > 1  # still and moving parts got different tables
    sizes = {}
    for name, tables in (("plain", plain), ("fitted", fitted)):
        packer, unpacker = LatentPacker(tables, 0), LatentUnpacker(tables, 0, q.shape[1:])
        chunks = [packer.pack(f, t, I_FRAME if t % GOP == 0 else P_FRAME, 0) for t, f in enumerate(q)]
        assert all(np.array_equal(unpacker.unpack(c), f) for c, f in zip(chunks, q, strict=True))
        sizes[name] = sum(len(c.payload) for c in chunks)
    assert sizes["fitted"] < 0.9 * sizes["plain"]


@pytest.mark.parametrize("key", ["inter_table", "intra_pass_table"])
def test_entropy_json_without_a_table_per_bucket_is_refused(key: str) -> None:
    tables = CodingTables.build(PRIOR, [1.0]).to_json()
    tables["levels"][0][key][1] = tables["levels"][0][key][1][:-1]
    expected = f"does not give {CONTEXTS} P tables and {PREDICTED_PASSES} x {CONTEXTS} I-frame pass tables"
    with pytest.raises(CodecError, match=expected):
        CodingTables.from_json(json.loads(json.dumps(tables)), "entropy.json")


@pytest.mark.parametrize("number", [-1, 96, 10**12])
def test_entropy_json_with_a_table_number_off_the_grid_is_refused(number: int) -> None:
    """Table numbers key a frame's blocks (and a count per number): one off the grid is refused
    before anything is allocated for it."""
    raw = CodingTables.build(PRIOR, [1.0]).to_json()
    first = raw["levels"][0]["intra_table"][0]
    raw["tables"][str(number)] = raw["tables"][str(first)]
    raw["levels"][0]["intra_table"][0] = number
    with pytest.raises(CodecError, match=f"table number {number} is not one of the grid's 0..95"):
        CodingTables.from_json(json.loads(json.dumps(raw)), "entropy.json")


def test_i_frames_round_trip_with_adversarial_anchors() -> None:
    """The even checkerboard half (the first four passes) at the coder's extremes, of alternating
    sign, beside the other half at the opposite extreme: every bucket and the largest predictions in
    use; the latent comes back exactly, and a value whose difference from its prediction leaves the
    coder's range is one CodecError."""
    tables = CodingTables.build(PRIOR, [1.0])
    shape = (len(PRIOR["intra_scale"]), 9, 11)
    centre = np.asarray(tables.levels[0].intra_centre)[:, None, None]
    big = (1 << MAX_MAGNITUDE_BITS) - NEIGHBOUR_LIMIT - 1
    yy, xx = np.mgrid[0:9, 0:11]
    anchor = (yy + xx) % 2 == 0
    sign = np.where((yy // 2 + xx) % 3 == 0, 1, -1)
    q = centre + np.where(anchor, sign * big, -sign * big)[None].repeat(shape[0], 0)
    q[:, 4, 5] = centre[:, 0, 0] + np.arange(shape[0]) - 1  # small values among the giants
    packer, unpacker = LatentPacker(tables, 0), LatentUnpacker(tables, 0, shape)
    assert np.array_equal(unpacker.unpack(packer.pack(q, 0, I_FRAME, 0)), q)
    q[0, 0, 0] = q[0, 0, 2] = q[0, 1, 1] = centre[0, 0, 0] + big  # (0, 1)'s three neighbours: predicted 1024
    q[0, 0, 1] = centre[0, 0, 0] - (1 << MAX_MAGNITUDE_BITS) + 1  # within range, but not once predicted
    with pytest.raises(CodecError, match="out of the coder's range"):
        LatentPacker(tables, 0).pack(q, 0, I_FRAME, 0)


def test_a_bundle_without_pass_tables_codes_i_frames_whole() -> None:
    """entropy.json without pass tables (written before format 6): each channel whole under its own
    table (no prediction under tables never fitted to it), one block per table, the smallest table
    first, and the latent comes back exactly."""
    prior = {"intra_loc": [0.0, 0.0, 0.0], "intra_scale": [8.0, 2.0, 8.0], "inter_scale": [1.5, 1.5, 1.5]}
    raw = CodingTables.build(prior, [1.0]).to_json()
    del raw["levels"][0]["intra_pass_table"]
    tables = CodingTables.from_json(json.loads(json.dumps(raw)), "entropy.json")
    level = tables.levels[0]
    assert level.intra_pass_table is None and level.intra_table[1] < level.intra_table[0] == level.intra_table[2]
    q = np.random.default_rng(3).integers(-9, 10, (3, 5, 7))
    chunk = LatentPacker(tables, 0).pack(q, 0, I_FRAME, 0)
    coder = SymbolRangeEncoder()
    models = _Models(tables)
    centred = q - np.asarray(level.intra_centre)[:, None, None]
    coder.encode_block(centred[1], *models.get(level.intra_table[1]))
    coder.encode_block(centred[[0, 2]], *models.get(level.intra_table[0]))
    assert chunk.payload == join_intra(coder.finish(), b"")
    assert np.array_equal(LatentUnpacker(tables, 0, q.shape).unpack(chunk), q)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 7), (6, 1), (9, 11), (16, 16)])
def test_the_passes_cover_the_latent_once_and_read_only_earlier_passes(h: int, w: int) -> None:
    """Every element is in exactly one pass, and every neighbour a pass predicts from lies in an
    earlier pass (or outside the frame): what lets the decoder rebuild the passes in order."""
    order = np.full((1, h, w), -1)
    for k, intra_pass in enumerate(INTRA_PASSES):
        assert (intra_pass.take(order) == -1).all()
        intra_pass.put(order, np.full((1, intra_pass.size(h, w)), k))
    assert (order >= 0).all()
    for k, intra_pass in enumerate(INTRA_PASSES[1:], 1):
        padded = np.pad(order[0], 2, constant_values=-1)
        for dy, dx in intra_pass.offsets:
            near = intra_pass.take(padded[None, 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w])
            assert (near < k).all()


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 1, 7), (3, 5, 1), (3, 9, 11), (3, 17, 40)])
def test_i_and_p_frames_round_trip_under_fitted_tables(shape: tuple[int, int, int]) -> None:
    """Latents of any size, I- and P-frames, under tables fitted on them: exactly back."""
    rng = np.random.default_rng(0)
    prior = {"intra_loc": [0.0] * 3, "intra_scale": [4.0] * 3, "inter_scale": [1.5] * 3}
    latents = rng.normal(0, 6, (12, *shape)).cumsum(-1)
    tables = CodingTables.build(prior, [1.0, 2.0], latents, 4)
    assert len(set(tables.levels[0].intra_pass_table[0])) > 1 or shape[1] * shape[2] < 16
    for quality in (0, 1):
        packer, unpacker = LatentPacker(tables, quality), LatentUnpacker(tables, quality, shape)
        for t, q in enumerate(np.rint(latents / tables.levels[quality].step).astype(np.int64)):
            chunk = packer.pack(q, t, I_FRAME if t % 4 == 0 else P_FRAME, 0)
            assert chunk.index == t and np.array_equal(unpacker.unpack(chunk), q)


def test_format_md_names_the_passes_the_code_codes() -> None:
    """docs/format.md's table of the I-frame's passes lists each pass's positions as INTRA_PASSES does."""
    text = (Path(__file__).parents[1] / "docs" / "format.md").read_text()
    rows = re.findall(r"^\| (\d) \| ([^|]+) \|", text, re.MULTILINE)
    assert [int(k) for k, _ in rows] == list(range(len(INTRA_PASSES)))
    for (_, cells), intra_pass in zip(rows, INTRA_PASSES, strict=True):
        named = {(int(y), int(x)) for y, x in re.findall(r"\((\d), (\d)\)", cells)}
        if cells.strip() == "the eight with y + x odd":
            named = {(y, x) for y in range(4) for x in range(4) if (y + x) % 2}
        assert named == set(intra_pass.phases)
