"""The demo's class-embedding stand-in feature source: class signal, determinism, errors, generator wiring."""
import os

import cv2
import numpy as np
import pytest
import torch

from projects.sam_mtp.labels.formats.frames import FrameError, FrameRecord
from projects.sam_mtp.labels.sources.feature_sources import ClassEmbeddingFeatureSource


def _record(tmp_path, labels, stem='25'):
    scene_dir = tmp_path / 'scene0000_00'
    (scene_dir / 'label').mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(scene_dir / 'label' / f'{stem}.png'), labels.astype(np.uint16))
    return FrameRecord(scene='scene0000_00', frame_id=int(stem), scene_dir=str(scene_dir), layout='export',
                       color_path=str(scene_dir / 'color' / f'{stem}.jpg'),
                       depth_path=str(scene_dir / 'depth' / f'{stem}.png'),
                       pose_path=str(scene_dir / 'pose' / f'{stem}.txt'))


def test_features_are_class_embedding_plus_noise(tmp_path):
    labels = np.zeros((64, 64), np.int64)
    labels[:, 32:] = 5
    source = ClassEmbeddingFeatureSource(feature_dim=16, noise_std=0.5, stride=8, seed=3)
    feats = source(np.zeros((64, 64, 3), np.uint8), _record(tmp_path, labels))
    assert feats.shape == (16, 8, 8) and feats.dtype == torch.float32
    left, right = feats[:, :, :4].reshape(16, -1), feats[:, :, 4:].reshape(16, -1)
    # region means recover each class's embedding up to the noise averaged over 32 cells
    assert torch.allclose(left.mean(1), source.embedding[0], atol=0.35)
    assert torch.allclose(right.mean(1), source.embedding[5], atol=0.35)
    residual = torch.cat([left - source.embedding[0][:, None], right - source.embedding[5][:, None]], 1)
    assert residual.std().item() == pytest.approx(0.5, rel=0.2)


def test_deterministic_per_frame_and_different_across_frames(tmp_path):
    labels = np.full((32, 32), 2)
    source = ClassEmbeddingFeatureSource(feature_dim=8, seed=0)
    image = np.zeros((32, 32, 3), np.uint8)
    a = source(image, _record(tmp_path, labels, '0'))
    b = ClassEmbeddingFeatureSource(feature_dim=8, seed=0)(image, _record(tmp_path, labels, '0'))
    c = source(image, _record(tmp_path, labels, '25'))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_missing_label_image_names_the_file(tmp_path):
    record = _record(tmp_path, np.zeros((8, 8)))
    os.remove(os.path.join(record.scene_dir, 'label', '25.png'))
    with pytest.raises(FrameError, match=r'label.*25\.png'):
        ClassEmbeddingFeatureSource()(np.zeros((8, 8, 3), np.uint8), record)
