"""Compiled kernels, each beside its numpy reference twin (dav1d's checkasm is the model).

Every hot loop of the decoder and encoder has two implementations with one signature: the numpy
code in :mod:`codec.coding.kernels.reference`, which is the specification and stays in the tree,
and a compiled one in :mod:`codec.coding.kernels.compiled` (numba, nopython, releasing the GIL),
which must give exactly the reference's integers: ``tests/test_kernels.py`` checks every pair on
random, edge and real inputs, and ``python benchmarks/kernels.py`` prints each one's speed-up.

Which runs is chosen once per process: the compiled kernels, unless ``AECODEC_KERNELS=reference``
(for measuring, and for a machine where numba is missing or misbehaves). numba caches compiled
kernels in the first place it can write: ``NUMBA_CACHE_DIR`` if set, the ``__pycache__`` beside
compiled.py, the user's cache folder; a cache pre-built beside the source (a container image's) is
read even where nothing is writable (:mod:`.cache`). Decoders and encoders call :func:`warm`
before their first frame, so that no frame waits for a compiler.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from types import ModuleType

import numpy as np

from codec.errors import CodecError

CHOICES = ("compiled", "reference")
NAMES = (
    "to_pixels",
    "add_residual",
    "predict_frame",
    "from_medians",
    "intra_context",
    "luma_planes",
    "luma_sads",
    "forward_residual",
    "coarse_best",
    "luma_sums",
)  # every kernel, as both modules name it


def _chosen() -> ModuleType:
    choice = os.environ.get("AECODEC_KERNELS", "compiled")
    if choice not in CHOICES:
        raise CodecError(f"AECODEC_KERNELS must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "reference":
        from codec.coding.kernels import reference

        return reference
    from codec.coding.kernels import cache, compiled

    cache.read_prebuilt(compiled)  # a cache pre-built beside the source loads where it is read-only
    return compiled


_module = _chosen()
to_pixels: Callable = _module.to_pixels
add_residual: Callable = _module.add_residual
predict_frame: Callable = _module.predict_frame
from_medians: Callable = _module.from_medians
intra_context: Callable = _module.intra_context
luma_planes: Callable = _module.luma_planes
luma_sads: Callable = _module.luma_sads
forward_residual: Callable = _module.forward_residual
coarse_best: Callable = _module.coarse_best
luma_sums: Callable = _module.luma_sums


@functools.cache
def warm() -> None:
    """Compile every kernel now (or load it from numba's cache: milliseconds), on tiny inputs of
    the types real calls pass, so that no frame of a playback or a live encode waits for it; once
    per process."""
    to_pixels(np.zeros((1, 3, 2, 2), np.float32), 1, 1)
    add_residual(np.zeros((4, 4, 3), np.uint8), np.zeros(1, np.int64), np.zeros((1, 3, 4, 4), np.int32), (0, 0, 0))
    origin = np.zeros(1, np.int64)
    predict_frame(np.zeros((4, 4, 3), np.uint8), np.zeros((1, 1, 2), np.int32), 4, 4)
    from_medians(np.zeros((1, 2), np.int64), 1, 1)
    intra_context(np.zeros((1, 2, 2), np.int64), 2, ((1, 1),), ((-1, -1),), 1, np.zeros(2, np.int64))
    planes = luma_planes(np.zeros((8, 8, 3), np.uint8))
    luma_sads(planes, np.zeros((1, 1), np.int16), origin, origin, origin, origin, origin, 1)
    forward_residual(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), (0, 0, 0))
    coarse_best(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), np.zeros((1, 1)), 1, 1)
    luma_sums(np.zeros((1, 1, 3), np.uint8), 1)
