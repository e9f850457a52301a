from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListVideosRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Video(_message.Message):
    __slots__ = ("name", "width", "height", "fps", "frames", "quality_levels", "default_quality", "gop", "bundle_sha256", "source_bytes", "ladder")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    QUALITY_LEVELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_QUALITY_FIELD_NUMBER: _ClassVar[int]
    GOP_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_SHA256_FIELD_NUMBER: _ClassVar[int]
    SOURCE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LADDER_FIELD_NUMBER: _ClassVar[int]
    name: str
    width: int
    height: int
    fps: float
    frames: int
    quality_levels: int
    default_quality: int
    gop: int
    bundle_sha256: str
    source_bytes: int
    ladder: _containers.RepeatedCompositeFieldContainer[Rung]
    def __init__(self, name: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., frames: _Optional[int] = ..., quality_levels: _Optional[int] = ..., default_quality: _Optional[int] = ..., gop: _Optional[int] = ..., bundle_sha256: _Optional[str] = ..., source_bytes: _Optional[int] = ..., ladder: _Optional[_Iterable[_Union[Rung, _Mapping]]] = ...) -> None: ...

class Rung(_message.Message):
    __slots__ = ("quality", "bytes", "psnr")
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PSNR_FIELD_NUMBER: _ClassVar[int]
    quality: int
    bytes: int
    psnr: float
    def __init__(self, quality: _Optional[int] = ..., bytes: _Optional[int] = ..., psnr: _Optional[float] = ...) -> None: ...

class ListVideosResponse(_message.Message):
    __slots__ = ("videos",)
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    videos: _containers.RepeatedCompositeFieldContainer[Video]
    def __init__(self, videos: _Optional[_Iterable[_Union[Video, _Mapping]]] = ...) -> None: ...

class GetDecoderRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DecoderChunk(_message.Message):
    __slots__ = ("file", "size", "sha256", "offset", "data")
    FILE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    file: str
    size: int
    sha256: str
    offset: int
    data: bytes
    def __init__(self, file: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class StreamVideoRequest(_message.Message):
    __slots__ = ("name", "start_frame", "end_frame", "quality", "from_keyframe")
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    END_FRAME_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FROM_KEYFRAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    start_frame: int
    end_frame: int
    quality: int
    from_keyframe: bool
    def __init__(self, name: _Optional[str] = ..., start_frame: _Optional[int] = ..., end_frame: _Optional[int] = ..., quality: _Optional[int] = ..., from_keyframe: _Optional[bool] = ...) -> None: ...

class EncodedFrame(_message.Message):
    __slots__ = ("index", "type", "payload", "crc32", "pts", "check")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    PTS_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    index: int
    type: int
    payload: bytes
    crc32: int
    pts: float
    check: int
    def __init__(self, index: _Optional[int] = ..., type: _Optional[int] = ..., payload: _Optional[bytes] = ..., crc32: _Optional[int] = ..., pts: _Optional[float] = ..., check: _Optional[int] = ...) -> None: ...

class RawFrame(_message.Message):
    __slots__ = ("name", "width", "height", "rgb24", "quality", "gop")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    RGB24_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    GOP_FIELD_NUMBER: _ClassVar[int]
    name: str
    width: int
    height: int
    rgb24: bytes
    quality: int
    gop: int
    def __init__(self, name: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., rgb24: _Optional[bytes] = ..., quality: _Optional[int] = ..., gop: _Optional[int] = ...) -> None: ...
