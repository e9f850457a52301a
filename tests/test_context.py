"""The P-frames' temporal contexts: integer buckets, tables fitted on the video, exact round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from codec.coding.bitstream import I_FRAME, P_FRAME
from codec.coding.context import CONTEXTS, NEIGHBOUR_LIMIT, context_buckets
from codec.coding.entropy_coding import MAX_MAGNITUDE_BITS, CodingTables, SymbolRangeEncoder
from codec.coding.latent_codec import LatentPacker, LatentUnpacker, _Models
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


@pytest.mark.parametrize("key", ["inter_table", "intra_context_table"])
def test_entropy_json_without_a_table_per_bucket_is_refused(key: str) -> None:
    tables = CodingTables.build(PRIOR, [1.0]).to_json()
    tables["levels"][0][key][1] = tables["levels"][0][key][1][:-1]
    with pytest.raises(CodecError, match=f"does not give {CONTEXTS} P tables and {CONTEXTS} I-frame context tables"):
        CodingTables.from_json(json.loads(json.dumps(tables)), "entropy.json")


def test_i_frames_round_trip_with_adversarial_anchors() -> None:
    """Anchors at the coder's extremes, of alternating sign, beside non-anchors at the opposite
    extreme: every bucket and the largest predictions in use; the latent comes back exactly, and a
    value whose difference from its prediction leaves the coder's range is one CodecError."""
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
    q[0, 0, 0] = q[0, 0, 2] = q[0, 1, 1] = centre[0, 0, 0] + big  # frame (0, 1)'s neighbours: predicted 768
    q[0, 0, 1] = centre[0, 0, 0] - (1 << MAX_MAGNITUDE_BITS) + 1  # within range, but not once predicted
    with pytest.raises(CodecError, match="out of the coder's range"):
        LatentPacker(tables, 0).pack(q, 0, I_FRAME, 0)


def test_a_bundle_without_spatial_tables_codes_i_frames_whole() -> None:
    """entropy.json from before the spatial contexts: each channel whole under its own table (no
    prediction under tables never fitted to it), and the latent comes back exactly."""
    raw = CodingTables.build(PRIOR, [1.0]).to_json()
    del raw["levels"][0]["intra_context_table"]
    tables = CodingTables.from_json(json.loads(json.dumps(raw)), "entropy.json")
    assert tables.levels[0].intra_context_table is None
    q = np.random.default_rng(3).integers(-9, 10, (2, 5, 7))
    chunk = LatentPacker(tables, 0).pack(q, 0, I_FRAME, 0)
    coder = SymbolRangeEncoder()
    models = _Models(tables)
    for c, table in enumerate(tables.levels[0].intra_table):
        coder.encode_block(q[c] - tables.levels[0].intra_centre[c], *models.get(table))
    assert chunk.payload == coder.finish()
    assert np.array_equal(LatentUnpacker(tables, 0, q.shape).unpack(chunk), q)
