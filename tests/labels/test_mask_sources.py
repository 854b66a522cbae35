"""Mask sources: overlap rule, the real SAM automatic-mask path on a tiny SAM, the instance-image stand-in."""
import os

import numpy as np
import pytest
import torch

from projects.sam_mtp.labels import (
    CheckpointMismatchError,
    FrameError,
    build_label_source,
    list_frames,
    masks_to_region_map,
)
from projects.sam_mtp.labels.sources.mask_sources import build_sam, compact_region_ids
from projects.sam_mtp.testing import TINY_SAM_ARCH, build_tiny_sam, tiny_sam_source_cfg


def _paint_reference(masks):
    """Brute force: paint masks in descending area order (stable), then relabel in ascending area order."""
    areas = masks.reshape(len(masks), -1).sum(1)
    painted = np.zeros(masks.shape[1:], int)
    order = np.argsort(areas, kind='stable')
    for rank in order[::-1]:
        painted[masks[rank]] = rank + 1
    rank_of = {m: i for i, m in enumerate(order)}
    keys = sorted({rank_of[v - 1] for v in np.unique(painted) if v})
    out = np.zeros_like(painted)
    for new, key in enumerate(keys, 1):
        out[painted == order[key] + 1] = new
    return out


def test_smaller_mask_wins_and_ids_are_contiguous():
    rng = np.random.default_rng(0)
    for _ in range(20):
        masks = np.zeros((6, 12, 15), bool)
        for m in masks:
            r, c = rng.integers(0, 10), rng.integers(0, 12)
            m[r:r + rng.integers(1, 10), c:c + rng.integers(1, 12)] = True
        masks[5] = masks[4]  # an exact duplicate disappears (the earlier one keeps the pixels)
        region_map = masks_to_region_map(masks)
        assert region_map.dtype == np.int32
        np.testing.assert_array_equal(region_map, _paint_reference(masks))
        ids = np.unique(region_map[region_map > 0])
        np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    table = np.zeros((1, 8, 8), bool)
    table[0, 2:8, :] = True
    cup = np.zeros((1, 8, 8), bool)
    cup[0, 3:5, 3:5] = True
    region_map = masks_to_region_map(np.concatenate([table, cup]))
    assert region_map[4, 4] == 1 and region_map[7, 0] == 2 and region_map[0, 0] == 0
    assert masks_to_region_map(np.zeros((0, 4, 5), bool)).shape == (4, 5)
    np.testing.assert_array_equal(compact_region_ids(np.array([[0, 7], [3, 7]]), (0, )), [[0, 2], [1, 2]])


def test_sam_source_runs_segment_anything_on_a_tiny_model(tiny_sam_checkpoint):
    source = build_label_source(tiny_sam_source_cfg(tiny_sam_checkpoint))
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    region_map = source(image)
    assert region_map.shape == (48, 64) and region_map.dtype == np.int32
    assert region_map.max() >= 1  # thresholds at 0: random weights still give masks
    ids = np.unique(region_map[region_map > 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    # The loaded weights are exactly the saved ones.
    saved = torch.load(tiny_sam_checkpoint)
    for key, value in source.model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    # min_mask_region_area > 0 takes segment-anything's OpenCV post-processing path.
    source.generator.min_mask_region_area = 20
    cleaned = source(image)
    assert cleaned.shape == (48, 64) and cleaned.dtype == np.int32


def test_sam_source_without_masks_returns_an_empty_map(tiny_sam_checkpoint):
    source = build_label_source(tiny_sam_source_cfg(tiny_sam_checkpoint, pred_iou_thresh=2.0))
    region_map = source(np.zeros((32, 32, 3), np.uint8))
    assert region_map.shape == (32, 32) and region_map.max() == 0


def test_sam_checkpoint_errors(tiny_sam_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match=r'nowhere\.pth: SAM \(custom\) checkpoint does not exist'):
        build_label_source(tiny_sam_source_cfg(str(tmp_path / 'nowhere.pth')))
    state = torch.load(tiny_sam_checkpoint)
    state.pop('mask_decoder.iou_token.weight')
    state['extra.weight'] = torch.zeros(1)
    state['image_encoder.pos_embed'] = torch.zeros(1, 4, 4, 32)
    bad = str(tmp_path / 'bad.pth')
    torch.save(state, bad)
    with pytest.raises(CheckpointMismatchError) as info:
        build_label_source(tiny_sam_source_cfg(bad))
    message = str(info.value)
    assert 'bad.pth' in message and 'mask_decoder.iou_token.weight' in message and 'extra.weight' in message
    assert 'image_encoder.pos_embed: checkpoint (1, 4, 4, 32)' in message
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointMismatchError, match='garbage.pth: cannot read'):
        build_label_source(tiny_sam_source_cfg(str(garbage)))
    with pytest.raises(ValueError, match="unknown SAM model_type 'vit_x'"):
        build_sam('vit_x')
    with pytest.raises(ValueError, match='unknown SAM arch keys'):
        build_sam('custom', dict(TINY_SAM_ARCH, depth=3))


def test_builder_matches_segment_anything_sizes():
    torch.manual_seed(0)
    ours = build_sam('custom', TINY_SAM_ARCH).state_dict()
    theirs = build_tiny_sam().state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_instance_image_stand_in(synthetic_root):
    record = list_frames(os.path.join(synthetic_root, 'posed_images'), ['scene0000_00'])[1]
    source = build_label_source(dict(type='InstanceImageMaskSource'))
    import cv2
    instance = cv2.imread(os.path.join(record.scene_dir, 'instance', '25.png'), cv2.IMREAD_UNCHANGED)
    region_map = source(np.zeros((72, 96, 3), np.uint8), record)
    assert region_map.shape == (72, 96)
    # Same partition as the instance image: a bijection between instance ids and region ids.
    pairs = np.unique(np.stack([instance.ravel(), region_map.ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
    assert ((instance == 0) == (region_map == 0)).all()
    half = source(np.zeros((36, 48, 3), np.uint8), record)
    np.testing.assert_array_equal(half > 0, cv2.resize(instance, (48, 36), interpolation=cv2.INTER_NEAREST) > 0)
    os.rename(os.path.join(record.scene_dir, 'instance', '25.png'), os.path.join(record.scene_dir, 'x.png'))
    try:
        with pytest.raises(FrameError, match=r'instance/25\.png: instance image does not exist'):
            source(np.zeros((72, 96, 3), np.uint8), record)
    finally:
        os.rename(os.path.join(record.scene_dir, 'x.png'), os.path.join(record.scene_dir, 'instance', '25.png'))
