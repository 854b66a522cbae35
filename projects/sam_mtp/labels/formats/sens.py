"""Streaming reader and writer for ScanNet's ``.sens`` RGB-D recordings, and the per-scene frame exporter.

The binary layout follows the description of ScanNet's SensorData format (little endian)::

    header   version uint32 (= 4) | sensor-name length uint64 | sensor name bytes
             intrinsic_color, extrinsic_color, intrinsic_depth, extrinsic_depth: 4x4 float32 each (row major)
             color compression int32 | depth compression int32
             color width, color height, depth width, depth height: uint32 each
             depth shift float32 (raw depth units per metre, 1000 for ScanNet) | number of frames uint64
    frame    camera_to_world 4x4 float32 | timestamp_color uint64 | timestamp_depth uint64
             color size uint64 | depth size uint64 | color bytes | depth bytes
    then     number of IMU frames uint64 and the IMU frames (ignored by the reader)

The reader never loads the whole file: it walks frames with ``seek`` and only reads the payload of the frames
it is asked for, so exporting every 25th frame of a 2 GB recording touches a few percent of it.

Exported layout per scene (what ScanNet's own exporter writes, keeping ScanNet's frame ids)::

    <out>/<scene>/color/<id>.jpg           colour frame (the recorded JPEG bytes, not re-encoded)
    <out>/<scene>/depth/<id>.png           uint16 depth in raw units (millimetres for ScanNet)
    <out>/<scene>/pose/<id>.txt            4x4 camera-to-world
    <out>/<scene>/intrinsic/intrinsic_color.txt, extrinsic_color.txt, intrinsic_depth.txt, extrinsic_depth.txt
    <out>/<scene>/.export_done             JSON written last; its presence means the scene is complete
"""
import io
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Optional, Sequence

import numpy as np

from ..fileio import atomic_write_bytes, temporary_file
from .frames import EXPORT_DONE_MARKER, FrameExportWriter

SENS_VERSION = 4
COLOR_COMPRESSION = {-1: 'unknown', 0: 'raw', 1: 'png', 2: 'jpeg'}
DEPTH_COMPRESSION = {-1: 'unknown', 0: 'raw_ushort', 1: 'zlib_ushort', 2: 'occi_ushort'}

_HEAD_TAIL = struct.Struct('<ii4IfQ')  # compressions, 4 sizes, depth shift, frame count
_FRAME_HEAD = struct.Struct('<16f4Q')   # pose, timestamps, payload sizes


class SensFormatError(ValueError):
    """A ``.sens`` file is malformed or truncated; the message names the file and where."""

    def __init__(self, path, problem):
        self.path = str(path)
        super().__init__(f'{path}: {problem}')


@dataclass
class SensHeader:
    """Everything the ``.sens`` header stores. Matrices are 4x4 float32; sizes are (width, height)."""
    sensor_name: str
    intrinsic_color: np.ndarray
    extrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_depth: np.ndarray
    color_width: int
    color_height: int
    depth_width: int
    depth_height: int
    depth_shift: float = 1000.0
    color_compression: int = 2
    depth_compression: int = 1
    num_frames: int = 0
    version: int = SENS_VERSION


@dataclass
class SensFrame:
    """One recorded frame; colour and depth stay compressed until decoded."""
    index: int
    camera_to_world: np.ndarray
    timestamp_color: int
    timestamp_depth: int
    color_bytes: bytes = field(repr=False)
    depth_bytes: bytes = field(repr=False)

    def decode_color(self, header: SensHeader) -> np.ndarray:
        """RGB uint8 image of shape (color_height, color_width, 3)."""
        kind = COLOR_COMPRESSION.get(header.color_compression, 'unknown')
        shape = (header.color_height, header.color_width, 3)
        if kind == 'raw':
            return np.frombuffer(self.color_bytes, np.uint8).reshape(shape)
        if kind in ('jpeg', 'png'):
            import cv2
            bgr = cv2.imdecode(np.frombuffer(self.color_bytes, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f'frame {self.index}: colour {kind} payload cannot be decoded')
            return np.ascontiguousarray(bgr[..., ::-1])
        raise ValueError(f'frame {self.index}: unsupported colour compression {header.color_compression}')

    def decode_depth(self, header: SensHeader) -> np.ndarray:
        """uint16 depth of shape (depth_height, depth_width) in raw units (divide by depth_shift for metres)."""
        kind = DEPTH_COMPRESSION.get(header.depth_compression, 'unknown')
        if kind == 'zlib_ushort':
            raw = zlib.decompress(self.depth_bytes)
        elif kind == 'raw_ushort':
            raw = self.depth_bytes
        else:
            raise ValueError(f'frame {self.index}: unsupported depth compression {header.depth_compression}')
        expected = header.depth_width * header.depth_height * 2
        if len(raw) != expected:
            raise ValueError(f'frame {self.index}: depth payload has {len(raw)} bytes, expected {expected}')
        return np.frombuffer(raw, '<u2').reshape(header.depth_height, header.depth_width).copy()


def _read_exact(f: BinaryIO, size: int, path, what: str) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise SensFormatError(path, f'truncated while reading {what} (wanted {size} bytes, got {len(data)})')
    return data


class SensReader:
    """Streams frames out of a ``.sens`` file.

    Use as a context manager; ``header`` is read on open::

        with SensReader('scene0000_00.sens') as reader:
            for frame in reader.iter_frames(stride=25):
                rgb = frame.decode_color(reader.header)
    """

    def __init__(self, path: str):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f'{self.path}: .sens file does not exist')
        self._file: Optional[BinaryIO] = open(self.path, 'rb')
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise
        self._frames_offset = self._file.tell()

    def _read_header(self) -> SensHeader:
        f, p = self._file, self.path
        (version, ) = struct.unpack('<I', _read_exact(f, 4, p, 'version'))
        if version != SENS_VERSION:
            raise SensFormatError(p, f'version {version}, expected {SENS_VERSION} (not a ScanNet .sens file?)')
        (name_len, ) = struct.unpack('<Q', _read_exact(f, 8, p, 'sensor name length'))
        if name_len > 4096:
            raise SensFormatError(p, f'sensor name length {name_len} is implausible (corrupt header)')
        name = _read_exact(f, name_len, p, 'sensor name').decode('utf-8', errors='replace')
        mats = np.frombuffer(_read_exact(f, 4 * 16 * 4, p, 'calibration'), '<f4').reshape(4, 4, 4).copy()
        c_comp, d_comp, cw, ch, dw, dh, shift, n = _HEAD_TAIL.unpack(
            _read_exact(f, _HEAD_TAIL.size, p, 'image description'))
        return SensHeader(
            sensor_name=name, intrinsic_color=mats[0], extrinsic_color=mats[1], intrinsic_depth=mats[2],
            extrinsic_depth=mats[3], color_width=cw, color_height=ch, depth_width=dw, depth_height=dh,
            depth_shift=shift, color_compression=c_comp, depth_compression=d_comp, num_frames=n, version=version)

    def iter_frames(self, stride: int = 1, indices: Optional[Sequence[int]] = None) -> Iterator[SensFrame]:
        """Yield frames whose index is a multiple of ``stride`` (or is in ``indices``); others are skipped
        with ``seek`` without reading their payload."""
        if stride < 1:
            raise ValueError(f'stride must be >= 1, got {stride}')
        wanted = None if indices is None else set(int(i) for i in indices)
        f, p = self._file, self.path
        f.seek(self._frames_offset)
        for index in range(self.header.num_frames):
            head = _read_exact(f, _FRAME_HEAD.size, p, f'frame {index} header')
            values = _FRAME_HEAD.unpack(head)
            color_size, depth_size = values[18], values[19]
            keep = index % stride == 0 if wanted is None else index in wanted
            if not keep:
                f.seek(color_size + depth_size, io.SEEK_CUR)
                continue
            color = _read_exact(f, color_size, p, f'frame {index} colour payload')
            depth = _read_exact(f, depth_size, p, f'frame {index} depth payload')
            yield SensFrame(
                index=index, camera_to_world=np.asarray(values[:16], np.float32).reshape(4, 4),
                timestamp_color=values[16], timestamp_depth=values[17], color_bytes=color, depth_bytes=depth)
        if f.tell() > os.path.getsize(p):
            raise SensFormatError(p, 'frame payloads extend past the end of the file (truncated)')

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SensWriter:
    """Writes a ``.sens`` file (used to make test recordings and to repack data).

    Frames are appended with :meth:`add_frame`; the frame count in the header is patched on close, and the
    file appears under its final name only after a successful close (written through a temporary file).
    """

    def __init__(self, path: str, header: SensHeader):
        self.path = str(path)
        self.header = header
        fd, self._tmp = temporary_file(self.path)
        self._file = os.fdopen(fd, 'wb')
        self._num_frames = 0
        self._write_header()

    def _write_header(self) -> None:
        h, f = self.header, self._file
        name = h.sensor_name.encode('utf-8')
        f.write(struct.pack('<IQ', SENS_VERSION, len(name)))
        f.write(name)
        for mat in (h.intrinsic_color, h.extrinsic_color, h.intrinsic_depth, h.extrinsic_depth):
            f.write(np.asarray(mat, '<f4').reshape(4, 4).tobytes())
        f.write(struct.pack('<ii4If', h.color_compression, h.depth_compression, h.color_width, h.color_height,
                            h.depth_width, h.depth_height, h.depth_shift))
        self._count_offset = f.tell()
        f.write(struct.pack('<Q', 0))

    def add_frame(self, color: np.ndarray, depth: np.ndarray, camera_to_world: np.ndarray,
                  timestamp_color: int = 0, timestamp_depth: int = 0, jpeg_quality: int = 95) -> None:
        """Append a frame from an RGB uint8 image and a uint16 depth map (raw units)."""
        h = self.header
        color = np.asarray(color)
        depth = np.asarray(depth)
        if color.shape != (h.color_height, h.color_width, 3) or color.dtype != np.uint8:
            raise ValueError(f'colour must be uint8 {(h.color_height, h.color_width, 3)}, '
                             f'got {color.dtype} {color.shape}')
        if depth.shape != (h.depth_height, h.depth_width) or depth.dtype != np.uint16:
            raise ValueError(f'depth must be uint16 {(h.depth_height, h.depth_width)}, got {depth.dtype} {depth.shape}')
        color_kind = COLOR_COMPRESSION.get(h.color_compression)
        if color_kind == 'raw':
            color_bytes = np.ascontiguousarray(color).tobytes()
        elif color_kind in ('jpeg', 'png'):
            import cv2
            ext, params = ('.jpg', [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]) if color_kind == 'jpeg' else ('.png', [])
            ok, buf = cv2.imencode(ext, np.ascontiguousarray(color[..., ::-1]), params)
            if not ok:
                raise ValueError('colour frame could not be encoded')
            color_bytes = buf.tobytes()
        else:
            raise ValueError(f'cannot write colour compression {h.color_compression}')
        depth_raw = np.ascontiguousarray(depth, '<u2').tobytes()
        depth_kind = DEPTH_COMPRESSION.get(h.depth_compression)
        if depth_kind == 'zlib_ushort':
            depth_bytes = zlib.compress(depth_raw)
        elif depth_kind == 'raw_ushort':
            depth_bytes = depth_raw
        else:
            raise ValueError(f'cannot write depth compression {h.depth_compression}')
        f = self._file
        f.write(np.asarray(camera_to_world, '<f4').reshape(4, 4).tobytes())
        f.write(struct.pack('<4Q', timestamp_color, timestamp_depth, len(color_bytes), len(depth_bytes)))
        f.write(color_bytes)
        f.write(depth_bytes)
        self._num_frames += 1

    def close(self) -> None:
        if self._file is None:
            return
        f = self._file
        f.write(struct.pack('<Q', 0))  # no IMU frames
        f.seek(self._count_offset)
        f.write(struct.pack('<Q', self._num_frames))
        f.flush()
        os.fsync(f.fileno())
        f.close()
        self._file = None
        self.header.num_frames = self._num_frames
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if os.path.exists(self._tmp):
                os.remove(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def is_scene_exported(scene_dir: str) -> bool:
    """True when the exporter finished this scene (its done-marker, written last, exists)."""
    return os.path.isfile(os.path.join(scene_dir, EXPORT_DONE_MARKER))


def export_sens_frames(sens_path: str, scene_dir: str, stride: int = 25) -> dict:
    """Export every ``stride``-th frame of one recording to the frame-folder layout, keeping frame ids.

    Colour is written as the recorded JPEG bytes when the recording is JPEG-compressed (no re-encoding loss),
    otherwise encoded as JPEG. Every file is written atomically and the done-marker last, so an interrupted
    export is simply redone. Returns a summary dict (also stored in the done-marker).
    """
    writer = FrameExportWriter(scene_dir)
    num_exported = 0
    with SensReader(sens_path) as reader:
        h = reader.header
        writer.write_calibration(h.intrinsic_color, h.intrinsic_depth, h.extrinsic_color, h.extrinsic_depth)
        for frame in reader.iter_frames(stride=stride):
            if COLOR_COMPRESSION.get(h.color_compression) == 'jpeg':
                color = frame.color_bytes  # the recorded JPEG: no re-encoding loss
            else:
                color = frame.decode_color(h)
            try:
                depth = frame.decode_depth(h)
            except ValueError as err:
                raise SensFormatError(sens_path, str(err)) from err
            writer.write_frame(frame.index, color, depth, frame.camera_to_world)
            num_exported += 1
        summary = dict(source=os.path.basename(sens_path), stride=stride, num_frames=h.num_frames,
                       num_exported=num_exported, depth_shift=h.depth_shift,
                       color_size=[h.color_width, h.color_height], depth_size=[h.depth_width, h.depth_height])
    atomic_write_bytes(os.path.join(scene_dir, EXPORT_DONE_MARKER), json.dumps(summary).encode())
    return summary
