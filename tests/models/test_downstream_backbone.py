"""SamMtpPointBackbone and LoadSceneSegments: the output dict against brute force, padding, the segment column,
mmdet3d's GroupFree3D / EncoderDecoder3D and our 3DETR on top of it, and clear errors for bad input."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet3d.registry import MODELS, TRANSFORMS
from mmdet3d.structures import DepthInstance3DBoxes, DepthPoints, Det3DDataSample, PointData
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import projects.sam_mtp  # noqa: F401  (registers modules, installs the CPU point-op fallbacks)
import projects.sam_mtp.datasets.random_cuboid  # noqa: F401
import projects.sam_mtp.datasets.scene_segments  # noqa: F401
import projects.sam_mtp.models.backbones  # noqa: F401
import projects.sam_mtp.models.detectors  # noqa: F401
import projects.sam_mtp.models.heads  # noqa: F401
from projects.sam_mtp.models.backbones.downstream_backbone import fill_padded_tokens

init_default_scope('mmdet3d')

NUM_CLASSES = 3
ENCODER = dict(type='PlainPointTransformer', embed_dims=32, num_layers=2, num_heads=4, drop_path_rate=0.0,
               pointnet_channels=(16, 32, 32), pos_hidden_dims=16)
SAM_TOKENIZER = dict(type='SAMGuidedTokenizer', num_points_per_token=16, min_points=8, max_tokens=24,
                     max_fallback_tokens=8, fallback_size=32)
# Boxes (x, y, z, dx, dy, dz) of the test room; box k is segment k, the floor segment 3.
BOXES = np.array([[1.0, 1.0, 0.5, 0.8, 0.6, 1.0], [2.8, 1.4, 0.4, 1.0, 0.8, 0.8], [1.8, 3.0, 0.3, 0.6, 1.2, 0.6]],
                 dtype=np.float32)


def room(seed, num_points=600, num_boxes=3, unassigned=0.1):
    """Points (N, 3), per-point segment id (-1 = none), instance id (0 = floor) and semantic class.

    A 4 m x 4 m floor plus points filling ``num_boxes`` boxes; a fraction ``unassigned`` of the points has no
    segment. Points are shuffled.
    """
    rng = np.random.default_rng(seed)
    num_floor = num_points // 3 if num_boxes else num_points
    parts = [np.c_[rng.uniform(0, 4, (num_floor, 2)), np.zeros(num_floor)]]
    instance = [np.zeros(num_floor, np.int64)]
    for k, idx in enumerate(np.array_split(np.arange(num_points - num_floor), num_boxes) if num_boxes else []):
        parts.append(rng.uniform(-0.5, 0.5, (len(idx), 3)) * BOXES[k, 3:] + BOXES[k, :3])
        instance.append(np.full(len(idx), k + 1))
    xyz, instance = np.concatenate(parts).astype(np.float32), np.concatenate(instance)
    segment = np.where(instance > 0, instance - 1, 3)
    segment[rng.random(num_points) < unassigned] = -1
    semantic = np.where(instance > 0, instance - 1, NUM_CLASSES)  # box k has class k, floor is "no class"
    order = rng.permutation(num_points)
    return xyz[order], segment[order], instance[order], semantic[order]


def with_segments(xyz, segment, extra=None):
    """(N, 3 + 1 [+ C]) float tensor: xyz, segment id, extra columns."""
    cols = [torch.from_numpy(xyz), torch.from_numpy(segment).float()[:, None]]
    if extra is not None:
        cols.append(extra)
    return torch.cat(cols, dim=1)


def build_backbone(seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = dict(type='SamMtpPointBackbone', tokenizer=SAM_TOKENIZER, encoder=ENCODER, segment_channel=3)
    cfg.update(kwargs)
    return MODELS.build(cfg)


# ------------------------------------------------------------------------------------------------ output dict
def test_fps_tokens_output_layout_matches_pointnet2_sassg():
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(2, 300, 6, generator=gen)
    model = build_backbone(tokenizer=dict(type='FPSKNNTokenizer', num_tokens=32, num_points_per_token=8),
                           segment_channel=None, out_channels=20).eval()
    with torch.no_grad():
        out = model(points)
    xyz, feats, idx = out['fp_xyz'][-1], out['fp_features'][-1], out['fp_indices'][-1]
    assert xyz.shape == (2, 32, 3) and feats.shape == (2, 20, 32) and idx.shape == (2, 32) and idx.dtype == torch.long
    # FPS tokens: the representative input point of a token is its centre point itself.
    torch.testing.assert_close(torch.gather(points[..., :3], 1, idx[..., None].expand(-1, -1, 3)), xyz)
    assert not out['padding_mask'].any() and out['padding_mask'].dtype == torch.bool
    # PointNet2SASSG's layout: level 0 is the input, the last level the tokens.
    torch.testing.assert_close(out['sa_xyz'][0], points[..., :3])
    torch.testing.assert_close(out['sa_features'][0], points[..., 3:].transpose(1, 2))
    assert torch.equal(out['sa_indices'][0], torch.arange(300).expand(2, -1))
    assert out['sa_xyz'][-1] is xyz and out['sa_features'][-1] is feats and out['sa_indices'][-1] is idx
    assert model.out_proj is not None and model.out_channels == 20


def test_xyz_only_input_has_no_point_features():
    model = build_backbone(tokenizer=dict(type='FPSKNNTokenizer', num_tokens=8, num_points_per_token=4),
                           segment_channel=None)
    out = model(torch.rand(1, 50, 3))
    assert out['sa_features'][0] is None and out['fp_features'][-1].shape == (1, 32, 8) and model.out_proj is None


def test_segment_column_becomes_the_tokenizer_regions():
    xyz, segment, _, _ = room(1)
    colour = torch.rand(len(xyz), 3, generator=torch.Generator().manual_seed(1))
    points = with_segments(xyz, segment, colour)[None]
    model = build_backbone().eval()
    seen = {}
    original = model.tokenizer.forward

    def spy(p, region):
        seen['points'], seen['region'] = p, region
        return original(p, region)

    model.tokenizer.forward = spy
    with torch.no_grad():
        out = model(points)
    torch.testing.assert_close(seen['points'], points[..., :3])
    assert torch.equal(seen['region'][0], torch.from_numpy(np.where(segment >= 0, segment + 1, 0)))
    # The segment id is not a point feature; colour is.
    torch.testing.assert_close(out['sa_features'][0], colour.T[None])
    # One token per segment (>= min_points): every point of token t carries its segment, and the 4 segments of
    # the room are 4 tokens.
    token = out['point_token'][0]
    real = ~out['padding_mask'][0]
    for t in range(int(real.sum())):
        members = segment[(token == t).numpy()]
        assert len(members) and len(set(members.tolist())) == 1
    assert {int(s) for s in segment[(token >= 0).numpy()] if s >= 0} == {0, 1, 2, 3}


def test_representatives_are_the_members_nearest_to_the_centre():
    xyz, segment, _, _ = room(2, num_points=500)
    model = build_backbone().eval()
    with torch.no_grad():
        out = model(with_segments(xyz, segment)[None])
    token, centres, idx = out['point_token'][0].numpy(), out['fp_xyz'][-1][0].numpy(), out['fp_indices'][-1][0]
    for t in range(int((~out['padding_mask'][0]).sum())):
        members = np.flatnonzero(token == t)
        dist = ((xyz[members] - centres[t]) ** 2).sum(1)
        expected = members[np.flatnonzero(dist == dist.min())[0]]  # ties: lowest index
        assert int(idx[t]) == expected


def test_padded_slots_repeat_real_tokens_and_never_change_them():
    small = room(3, num_points=400, num_boxes=1, unassigned=0.0)   # 2 segments
    large = room(4, num_points=400, num_boxes=3, unassigned=0.0)   # 4 segments
    model = build_backbone(tokenizer=dict(SAM_TOKENIZER, max_tokens=10), num_output_tokens=10).eval()
    with torch.no_grad():
        alone = model(with_segments(small[0], small[1])[None])
        both = model(torch.stack([with_segments(small[0], small[1]), with_segments(large[0], large[1])]))
    assert both['padding_mask'].sum(1).tolist() == [8, 6] and both['fp_xyz'][-1].shape == (2, 10, 3)
    for key in ('fp_xyz', 'fp_features', 'fp_indices'):
        # A scene's real tokens do not depend on the other scenes of the batch (padding never leaks) ...
        torch.testing.assert_close(both[key][-1][:1], alone[key][-1])
    # ... and padded slot j holds a copy of real slot j mod (number of real tokens).
    for b, count in enumerate((2, 4)):
        source = torch.arange(10) % count
        torch.testing.assert_close(both['fp_xyz'][-1][b], both['fp_xyz'][-1][b, source])
        torch.testing.assert_close(both['fp_features'][-1][b], both['fp_features'][-1][b][:, source])
        assert torch.equal(both['fp_indices'][-1][b], both['fp_indices'][-1][b, source])


def test_cyclic_fill_multiplicities():
    mask = torch.tensor([[False] * 3 + [True] * 5, [False] * 8])
    source, padding = fill_padded_tokens(mask, num_slots=10)
    counts = torch.stack([torch.bincount(s, minlength=8) for s in source])
    assert counts[0, :3].tolist() == [4, 3, 3] and counts[0, 3:].sum() == 0   # floor/ceil of 10 / 3
    assert counts[1].tolist() == [2, 2] + [1] * 6
    assert padding.sum(1).tolist() == [7, 2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA: compares mmcv kernels with the CPU path')
def test_cuda_forward_matches_cpu():
    gen = torch.Generator().manual_seed(10)
    points = torch.rand(2, 500, 4, generator=gen)
    points[..., 3] = torch.randint(-1, 5, (2, 500), generator=gen).float()
    for tokenizer in (dict(type='FPSKNNTokenizer', num_tokens=32, num_points_per_token=8), SAM_TOKENIZER):
        model = build_backbone(tokenizer=tokenizer, num_output_tokens=32).eval()
        with torch.no_grad():
            cpu = model(points)
            gpu = model.cuda()(points.cuda())
        for key in ('fp_xyz', 'fp_features', 'fp_indices'):
            torch.testing.assert_close(gpu[key][-1].cpu(), cpu[key][-1], atol=1e-4, rtol=1e-4)
        assert torch.equal(gpu['padding_mask'].cpu(), cpu['padding_mask'])


# ------------------------------------------------------------------------------------------------ heads
def groupfree3d_cfg(backbone):
    dims = 32
    # ConfigDict as under the runner: GroupFree3DHead reads train_cfg.sample_mode as an attribute.
    return ConfigDict(
        type='GroupFree3DNet',
        data_preprocessor=dict(type='Det3DDataPreprocessor'),
        backbone=backbone,
        bbox_head=dict(
            type='GroupFree3DHead', num_classes=NUM_CLASSES, in_channels=dims, num_decoder_layers=1,
            num_proposal=8, size_cls_agnostic=False,
            bbox_coder=dict(type='GroupFree3DBBoxCoder', num_sizes=NUM_CLASSES, num_dir_bins=1, with_rot=False,
                            size_cls_agnostic=False, mean_sizes=BOXES[:, 3:].tolist()),
            transformerlayers=dict(
                type='BaseTransformerLayer',
                attn_cfgs=dict(type='GroupFree3DMHA', embed_dims=dims, num_heads=4, attn_drop=0.0,
                               dropout_layer=dict(type='Dropout', drop_prob=0.0)),
                ffn_cfgs=dict(embed_dims=dims, feedforward_channels=64, ffn_drop=0.0),
                operation_order=('self_attn', 'norm', 'cross_attn', 'norm', 'ffn', 'norm')),
            decoder_self_posembeds=dict(type='ConvBNPositionalEncoding', input_channel=6, num_pos_feats=dims),
            decoder_cross_posembeds=dict(type='ConvBNPositionalEncoding', input_channel=3, num_pos_feats=dims),
            pred_layer_cfg=dict(in_channels=dims, shared_conv_channels=(dims, dims), bias=True),
            sampling_objectness_loss=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                          loss_weight=8.0),
            objectness_loss=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            center_loss=dict(type='mmdet.SmoothL1Loss', reduction='sum', loss_weight=10.0),
            dir_class_loss=dict(type='mmdet.CrossEntropyLoss', reduction='sum', loss_weight=1.0),
            dir_res_loss=dict(type='mmdet.SmoothL1Loss', reduction='sum', loss_weight=10.0),
            size_class_loss=dict(type='mmdet.CrossEntropyLoss', reduction='sum', loss_weight=1.0),
            size_res_loss=dict(type='mmdet.SmoothL1Loss', reduction='sum', loss_weight=10.0),
            semantic_loss=dict(type='mmdet.CrossEntropyLoss', reduction='sum', loss_weight=1.0)),
        train_cfg=dict(sample_mode='kps'),
        test_cfg=dict(sample_mode='kps', nms_thr=0.25, score_thr=0.0, per_class_proposal=True,
                      prediction_stages='last'))


def threedetr_cfg(backbone):
    return dict(
        type='ThreeDETR',
        data_preprocessor=dict(type='Det3DDataPreprocessor'),
        backbone=backbone,
        bbox_head=dict(type='ThreeDETRHead', num_classes=NUM_CLASSES, in_channels=32, num_queries=8,
                       query_source='tokens', embed_dims=32, num_decoder_layers=2, num_heads=4,
                       feedforward_channels=32, mlp_channels=(32, 32), dropout=0.0, mlp_dropout=0.0),
        train_cfg=dict(assigner=dict(type='mmdet.HungarianAssigner',
                                     match_costs=[dict(type='mmdet.ClassificationCost', weight=1.0),
                                                  dict(type='BBox3DGIoUCost', weight=2.0)])),
        test_cfg=dict(empty_box_min_points=0))


def detection_batch(seeds, num_boxes=(3, 3)):
    points, samples = [], []
    for seed, n in zip(seeds, num_boxes):
        xyz, segment, instance, semantic = room(seed, num_points=600, num_boxes=n)
        points.append(with_segments(xyz, segment))
        sample = Det3DDataSample()
        sample.set_metainfo(dict(box_type_3d=DepthInstance3DBoxes))
        boxes = torch.from_numpy(np.c_[BOXES[:n], np.zeros((n, 1), np.float32)]) if n else torch.zeros(0, 7)
        sample.gt_instances_3d = InstanceData(
            bboxes_3d=DepthInstance3DBoxes(boxes, box_dim=7, with_yaw=False, origin=(0.5, 0.5, 0.5)),
            labels_3d=torch.arange(n))
        sample.gt_pts_seg = PointData(pts_instance_mask=torch.from_numpy(instance),
                                      pts_semantic_mask=torch.from_numpy(semantic))
        samples.append(sample)
    return dict(inputs=dict(points=points), data_samples=samples)


def loss_and_predict(model, data):
    model.train()
    batch = model.data_preprocessor(data, training=True)
    losses = model(**batch, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k and torch.is_tensor(v))
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.backbone.encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads), 'no gradient reached the pretrained encoder'
    model.eval()
    with torch.no_grad():
        return model(**model.data_preprocessor(data, training=False), mode='predict')


@pytest.mark.parametrize('num_boxes', [(3, 3), (2, 0)], ids=['boxes', 'scene-without-boxes'])
def test_groupfree3d_trains_and_predicts_on_sam_tokens(num_boxes):
    backbone = dict(type='SamMtpPointBackbone', tokenizer=SAM_TOKENIZER, encoder=ENCODER, in_channels=4,
                    segment_channel=3, num_output_tokens=24)
    # Untrained, GroupFree3D may place every box on <= 5 points and drop them all (seeds 0, 1 and 4 do since the
    # encoder has Bridge3D's initialisation); seed 2 gives non-empty boxes in both cases.
    torch.manual_seed(2)
    model = MODELS.build(groupfree3d_cfg(backbone))
    results = loss_and_predict(model, detection_batch([5, 6], num_boxes))
    assert len(results) == 2 and all(len(r.pred_instances_3d.scores_3d) > 0 for r in results)


@pytest.mark.parametrize('num_boxes', [(3, 3), (2, 0)], ids=['boxes', 'scene-without-boxes'])
def test_threedetr_trains_and_predicts_on_sam_tokens(num_boxes):
    backbone = dict(type='SamMtpPointBackbone', tokenizer=SAM_TOKENIZER, encoder=ENCODER, in_channels=4,
                    segment_channel=3)
    torch.manual_seed(0)
    model = MODELS.build(threedetr_cfg(backbone))
    results = loss_and_predict(model, detection_batch([5, 6], num_boxes))
    assert len(results) == 2 and all(hasattr(r.pred_instances_3d, 'bboxes_3d') for r in results)


def test_fewer_points_than_fps_tokens_are_padded_not_crashing_the_head():
    """A scene with fewer points than the FPS token count gets one token per point; num_output_tokens pads the
    slots with copies so that GroupFree3D's top-k over num_proposal seeds still works (documented)."""
    backbone = dict(type='SamMtpPointBackbone', tokenizer=dict(type='FPSKNNTokenizer', num_tokens=64,
                                                               num_points_per_token=8),
                    encoder=ENCODER, num_output_tokens=64)
    torch.manual_seed(0)
    model = MODELS.build(groupfree3d_cfg(backbone)).eval()
    xyz, _, instance, semantic = room(7, num_points=20, num_boxes=1, unassigned=0.0)
    with torch.no_grad():
        out = model.backbone(torch.from_numpy(xyz)[None])
        assert int((~out['padding_mask']).sum()) == 20 and out['fp_xyz'][-1].shape == (1, 64, 3)
        data = dict(inputs=dict(points=[torch.from_numpy(xyz)]), data_samples=[Det3DDataSample(
            metainfo=dict(box_type_3d=DepthInstance3DBoxes))])
        results = model(**model.data_preprocessor(data, training=False), mode='predict')
    # GroupFree3D drops boxes holding <= 5 points, so 20 points may give no box; the call must just complete.
    assert results[0].pred_instances_3d.bboxes_3d.tensor.shape[1] == 7


def test_encoder_decoder_segments_every_point():
    xyz, segment, _, semantic = room(8, num_points=500)
    colour = torch.rand(len(xyz), 3, generator=torch.Generator().manual_seed(8))
    cfg = ConfigDict(
        type='EncoderDecoder3D',
        data_preprocessor=dict(type='Det3DDataPreprocessor'),
        backbone=dict(type='SamMtpPointBackbone', tokenizer=SAM_TOKENIZER, encoder=ENCODER, in_channels=7,
                      segment_channel=3, num_output_tokens=24),
        decode_head=dict(type='TokenInterpolationSegHead', in_channels=32, point_channels=3, mlp_channels=(32, ),
                         num_classes=NUM_CLASSES + 1, ignore_index=NUM_CLASSES + 1, dropout_ratio=0.0,
                         loss_decode=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    sample = Det3DDataSample()
    sample.gt_pts_seg = PointData(pts_semantic_mask=torch.from_numpy(semantic))
    data = dict(inputs=dict(points=[with_segments(xyz, segment, colour)]), data_samples=[sample])
    results = loss_and_predict(model, data)
    pred = results[0].pred_pts_seg.pts_semantic_mask
    assert pred.shape == (500, ) and int(pred.max()) <= NUM_CLASSES


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match='needs the scene-segment column'):
        build_backbone(segment_channel=None)
    with pytest.raises(ValueError, match='segment_channel must be a non-negative column after xyz'):
        build_backbone(segment_channel=-1)
    with pytest.raises(ValueError, match='outside in_channels'):
        build_backbone(in_channels=4, segment_channel=4)
    with pytest.raises(ValueError, match='num_output_tokens must be >= 1'):
        build_backbone(num_output_tokens=0)
    with pytest.raises(ValueError, match='makes up to 24 tokens but num_output_tokens=10'):
        build_backbone(num_output_tokens=10)


def test_bad_inputs_raise_clear_errors():
    xyz, segment, _, _ = room(9, num_points=300)
    points = with_segments(xyz, segment)[None]
    with pytest.raises(ValueError, match='expected in_channels=7 point columns, got 4'):
        build_backbone(in_channels=7)(points)
    with pytest.raises(ValueError, match=r'segment_channel=3 but the points have only 3 columns'):
        build_backbone()(points[..., :3])
    with pytest.raises(ValueError, match='does not hold segment ids'):
        build_backbone()(torch.cat([points[..., :3], points[..., 3:] + 0.5], dim=-1))
    with pytest.raises(ValueError, match=r'must be \(B, N, D >= 3\)'):
        build_backbone()(points[0])
    model = build_backbone(num_output_tokens=24)
    model.num_output_tokens = 2  # a tokenizer without a known cap is only checked at run time
    with pytest.raises(ValueError, match='made .* tokens for a scene but num_output_tokens=2'):
        model(points)
    # Every point unassigned and too few of them for a fallback token: no token at all.
    none = with_segments(xyz[:5], np.full(5, -1))[None]
    with pytest.raises(ValueError, match=r'scene\(s\) \[0\] of the batch have no token'):
        build_backbone()(none)


# ------------------------------------------------------------------------------------------------ transform
def write_scene(root, name, xyz, segments=None, colour=None):
    """mmdet3d's points/<name>.bin (float32 x 6) and optionally scene_segments/<name>.bin (int64)."""
    (root / 'points').mkdir(exist_ok=True)
    colour = np.zeros_like(xyz) if colour is None else colour
    np.c_[xyz, colour].astype(np.float32).tofile(root / 'points' / f'{name}.bin')
    if segments is not None:
        (root / 'scene_segments').mkdir(exist_ok=True)
        np.asarray(segments, np.int64).tofile(root / 'scene_segments' / f'{name}.bin')
    return dict(lidar_points=dict(lidar_path=str(root / 'points' / f'{name}.bin')))


def load(results, use_dim=(0, 1, 2), **kwargs):
    results = TRANSFORMS.build(dict(type='LoadPointsFromFile', coord_type='DEPTH', load_dim=6,
                                    use_dim=list(use_dim), use_color=len(use_dim) == 6))(results)
    return TRANSFORMS.build(dict(type='LoadSceneSegments', **kwargs))(results)


def test_load_scene_segments_appends_a_segment_column(tmp_path):
    rng = np.random.default_rng(0)
    xyz, segments = rng.random((50, 3)), rng.integers(-1, 6, 50)
    out = load(write_scene(tmp_path, 'scene0000_00', xyz, segments), use_dim=(0, 1, 2, 3, 4, 5))
    points = out['points']
    assert points.tensor.shape == (50, 7) and points.attribute_dims['segment'] == 6
    assert points.attribute_dims['color'] == [3, 4, 5]  # existing attributes are kept
    assert np.array_equal(points.tensor[:, 6].numpy().astype(np.int64), segments)
    # An explicit folder works as well.
    other = tmp_path / 'elsewhere'
    other.mkdir()
    np.zeros(50, np.int64).tofile(other / 'scene0000_00.bin')
    out = load(write_scene(tmp_path, 'scene0000_00', xyz), segment_dir=str(other))
    assert out['points'].tensor.shape == (50, 4) and not out['points'].tensor[:, 3].any()


def test_segment_column_follows_points_through_mmdet3d_transforms(tmp_path):
    """Colour columns carry each point's original xyz; after rotation, flips and sampling every point's segment
    must still be the one of the original point with that xyz."""
    rng = np.random.default_rng(1)
    xyz = rng.uniform(-2, 2, (400, 3))
    segments = np.arange(400)  # unique ids identify the original point
    results = load(write_scene(tmp_path, 'scene0001_00', xyz, segments, colour=xyz), use_dim=(0, 1, 2, 3, 4, 5))
    np.random.seed(0)
    for t in (dict(type='GlobalRotScaleTrans', rot_range=[-0.5, 0.5], scale_ratio_range=[0.9, 1.1]),
              dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=1.0, flip_ratio_bev_vertical=1.0),
              dict(type='PointSample', num_points=256),
              dict(type='RandomCuboidCrop', min_points=50, prob=1.0)):
        results = TRANSFORMS.build(t)(results)
    tensor = results['points'].tensor.numpy()
    moved = not np.allclose(tensor[:, :3], tensor[:, 3:6], atol=1e-4)
    ids = tensor[:, 6].astype(np.int64)
    assert moved and 50 <= len(ids) <= 256
    np.testing.assert_allclose(tensor[:, 3:6], xyz[ids], atol=1e-5)


def test_load_scene_segments_errors_name_the_file(tmp_path):
    xyz = np.random.default_rng(2).random((30, 3))
    with pytest.raises(FileNotFoundError, match=r'scene_segments.scene0002_00\.bin: scene segment file does not '):
        load(write_scene(tmp_path, 'scene0002_00', xyz))
    out = load(write_scene(tmp_path, 'scene0002_00', xyz), allow_missing=True)
    assert (out['points'].tensor[:, 3] == -1).all()
    with pytest.raises(ValueError, match=r'scene0003_00\.bin: has 29 segment ids but the scene has 30 points'):
        load(write_scene(tmp_path, 'scene0003_00', xyz, np.zeros(29)))
    with pytest.raises(ValueError, match=r'scene0004_00\.bin: segment ids must lie in \[-1, '):
        load(write_scene(tmp_path, 'scene0004_00', xyz, np.full(30, -2)))
    path = write_scene(tmp_path, 'scene0005_00', xyz, np.zeros(30))
    with open(osp.join(tmp_path, 'scene_segments', 'scene0005_00.bin'), 'ab') as f:
        f.write(b'\0')
    with pytest.raises(ValueError, match=r'scene0005_00\.bin: size 241 bytes is not a multiple of 8'):
        load(path)
    twice = load(write_scene(tmp_path, 'scene0006_00', xyz, np.zeros(30)))
    with pytest.raises(ValueError, match='appears twice'):
        TRANSFORMS.build(dict(type='LoadSceneSegments'))(twice)
    with pytest.raises(KeyError, match='put LoadPointsFromFile first'):
        TRANSFORMS.build(dict(type='LoadSceneSegments'))(dict(lidar_points=dict(lidar_path='x.bin')))


def test_points_in_the_transform_are_depth_points(tmp_path):
    out = load(write_scene(tmp_path, 'scene0007_00', np.zeros((4, 3)), np.arange(4)))
    assert isinstance(out['points'], DepthPoints) and math.isclose(float(out['points'].tensor[3, 3]), 3.0)
