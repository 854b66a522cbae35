"""SUN RGB-D single-image projection: mmdet3d's depth2img conventions proven on a synthetic render (every point
back on the pixel it came from) and on mmdet3d's own real samples, and the calibration errors."""
import os
import pickle

import numpy as np
import pytest

from projects.sam_mtp.datasets.synthetic import render_sunrgbd_sample
from projects.sam_mtp.labels.segments.projection import (
    DEPTH_TO_CAMERA_AXES,
    CalibrationError,
    camera_projection,
    lidar_projection,
    project_to_image,
    single_image_segments,
    sunrgbd_projection,
)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'mmdet3d')


def _real_sample(folder, name):
    with open(os.path.join(FIXTURES, folder, 'sunrgbd_infos.pkl'), 'rb') as f:
        cam = pickle.load(f)['data_list'][0]['images']['CAM0']
    points = np.fromfile(os.path.join(FIXTURES, folder, 'points', f'{name}.bin'), np.float32).reshape(-1, 6)
    return cam, points


def _image(path):
    import cv2
    return cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1]


@pytest.mark.parametrize('calib_form', ['K@R', 'K.T@R'])
def test_projection_lands_every_point_on_its_source_pixel(calib_form):
    """The synthetic render follows SUN RGB-D's toolbox (1-based pixels, [x, z, -y], Rtilt) and mmdet3d's
    converter (depth2img = K @ F @ Rtilt.T, or the v0.x K.T form); the expected pixel is the one each point was
    back-projected from."""
    sample = render_sunrgbd_sample(seed=0, index=3, num_points=3000, calib_form=calib_form)
    # The render's calibration is a real tilt: the camera looks down and rolls a little.
    assert 2.0 < np.degrees(np.arccos(sample['Rtilt'][2, 2])) < 45.0
    projection, form = sunrgbd_projection(sample['depth2img'], 'sample 3')
    assert form == calib_form
    u, v, row, col, inside = project_to_image(sample['points'], projection, sample['image_hw'], pixel_origin=1)
    assert inside.all()
    error = np.abs(np.stack([v, u], 1) - sample['pixel']).max()
    assert error < 1e-3, f'{error} px'  # float32 points: about 1e-4 px
    np.testing.assert_array_equal(np.stack([row, col], 1), sample['pixel'])
    # ... and picks up its colour (the points' colours come from the decoded JPEG, as the toolbox reads it)
    np.testing.assert_allclose(sample['image'][row, col] / 255.0, sample['points'][:, 3:], atol=1e-6)
    # The 1-based origin matters: with 0 every point lands one pixel off diagonally.
    _, _, row0, col0, _ = project_to_image(sample['points'], projection, sample['image_hw'], pixel_origin=0)
    assert (row0 == row + 1).mean() > 0.99 and (col0 == col + 1).mean() > 0.99


def test_custom_calibrations_project_like_sunrgbd():
    """Custom data's cam2img (0-based) + lidar2cam, or lidar2img, give the same pixels as SUN RGB-D's form."""
    sample = render_sunrgbd_sample(seed=0, index=3, num_points=500)
    k0 = sample['K'].copy()
    k0[:2, 2] -= 1.0  # MATLAB 1-based principal point -> 0-based
    lidar2cam = np.eye(4)
    lidar2cam[:3, :3] = DEPTH_TO_CAMERA_AXES @ sample['Rtilt'].T
    cam2img = np.eye(4)
    cam2img[:3, :3] = k0
    for projection in (camera_projection(cam2img, lidar2cam, 's'), lidar_projection(cam2img @ lidar2cam, 's')):
        _, _, row, col, inside = project_to_image(sample['points'], projection, sample['image_hw'], pixel_origin=0)
        assert inside.all()
        np.testing.assert_array_equal(np.stack([row, col], 1), sample['pixel'])
    with pytest.raises(CalibrationError, match='s: singular calibration'):
        camera_projection(np.zeros((3, 3)), lidar2cam, 's')
    with pytest.raises(CalibrationError, match='s: lidar2img .* is singular'):
        lidar_projection(np.zeros((4, 4)), 's')


def test_real_mmdet3d_sunrgbd_sample_colours_match_the_image():
    """mmdet3d's demo sample 000017 (real SUN RGB-D, K @ R form): each point's colour is its pixel's colour."""
    cam, points = _real_sample('sunrgbd_demo', '000017')
    projection, form = sunrgbd_projection(cam['depth2img'], '000017')
    assert form == 'K@R'
    image = _image(os.path.join(FIXTURES, 'sunrgbd_demo', 'sunrgbd_trainval', 'image', cam['img_path']))
    assert image.shape[:2] == (cam['height'], cam['width'])
    u, v, row, col, inside = project_to_image(points, projection, image.shape[:2], pixel_origin=1)
    assert inside.all()
    assert np.abs(u - np.rint(u)).max() < 0.01 and np.abs(v - np.rint(v)).max() < 0.01  # pixel centres
    assert np.abs(image[row, col] / 255.0 - points[:, 3:]).max() < 1e-6
    _, _, row0, col0, in0 = project_to_image(points, projection, image.shape[:2], pixel_origin=0)
    assert np.abs(image[row0[in0], col0[in0]] / 255.0 - points[in0, 3:]).mean() > 0.01


def test_transposed_k_of_v0_infos_is_factorised_back():
    """mmdet3d's tests/data/sunrgbd fixture stores depth2img = K.T @ F @ Rtilt.T (v0.x calib['K'] was
    transposed). Factorised, it gives SUN RGB-D's kv2 intrinsics and puts every point on a pixel centre."""
    cam, points = _real_sample('sunrgbd', '000001')
    projection, form = sunrgbd_projection(cam['depth2img'], '000001')
    assert form == 'K.T@R'
    m = projection[:, :3]
    rot = m[2]  # third row of K @ R is R's third row
    assert abs(np.linalg.norm(rot) - 1) < 1e-5
    fx, cx = np.linalg.norm(m[0] - m[0] @ rot * rot), m[0] @ rot
    fy, cy = np.linalg.norm(m[1] - m[1] @ rot * rot), m[1] @ rot
    # (the stored Rtilt has 5-6 decimals, so the recovered intrinsics are exact to a few hundredths of a pixel)
    np.testing.assert_allclose([fx, fy, cx, cy], [529.5, 529.5, 365.0, 265.0], atol=0.05)
    u, v, _, _, inside = project_to_image(points, projection, (cam['height'], cam['width']), pixel_origin=1)
    assert inside.all()
    assert np.abs(u - np.rint(u)).max() < 0.02 and np.abs(v - np.rint(v)).max() < 0.02


@pytest.mark.parametrize('matrix, problem', [
    (np.zeros((3, 3)), 'singular'),
    (np.diag([500., 500., 0.]), 'singular'),
    (np.diag([500., 500., -1.]), 'negative determinant'),
    (np.array([[500., 0, 300], [0, 500, 200], [0, 0, 3]]), 'neither K @ R'),
    (np.full((3, 3), np.nan), 'NaN'),
    (np.eye(4), 'must have shape'),
])
def test_bad_calibration_names_the_sample(matrix, problem):
    with pytest.raises(CalibrationError, match=f'sample 000042: .*{problem}'):
        sunrgbd_projection(matrix, 'sample 000042')


def test_single_image_segments_take_the_region_under_each_point():
    k = np.array([[100., 0., 50.], [0., 100., 40.], [0., 0., 1.]])
    projection = np.concatenate([k, np.zeros((3, 1))], 1)
    # pixels (row, col) = (40, 50), (10, 90), (40, 50) behind the camera, far left outside, (79, 0)
    points = np.array([[0., 0., 2.], [0.4, -0.3, 1.], [0., 0., -2.], [-3., 0., 1.], [-0.5, 0.39, 1.]])
    region_map = np.zeros((80, 100), np.int32)
    region_map[30:50, 40:60] = 3
    region_map[0:20, 80:100] = 5
    region_map[79, 0] = 7
    labels = single_image_segments(points, region_map, projection, (80, 100))
    np.testing.assert_array_equal(labels, [0, 1, -1, -1, 2])
    # the same from a half-size region map (pixel-centre scaling)
    half = region_map[::2, ::2]
    np.testing.assert_array_equal(single_image_segments(points, half, projection, (80, 100))[:2], [0, 1])
