"""A video's colour description, and the one RGB <-> YUV conversion every module goes through.

A stream says which matrix turns its YUV into RGB, whether its YUV is limited ("tv") or full ("pc")
range, and which primaries and transfer curve its RGB has. FFmpeg (and so PyAV) gives these as the
code points of ITU-T H.273; here they become names, like ffprobe's. The matrix and range drive the
conversions; primaries and transfer are only carried from source to output tags (no gamut or
transfer conversion is done).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import av
import numpy as np

from codec.errors import CodecError


class Matrix(NamedTuple):
    kr: float  # luma weight of red
    kb: float  # luma weight of blue
    swscale: str  # the name libswscale (PyAV's Colorspace) knows it by
    code: int  # its H.273 code point, as written to output tags


MATRICES = {
    "bt601": Matrix(0.299, 0.114, "ITU601", 6),  # tagged smpte170m, as libswscale does
    "bt709": Matrix(0.2126, 0.0722, "ITU709", 1),
    "fcc": Matrix(0.30, 0.11, "FCC", 4),
    "smpte240m": Matrix(0.212, 0.087, "SMPTE240M", 7),
    "bt2020": Matrix(0.2627, 0.0593, "BT2020", 9),  # non-constant luminance
}
_MATRIX_NAMES = {1: "bt709", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020"}
_RGB, _UNSPECIFIED, _RESERVED = 0, 2, 3  # H.273 matrix codes that name no YUV matrix
_MATRIX_OTHERS = {8: "ycgco", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc", 13: "chroma-derived-c"}

RANGES = {"tv": (1, "MPEG"), "pc": (2, "JPEG")}  # name -> (H.273 code, libswscale's name)
_RANGE_NAMES = {code: name for name, (code, _) in RANGES.items()}
PRIMARIES = {
    1: "bt709",
    2: "unspecified",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
TRANSFERS = {
    1: "bt709",
    2: "unspecified",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",
    12: "bt1361e",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}


@dataclass(frozen=True)
class Colour:
    """How a video's YUV relates to its RGB: ``matrix`` (a key of MATRICES), ``range`` ("tv" or
    "pc"), and the ``primaries`` and ``transfer`` tags (names from PRIMARIES and TRANSFERS)."""

    matrix: str = "bt601"
    range: str = "tv"
    primaries: str = "unspecified"
    transfer: str = "unspecified"

    @classmethod
    def for_size(cls, width: int, height: int) -> Colour:
        """The colour assumed where a stream names no matrix: BT.709 when ``height >= 720`` or
        ``width >= 1280`` (HD), else BT.601; limited range; primaries and transfer unspecified."""
        return cls("bt709" if height >= 720 or width >= 1280 else "bt601")

    @classmethod
    def of_stream(cls, ctx: av.video.codeccontext.VideoCodecContext, where: str) -> Colour:
        """The colour a decoder context reports. A stream stored as RGB, or naming no matrix, gets
        :meth:`for_size`'s matrix and range; a YUV stream naming no range is full range if its pixel
        format is ``yuvj*``, else limited. Unknown primaries or transfer are unspecified."""
        code, fmt = ctx.colorspace, ctx.format
        default = cls.for_size(ctx.width, ctx.height)
        if code == _RGB or (fmt is not None and fmt.is_rgb):
            matrix, range_ = default.matrix, default.range
        elif code in (_UNSPECIFIED, _RESERVED) or code in _MATRIX_NAMES:
            matrix = _MATRIX_NAMES.get(code, default.matrix)
            yuvj = fmt is not None and fmt.name.startswith("yuvj")
            range_ = _RANGE_NAMES.get(ctx.color_range, "pc" if yuvj else "tv")
        else:
            raise CodecError(f"{where}: colour matrix {_MATRIX_OTHERS.get(code, code)} is not supported")
        primaries = PRIMARIES.get(ctx.color_primaries, "unspecified")
        return cls(matrix, range_, primaries, TRANSFERS.get(ctx.color_trc, "unspecified"))

    @classmethod
    def from_dict(cls, value: Any, where: str) -> Colour:
        """Read :meth:`to_dict`'s form back, refusing anything else (meta.json may come from a server)."""
        names = (MATRICES, RANGES, PRIMARIES.values(), TRANSFERS.values())
        fields = ("matrix", "range", "primaries", "transfer")
        if not isinstance(value, dict) or set(value) != set(fields):
            raise CodecError(f"{where}: colour must give exactly {', '.join(fields)}")
        for field, known in zip(fields, names, strict=True):
            if not isinstance(value[field], str) or value[field] not in known:
                raise CodecError(f"{where}: colour {field} {str(value[field])[:32]!r} is not known")
        return cls(**value)

    def to_dict(self) -> dict[str, str]:
        return {"matrix": self.matrix, "range": self.range, "primaries": self.primaries, "transfer": self.transfer}

    def tag(self, ctx: av.video.codeccontext.VideoCodecContext) -> None:
        """Describe this colour on an output codec context (before it opens) for ``ctx.pix_fmt``:
        matrix and range for YUV; RGB and full range for an RGB format. Primaries and transfer always."""
        if av.VideoFormat(ctx.pix_fmt).is_rgb:
            ctx.colorspace, ctx.color_range = _RGB, RANGES["pc"][0]
        else:
            ctx.colorspace, ctx.color_range = MATRICES[self.matrix].code, RANGES[self.range][0]
        ctx.color_primaries = _code(PRIMARIES, self.primaries)
        ctx.color_trc = _code(TRANSFERS, self.transfer)


def _code(names: dict[int, str], name: str) -> int:
    return next(code for code, known in names.items() if known == name)


def frame_to_rgb(frame: av.VideoFrame, colour: Colour) -> np.ndarray:
    """A decoded frame as an ``H x W x 3`` uint8 RGB array, its YUV read with ``colour``'s matrix
    and range (whatever the frame's own tags say; RGB and grey frames are unaffected)."""
    return frame.to_ndarray(
        format="rgb24", src_colorspace=MATRICES[colour.matrix].swscale, src_color_range=RANGES[colour.range][1]
    )


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colour: Colour) -> av.VideoFrame:
    """An ``H x W x 3`` uint8 RGB array as a frame of ``pix_fmt``: YUV formats are converted with
    ``colour``'s matrix and range (and the frame tagged so), RGB formats only repacked."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    if av.VideoFormat(pix_fmt).is_rgb:
        return frame.reformat(format=pix_fmt)
    return frame.reformat(
        format=pix_fmt, dst_colorspace=MATRICES[colour.matrix].swscale, dst_color_range=RANGES[colour.range][1]
    )


def yuv_weights(matrix: str) -> np.ndarray:
    """The 3x3 full-range RGB -> YUV matrix of ``matrix`` (rows Y, U, V; no offsets), from its
    luma weights: U = (B - Y) / 2(1 - Kb), V = (R - Y) / 2(1 - Kr)."""
    if matrix not in MATRICES:
        raise CodecError(f"colour matrix {matrix!r} is not one of {', '.join(MATRICES)}")
    kr, kb = MATRICES[matrix].kr, MATRICES[matrix].kb
    kg = 1 - kr - kb
    return np.array(
        [[kr, kg, kb], [-kr / (2 - 2 * kb), -kg / (2 - 2 * kb), 0.5], [0.5, -kg / (2 - 2 * kr), -kb / (2 - 2 * kr)]]
    )
