"""Back-projection and point <-> pixel pairing, checked against brute force and the synthetic ray caster."""
import os

import numpy as np
import pytest

from projects.sam_mtp.datasets.synthetic import cast_rays, generate_scene
from projects.sam_mtp.labels.formats.frames import FrameData, FrameRecord, list_frames, load_frame, scene_axis_align
from projects.sam_mtp.labels.geometry import backproject_depth, frame_points, frame_seed, project_points


def test_backprojection_matches_per_pixel_formula():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 3.0, (5, 7)).astype(np.float32)
    depth[1, 2] = 0
    depth[3, 4] = np.nan
    k = np.array([[6.0, 0.5, 3.2], [0, 5.0, 2.1], [0, 0, 1]])
    rows, cols, xyz = backproject_depth(depth, k)
    assert len(rows) == 33 and (1, 2) not in set(zip(rows, cols))
    for r, c, p in zip(rows, cols, xyz):  # brute force, one pixel at a time
        z = depth[r, c]
        y = (r - k[1, 2]) * z / k[1, 1]
        x = ((c - k[0, 2]) * z - k[0, 1] * y) / k[0, 0]
        np.testing.assert_allclose(p, [x, y, z], rtol=1e-5, atol=1e-6)
    row, col, inside = project_points(xyz, k, depth.shape)
    assert inside.all() and (row == rows).all() and (col == cols).all()
    _, _, xyz_far = backproject_depth(depth, k, max_depth=1.0)
    assert (xyz_far[:, 2] < 1.0).all() and len(xyz_far) == int((np.nan_to_num(depth) > 0).sum()
                                                               - (depth >= 1.0).sum())


def _frame(synthetic_root, scene='scene0000_00', index=1):
    record = list_frames(os.path.join(synthetic_root, 'posed_images'), [scene])[index]
    return load_frame(record), scene_axis_align(os.path.join(synthetic_root, 'scans'), scene)


def test_points_carry_the_region_and_colour_of_their_pixel(synthetic_root):
    frame, align = _frame(synthetic_root)
    region_map = np.arange(36 * 48, dtype=np.int32).reshape(36, 48) % 97  # every pixel distinguishable
    out = frame_points(frame, region_map, 500, frame_seed(0, 'scene0000_00', 25), align)
    assert out['points'].shape == (500, 3) and out['points'].dtype == np.float32
    rows, cols = out['point_pixel'].T
    np.testing.assert_array_equal(out['point_region'], region_map[rows, cols])
    # Independent check: world point -> camera (inverse axis-align and pose) -> pixel of the 48x36 mask image,
    # whose intrinsics are the 96x72 colour intrinsics halved in the pixel-centre convention.
    cam = (np.linalg.inv(align @ frame.pose) @ np.c_[out['points'], np.ones(500)].T).T[:, :3]
    k = frame.intrinsic_color
    u = (k[0, 0] * cam[:, 0] / cam[:, 2] + k[0, 2] + 0.5) / 2 - 0.5
    v = (k[1, 1] * cam[:, 1] / cam[:, 2] + k[1, 2] + 0.5) / 2 - 0.5
    assert (np.abs(u - cols) <= 0.5 + 1e-3).all() and (np.abs(v - rows) <= 0.5 + 1e-3).all()
    # Colours come from the full-resolution colour image at the projected pixel.
    cu = np.clip(np.rint(k[0, 0] * cam[:, 0] / cam[:, 2] + k[0, 2]), 0, 95).astype(int)
    cv = np.clip(np.rint(k[1, 1] * cam[:, 1] / cam[:, 2] + k[1, 2]), 0, 71).astype(int)
    close = np.abs(frame.color[cv, cu].astype(int) - out['colors']).max(1) == 0
    assert close.mean() > 0.98  # float rounding may flip a pixel on exact half-pixel positions


def test_backprojected_points_lie_on_the_synthetic_scene(synthetic_root):
    """Rays from the camera centre through each point hit the scene's geometry at the point (t = 1)."""
    frame, align = _frame(synthetic_root, 'scene0001_00', 2)
    out = frame_points(frame, np.ones((72, 96), np.int32), 400, frame_seed(0, 'x', 0), align)
    scene = generate_scene(3, 1)  # the generator's (seed, scene index)
    np.testing.assert_allclose(scene.axis_align_matrix, align, atol=1e-5)
    origin = (align @ frame.pose)[:3, 3]
    t, surface = cast_rays(scene, origin, out['points'] - origin)
    assert (surface >= 0).all()
    # Depth is stored in millimetres: relative error below ~1e-3.
    assert np.mean(np.abs(t - 1) < 2e-3) > 0.98


def test_sampling_is_seeded_and_uses_replacement_only_when_short(synthetic_root):
    frame, align = _frame(synthetic_root)
    region_map = np.ones((36, 48), np.int32)
    a = frame_points(frame, region_map, 300, frame_seed(5, 'scene0000_00', 25), align)
    b = frame_points(frame, region_map, 300, frame_seed(5, 'scene0000_00', 25), align)
    c = frame_points(frame, region_map, 300, frame_seed(6, 'scene0000_00', 25), align)
    np.testing.assert_array_equal(a['points'], b['points'])
    assert not np.array_equal(a['points'], c['points'])
    assert len(np.unique(a['points'], axis=0)) == 300  # enough valid pixels: no repeats
    sparse = frame.depth.copy()
    sparse[:, 3:] = 0  # only a few valid pixels remain
    few = FrameData(frame.record, frame.color, sparse, frame.pose, frame.intrinsic_color, frame.intrinsic_depth,
                    frame.extrinsic_color, frame.extrinsic_depth)
    out = frame_points(few, region_map, 300, frame_seed(0, 'a', 0), align)
    assert out['points'].shape == (300, 3) and len(np.unique(out['points'], axis=0)) <= 3 * 48


def test_depth_to_colour_uses_extrinsics():
    """A depth camera shifted by 5 cm from the colour camera: a point's colour pixel moves accordingly."""
    k = np.array([[40.0, 0, 15.5], [0, 40.0, 11.5], [0, 0, 1]])
    depth = np.full((24, 32), 2.0, np.float32)
    ext_depth = np.eye(4)
    ext_depth[0, 3] = 0.05  # depth camera origin at x = 5 cm in the colour camera (rig) frame
    record = FrameRecord('s', 0, '.', 'export', 'c.jpg', 'd.png', 'p.txt')
    color = np.zeros((24, 32, 3), np.uint8)
    frame = FrameData(record, color, depth, np.eye(4), k, k, np.eye(4), ext_depth)
    region_map = np.tile(np.arange(32, dtype=np.int32), (24, 1))  # region id = column
    out = frame_points(frame, region_map, 2000, frame_seed(0, 's', 0))
    # A point of depth column c is at x_rig = (c - cx) * 2 / 40 + 0.05 -> colour column c + 0.05 * 40 / 2 = c + 1.
    assert np.allclose(out['points'][:, 0] - 0.05, (out['point_region'] - 1 - 15.5) * 2 / 40, atol=1e-5)
    with pytest.raises(Exception, match='no valid depth pixel projects into the colour image'):
        frame_points(FrameData(record, color, depth, np.eye(4), k, k, np.eye(4), np.diag([1, 1, -1, 1.0])),
                     region_map, 10, frame_seed(0, 's', 0))


def test_registered_fast_path_agrees_with_the_general_projection(synthetic_root):
    """ScanNet's cameras are registered: the lookup-table path must pair pixels like full projection does."""
    from projects.sam_mtp.labels.geometry import pair_pixels, pair_pixels_registered
    frame, _ = _frame(synthetic_root)
    fast_rows, fast_cols, fast = pair_pixels_registered(frame, (36, 48))
    nudged = np.eye(4)
    nudged[0, 3] = 1e-7  # 0.1 micrometre: not identity, so the general path runs; geometrically the same
    general = FrameData(frame.record, frame.color, frame.depth, frame.pose, frame.intrinsic_color,
                        frame.intrinsic_depth, frame.extrinsic_color, nudged)
    rows, cols, slow = pair_pixels(general, (36, 48))
    np.testing.assert_array_equal(rows, fast_rows)
    np.testing.assert_array_equal(cols, fast_cols)
    same = np.stack(fast(rows, cols)) == np.stack(slow(rows, cols))
    assert same.all(axis=0).mean() > 0.999  # only exact half-pixel ties may round differently
