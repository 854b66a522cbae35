"""The colour control (projects/sam_mtp/demo/controls.py) on hand-made frames: per-object features are the mean over
frames of each frame's in-object mean, the class is the pixels' majority, and the linear layer's accuracy and the
majority baseline are counted as computed here."""
import cv2
import numpy as np
import pytest

from projects.sam_mtp.demo.controls import classify_objects, object_features, rgb_grid
from projects.sam_mtp.labels.formats.frames import FrameRecord

H, W = 6, 8


def _frame(scene_dir, stem, rgb, instance, label):
    for folder in ('color', 'instance', 'label'):
        (scene_dir / folder).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(scene_dir / 'color' / f'{stem}.png'), np.ascontiguousarray(rgb[:, :, ::-1]))
    cv2.imwrite(str(scene_dir / 'instance' / f'{stem}.png'), instance.astype(np.uint16))
    cv2.imwrite(str(scene_dir / 'label' / f'{stem}.png'), label.astype(np.uint16))
    return FrameRecord(scene_dir.name, int(stem), str(scene_dir), 'export', str(scene_dir / 'color' / f'{stem}.png'),
                       '', '')


def test_object_features_average_frames_not_pixels_and_take_the_majority_class(tmp_path):
    scene = tmp_path / 'scene0000_00'
    rgb0 = np.zeros((H, W, 3), np.uint8)
    inst0 = np.zeros((H, W), np.int64)
    lab0 = np.zeros((H, W), np.int64)
    inst0[:2, :2] = 1                      # object 1: 4 pixels, red 200 in frame 0
    rgb0[:2, :2] = (200, 0, 0)
    lab0[:2, :2] = 5
    lab0[0, 0] = 7                         # one of its pixels says class 7: the majority (5) wins
    inst0[4:, 4:] = 2                      # object 2: 8 pixels, two colours
    rgb0[4:, 4:] = (0, 0, 100)
    rgb0[4:, 4:6] = (0, 0, 40)
    lab0[4:, 4:] = 9
    rgb1 = np.zeros((H, W, 3), np.uint8)
    inst1 = np.zeros((H, W), np.int64)
    lab1 = np.zeros((H, W), np.int64)
    inst1[:, :4] = 1                       # object 1 again: 24 pixels, red 100 in frame 1
    rgb1[:, :4] = (100, 0, 0)
    lab1[:, :4] = 5
    records = [_frame(scene, '0', rgb0, inst0, lab0), _frame(scene, '25', rgb1, inst1, lab1)]
    out = object_features(records, rgb_grid)
    assert out['keys'].tolist() == [[0, 1], [0, 2]]
    assert out['classes'].tolist() == [5, 9]
    # object 1: mean of the two frames' means (200 and 100), not the pixel-weighted (4*200 + 24*100) / 28
    np.testing.assert_allclose(out['features'][0], [150.0, 0.0, 0.0], atol=1e-4)
    # object 2 in one frame: (4 * 40 + 4 * 100) / 8 in blue
    np.testing.assert_allclose(out['features'][1], [0.0, 0.0, 70.0], atol=1e-4)


def test_classify_objects_counts_accuracy_and_the_majority_baseline():
    rng = np.random.default_rng(0)

    def objects(colours, classes):
        features = np.array(colours, float) + rng.normal(0, 1.0, (len(colours), 3))
        return dict(features=features, classes=np.array(classes))

    red, blue = (200, 0, 0), (0, 0, 200)
    train = objects([red, red, red, blue, blue], [5, 5, 5, 7, 7])
    # the last val object is class 7 in class 5's colour: wrongly predicted
    val = objects([red, blue, blue, red], [5, 7, 7, 7])
    out = classify_objects(train, val)
    assert out['accuracy'] == pytest.approx(3 / 4)
    assert out['majority_accuracy'] == pytest.approx(1 / 4)  # always class 5, the training majority
    assert out['val_majority_share'] == pytest.approx(3 / 4)  # class 7 in val
    assert (out['train_objects'], out['val_objects'], out['classes']) == (5, 4, [5, 7])
