"""ScanNet .sens reader/writer round trip, streaming errors, and the resumable frame exporter."""
import os
import struct
import sys

import cv2
import numpy as np
import pytest

from projects.sam_mtp.labels.formats.frames import list_frames, load_frame
from projects.sam_mtp.labels.formats.sens import (
    EXPORT_DONE_MARKER,
    SensFormatError,
    SensHeader,
    SensReader,
    SensWriter,
    export_sens_frames,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tools'))
import export_scannet_frames  # noqa: E402


def _header(color_compression=2, width=16, height=12):
    k_color = np.array([[14.4, 0, 7.5, 0], [0, 14.4, 5.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
    k_depth = np.array([[7.2, 0, 3.5, 0], [0, 7.2, 2.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
    ext = np.eye(4, dtype=np.float32)
    ext[0, 3] = 0.025
    return SensHeader('StructureSensor', k_color, np.eye(4, dtype=np.float32), k_depth, ext, width, height,
                      width // 2, height // 2, depth_shift=1000.0, color_compression=color_compression,
                      depth_compression=1)


def _frames(num, header, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(num):
        # Smooth colour so that JPEG stays close to the original.
        base = rng.integers(40, 200, 3)
        color = np.broadcast_to(base, (header.color_height, header.color_width, 3)).astype(np.uint8)
        depth = rng.integers(0, 4000, (header.depth_height, header.depth_width)).astype(np.uint16)
        pose = np.eye(4)
        pose[:3, 3] = rng.normal(size=3)
        if i == 3:
            pose[:] = -np.inf  # lost tracking, as ScanNet writes it
        frames.append((color, depth, pose))
    return frames


def _write(path, header, frames):
    with SensWriter(path, header) as writer:
        for i, (color, depth, pose) in enumerate(frames):
            writer.add_frame(color, depth, pose, timestamp_color=1000 + i, timestamp_depth=2000 + i)


def test_round_trip_raw_colour_is_exact(tmp_path):
    header = _header(color_compression=0)
    frames = _frames(5, header)
    path = str(tmp_path / 'scene.sens')
    _write(path, header, frames)
    with SensReader(path) as reader:
        h = reader.header
        assert (h.version, h.sensor_name, h.num_frames) == (4, 'StructureSensor', 5)
        assert (h.color_width, h.color_height, h.depth_width, h.depth_height) == (16, 12, 8, 6)
        assert (h.color_compression, h.depth_compression, h.depth_shift) == (0, 1, 1000.0)
        np.testing.assert_array_equal(h.intrinsic_color, header.intrinsic_color)
        np.testing.assert_array_equal(h.extrinsic_depth, header.extrinsic_depth)
        read = list(reader.iter_frames())
    assert [f.index for f in read] == [0, 1, 2, 3, 4]
    for frame, (color, depth, pose) in zip(read, frames):
        np.testing.assert_array_equal(frame.decode_color(h), color)
        np.testing.assert_array_equal(frame.decode_depth(h), depth)
        np.testing.assert_array_equal(frame.camera_to_world, pose.astype(np.float32))
        assert frame.timestamp_color == 1000 + frame.index and frame.timestamp_depth == 2000 + frame.index


def test_reader_streams_selected_frames(tmp_path):
    header = _header()
    frames = _frames(7, header)
    path = str(tmp_path / 'scene.sens')
    _write(path, header, frames)
    with SensReader(path) as reader:
        assert [f.index for f in reader.iter_frames(stride=3)] == [0, 3, 6]
        chosen = list(reader.iter_frames(indices=[5, 1]))
        assert [f.index for f in chosen] == [1, 5]
        np.testing.assert_array_equal(chosen[1].decode_depth(reader.header), frames[5][1])
        jpeg = chosen[0].decode_color(reader.header)
        assert np.abs(jpeg.astype(int) - frames[1][0]).max() <= 3
        with pytest.raises(ValueError, match='stride'):
            next(reader.iter_frames(stride=0))


def test_truncated_and_foreign_files_are_named(tmp_path):
    header = _header()
    path = str(tmp_path / 'scene.sens')
    _write(path, header, _frames(4, header))
    data = open(path, 'rb').read()
    cut = str(tmp_path / 'cut.sens')
    with open(cut, 'wb') as f:
        f.write(data[:len(data) - 40])
    with SensReader(cut) as reader:
        with pytest.raises(SensFormatError, match=r'cut\.sens.*truncated.*frame 3'):
            list(reader.iter_frames())
    bad = str(tmp_path / 'bad.sens')
    with open(bad, 'wb') as f:
        f.write(struct.pack('<I', 3) + data[4:])
    with pytest.raises(SensFormatError, match=r'bad\.sens: version 3'):
        SensReader(bad)
    with pytest.raises(FileNotFoundError, match='missing.sens'):
        SensReader(str(tmp_path / 'missing.sens'))


def test_writer_rejects_wrong_images(tmp_path):
    header = _header()
    with SensWriter(str(tmp_path / 'x.sens'), header) as writer:
        with pytest.raises(ValueError, match='depth must be uint16'):
            writer.add_frame(np.zeros((12, 16, 3), np.uint8), np.zeros((6, 8), np.float32), np.eye(4))
        with pytest.raises(ValueError, match='colour must be uint8'):
            writer.add_frame(np.zeros((10, 16, 3), np.uint8), np.zeros((6, 8), np.uint16), np.eye(4))


def test_export_keeps_ids_bytes_and_calibration(tmp_path):
    header = _header()
    frames = _frames(6, header)
    sens = str(tmp_path / 'scans' / 'scene0000_00' / 'scene0000_00.sens')
    _write(sens, header, frames)
    scene_dir = str(tmp_path / 'frames' / 'scene0000_00')
    summary = export_sens_frames(sens, scene_dir, stride=2)
    assert summary['num_exported'] == 3 and os.path.isfile(os.path.join(scene_dir, EXPORT_DONE_MARKER))
    assert sorted(os.listdir(os.path.join(scene_dir, 'color'))) == ['0.jpg', '2.jpg', '4.jpg']
    with SensReader(sens) as reader:
        recorded = {f.index: f.color_bytes for f in reader.iter_frames(stride=2)}
    assert open(os.path.join(scene_dir, 'color', '2.jpg'), 'rb').read() == recorded[2]  # not re-encoded
    depth = cv2.imread(os.path.join(scene_dir, 'depth', '4.png'), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16
    np.testing.assert_array_equal(depth, frames[4][1])
    np.testing.assert_allclose(np.loadtxt(os.path.join(scene_dir, 'pose', '2.txt')), frames[2][2], atol=1e-6)
    np.testing.assert_allclose(np.loadtxt(os.path.join(scene_dir, 'intrinsic', 'extrinsic_depth.txt')),
                               header.extrinsic_depth, atol=1e-7)
    # The export is readable by the label pipeline, depth in metres and calibration resolved.
    records = list_frames(str(tmp_path / 'frames'), frame_stride=2)
    assert [r.frame_id for r in records] == [0, 2, 4]
    frame = load_frame(records[2])
    np.testing.assert_allclose(frame.depth, frames[4][1] / 1000.0, rtol=1e-6)
    np.testing.assert_allclose(frame.intrinsic_depth, header.intrinsic_depth[:3, :3], rtol=1e-6)
    assert frame.color.shape == (12, 16, 3)


def test_export_tool_is_parallel_resumable_and_reports_failures(tmp_path):
    header = _header()
    scans = tmp_path / 'scans'
    for i in range(3):
        _write(str(scans / f'scene000{i}_00' / f'scene000{i}_00.sens'), header, _frames(5, header, seed=i))
    out = str(tmp_path / 'frames')
    assert export_scannet_frames.main([str(scans), out, '--stride', '2', '--workers', '2']) == 0
    for i in range(3):
        assert sorted(os.listdir(os.path.join(out, f'scene000{i}_00', 'pose'))) == ['0.txt', '2.txt', '4.txt']
    # Rerun: finished scenes are skipped (files untouched); a scene without its marker is redone.
    marker = os.path.join(out, 'scene0001_00', EXPORT_DONE_MARKER)
    stamp = os.path.getmtime(os.path.join(out, 'scene0000_00', 'color', '0.jpg'))
    os.remove(marker)
    os.remove(os.path.join(out, 'scene0001_00', 'color', '4.jpg'))
    assert export_scannet_frames.main([str(scans), out, '--stride', '2', '--workers', '0']) == 0
    assert os.path.getmtime(os.path.join(out, 'scene0000_00', 'color', '0.jpg')) == stamp
    assert os.path.isfile(marker) and os.path.isfile(os.path.join(out, 'scene0001_00', 'color', '4.jpg'))
    # A truncated recording and a missing one fail (exit 1) without stopping the others.
    sens = str(scans / 'scene0002_00' / 'scene0002_00.sens')
    data = open(sens, 'rb').read()
    open(sens, 'wb').write(data[:len(data) // 2])
    split = tmp_path / 'split.txt'
    split.write_text('scene0002_00\nscene0009_00\n')
    assert export_scannet_frames.main([str(scans), str(tmp_path / 'frames2'), '--split-file', str(split),
                                       '--stride', '2', '--workers', '0']) == 1
    assert not os.path.exists(os.path.join(tmp_path, 'frames2', 'scene0002_00', EXPORT_DONE_MARKER))
