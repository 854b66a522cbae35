"""Frame discovery (export and flat layouts, stride, split lists) and every bad-input case of frame loading."""
import os
import shutil

import numpy as np
import pytest

from projects.sam_mtp.labels.formats.frames import (
    FrameError,
    list_frames,
    load_frame,
    read_axis_align_matrix,
    scale_intrinsic,
    scene_axis_align,
)


def test_export_layout_and_stride(frames_copy):
    records = list_frames(frames_copy, frame_stride=25)
    assert [(r.scene, r.frame_id) for r in records] == [
        (s, i) for s in ('scene0000_00', 'scene0001_00') for i in (0, 25, 50, 75)]
    assert all(r.layout == 'export' for r in records)
    assert [r.frame_id for r in list_frames(frames_copy, ['scene0001_00'], frame_stride=50)] == [0, 50]
    with pytest.raises(FileNotFoundError, match=r"1 scene folder\(s\) of the split are missing.*scene0042_00"):
        list_frames(frames_copy, ['scene0000_00', 'scene0042_00'])
    with pytest.raises(ValueError, match='frame_stride'):
        list_frames(frames_copy, frame_stride=0)


def test_flat_layout_derives_depth_intrinsics(synthetic_root, frames_copy, tmp_path):
    """Flat layout: <id>.jpg/.png/.txt side by side + intrinsic.txt (colour intrinsics only)."""
    src = os.path.join(frames_copy, 'scene0000_00')
    flat = tmp_path / 'flat' / 'scene0000_00'
    flat.mkdir(parents=True)
    for fid in (0, 25):
        shutil.copy(os.path.join(src, 'color', f'{fid}.jpg'), flat / f'{fid:05d}.jpg')
        shutil.copy(os.path.join(src, 'depth', f'{fid}.png'), flat / f'{fid:05d}.png')
        shutil.copy(os.path.join(src, 'pose', f'{fid}.txt'), flat / f'{fid:05d}.txt')
    shutil.copy(os.path.join(src, 'intrinsic', 'intrinsic_color.txt'), flat / 'intrinsic.txt')
    records = list_frames(str(tmp_path / 'flat'))
    assert [(r.layout, r.frame_id) for r in records] == [('flat', 0), ('flat', 25)]
    frame = load_frame(records[1])
    # Colour 96x72 -> depth 64x48; the synthetic generator's depth intrinsics are the scaled colour ones.
    expected = np.loadtxt(os.path.join(src, 'intrinsic', 'intrinsic_depth.txt'))[:3, :3]
    np.testing.assert_allclose(frame.intrinsic_depth, expected, atol=1e-5)
    exported = load_frame(list_frames(frames_copy, ['scene0000_00'])[1])
    np.testing.assert_array_equal(frame.depth, exported.depth)
    np.testing.assert_array_equal(frame.pose, exported.pose)


def test_mmdet3d_posed_images_folder_is_refused_at_once(frames_copy, tmp_path):
    """mmdet3d's extract_posed_images.py output: colour, pose and intrinsic.txt, no depth, frames 00000..."""
    src = os.path.join(frames_copy, 'scene0000_00')
    flat = tmp_path / 'posed' / 'scene0000_00'
    flat.mkdir(parents=True)
    for new_id, fid in enumerate((0, 25, 50)):  # a subset renumbered by its index, as mmdet3d does
        shutil.copy(os.path.join(src, 'color', f'{fid}.jpg'), flat / f'{new_id:05d}.jpg')
        shutil.copy(os.path.join(src, 'pose', f'{fid}.txt'), flat / f'{new_id:05d}.txt')
    shutil.copy(os.path.join(src, 'intrinsic', 'intrinsic_color.txt'), flat / 'intrinsic.txt')
    with pytest.raises(ValueError, match=r"scene0000_00: flat frame folder without depth images.*extract_posed_images"
                                         r".*tools/export_scannet_frames\.py"):
        list_frames(str(tmp_path / 'posed'), frame_stride=1)


def test_depth_scale_must_match_the_export_marker(frames_copy):
    import json

    from projects.sam_mtp.labels.formats.frames import EXPORT_DONE_MARKER, check_depth_scale
    records = list_frames(frames_copy)
    check_depth_scale(records, 1000.0)  # no marker (synthetic export): nothing to compare
    marker = os.path.join(frames_copy, 'scene0001_00', EXPORT_DONE_MARKER)
    with open(marker, 'w') as f:
        json.dump(dict(source='scene0001_00.sens', depth_shift=4000.0), f)
    check_depth_scale(records, 4000.0)
    with pytest.raises(ValueError, match=r'scene0001_00/\.export_done: the recording stores depth in units of '
                                         r'1/4000 m \(depth_shift 4000\) but label_cfg\.depth_scale is 1000'):
        check_depth_scale(records, 1000.0)
    with open(marker, 'w') as f:
        f.write('{not json')
    with pytest.raises(ValueError, match=r'\.export_done: cannot read the export marker'):
        check_depth_scale(records, 1000.0)


def test_scale_intrinsic_pixel_centres():
    k = np.array([[100.0, 0, 31.5], [0, 100.0, 23.5], [0, 0, 1]])  # principal point at the centre of 64x48
    half = scale_intrinsic(k, (48, 64), (24, 32))
    np.testing.assert_allclose(half, [[50, 0, 15.5], [0, 50, 11.5], [0, 0, 1]])


def _first(frames_root):
    return list_frames(frames_root, ['scene0000_00'])[0]


def test_corrupt_colour_image(frames_copy):
    record = _first(frames_copy)
    with open(record.color_path, 'wb') as f:
        f.write(b'\xff\xd8 definitely not a jpeg')
    with pytest.raises(FrameError, match=r'0\.jpg: colour image cannot be decoded') as info:
        load_frame(record)
    assert info.value.kind == 'corrupt_image'


def test_missing_and_invalid_pose(frames_copy):
    record = _first(frames_copy)
    np.savetxt(record.pose_path, np.full((4, 4), -np.inf))
    with pytest.raises(FrameError, match=r'pose/0\.txt: pose contains inf or NaN') as info:
        load_frame(record)
    assert info.value.kind == 'invalid_pose'
    os.remove(record.pose_path)
    with pytest.raises(FrameError, match=r'pose/0\.txt: pose file does not exist') as info:
        load_frame(record)
    assert info.value.kind == 'missing_pose'
    with open(record.pose_path, 'w') as f:
        f.write('1 0 0\n0 1 0\n')
    with pytest.raises(FrameError, match='pose must be a 4x4 matrix') as info:
        load_frame(record)
    assert info.value.kind == 'missing_pose'


def test_all_invalid_and_missing_depth(frames_copy):
    import cv2
    record = _first(frames_copy)
    shape = cv2.imread(record.depth_path, cv2.IMREAD_UNCHANGED).shape
    cv2.imwrite(record.depth_path, np.zeros(shape, np.uint16))
    with pytest.raises(FrameError, match=r'depth/0\.png: depth image has no valid') as info:
        load_frame(record)
    assert info.value.kind == 'invalid_depth'
    cv2.imwrite(record.depth_path, np.zeros(shape + (3, ), np.uint8))
    with pytest.raises(FrameError, match='single-channel 16-bit PNG') as info:
        load_frame(record)
    assert info.value.kind == 'corrupt_image'
    os.remove(record.depth_path)
    with pytest.raises(FrameError, match='depth image does not exist') as info:
        load_frame(record)
    assert info.value.kind == 'missing_file'


def test_axis_alignment_meta(synthetic_root, tmp_path):
    matrix = scene_axis_align(os.path.join(synthetic_root, 'scans'), 'scene0001_00')
    assert matrix.shape == (4, 4) and np.allclose(matrix[3], [0, 0, 0, 1])
    assert np.allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-6)
    assert scene_axis_align(None, 'scene0001_00') is None
    meta = tmp_path / 'm.txt'
    meta.write_text('colorHeight = 968\n')
    assert read_axis_align_matrix(str(meta)) is None  # ScanNet test scenes have no axisAlignment
    meta.write_text('axisAlignment = 1 0 0\n')
    with pytest.raises(ValueError, match=r'm\.txt: axisAlignment must have 16 numbers, all finite'):
        read_axis_align_matrix(str(meta))
    with pytest.raises(FileNotFoundError, match='scene0009_00.txt'):
        scene_axis_align(os.path.join(synthetic_root, 'scans'), 'scene0009_00')


def test_non_finite_axis_alignment_is_refused(tmp_path):
    meta = tmp_path / 'scene.txt'
    meta.write_text('sceneType = Office\naxisAlignment = ' + ' '.join(['1'] * 15 + ['nan']) + '\n')
    with pytest.raises(ValueError, match=r'scene\.txt: axisAlignment must have 16 numbers, all finite, got 16'):
        read_axis_align_matrix(str(meta))
    meta.write_text('sceneType = Office\naxisAlignment = ' + ' '.join(str(v) for v in range(16)) + '\n')
    np.testing.assert_array_equal(read_axis_align_matrix(str(meta)), np.arange(16.0).reshape(4, 4))


def test_export_writer_writes_what_the_export_layout_reader_reads(tmp_path):
    from projects.sam_mtp.labels.formats.frames import FrameExportWriter
    rng = np.random.default_rng(0)
    k_color = np.array([[30.5, 0, 15.25], [0, 31.0, 11.5], [0, 0, 1]])
    k_depth = np.array([[15.0, 0, 7.5], [0, 15.5, 5.5], [0, 0, 1]])
    extrinsic = np.eye(4)
    extrinsic[0, 3] = 0.025
    pose = np.eye(4)
    pose[:3, 3] = [1.25, -0.5, 1.5]
    color = np.zeros((24, 32, 3), np.uint8)  # smooth (JPEG keeps it), every channel different (order shows)
    color[..., 0], color[..., 1], color[..., 2] = np.linspace(20, 230, 32), np.linspace(40, 200, 24)[:, None], 90
    depth = rng.integers(1, 4000, (12, 16)).astype(np.uint16)
    scene = tmp_path / 'frames' / 'scene0007_00'
    writer = FrameExportWriter(str(scene), jpeg_quality=100)
    writer.write_calibration(k_color, k_depth, extrinsic_depth=extrinsic)
    writer.write_frame(50, color, depth, pose)
    writer.write_frame(75, color, depth, np.full((4, 4), -np.inf))  # lost tracking, written as ScanNet does
    assert (scene / 'pose' / '75.txt').read_text().split('\n')[0] == '-inf -inf -inf -inf'
    (record, lost) = list_frames(str(tmp_path / 'frames'), frame_stride=25)
    assert (record.layout, record.frame_id, lost.frame_id) == ('export', 50, 75)
    frame = load_frame(record, depth_scale=1000.0)
    np.testing.assert_array_equal(frame.pose, pose)
    np.testing.assert_array_equal(frame.depth, depth.astype(np.float32) / np.float32(1000.0))
    assert np.abs(frame.color.astype(int) - color).mean() < 4  # JPEG at quality 100, RGB order kept
    np.testing.assert_array_equal(frame.intrinsic_color, k_color)
    np.testing.assert_array_equal(frame.intrinsic_depth, k_depth)
    np.testing.assert_array_equal(frame.extrinsic_depth, extrinsic)
    np.testing.assert_array_equal(frame.extrinsic_color, np.eye(4))
    with pytest.raises(FrameError, match='tracking lost') as info:
        load_frame(lost)
    assert info.value.kind == 'invalid_pose'
