"""ThreeDETR detector and ThreeDETRHead: losses, gradients, padding, queries, prediction, errors."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from mmdet3d.structures import DepthInstance3DBoxes, Det3DDataSample
from mmengine.structures import InstanceData
from test_3detr_helpers import NUM_CLASSES, batch, detector_cfg, head_cfg, synthetic_scene

from projects.sam_mtp.models.heads.threedetr_transformer import angle_to_bin, bin_to_angle, masked_furthest_point_sample

LOSS_NAMES = ('loss_cls', 'loss_center', 'loss_size', 'loss_giou')


def build_detector(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = MODELS.build(detector_cfg(**kwargs))
    return model


def run_loss(model, data):
    data = model.data_preprocessor(data, training=True)
    return model(**data, mode='loss')


def token_feat_dict(gen, batch_size=2, num_tokens=12, channels=32, num_padded=(0, 0)):
    xyz = torch.rand(batch_size, num_tokens, 3, generator=gen) * 4
    feats = torch.randn(batch_size, channels, num_tokens, generator=gen)
    mask = torch.zeros(batch_size, num_tokens, dtype=torch.bool)
    for b, n in enumerate(num_padded):
        if n:
            mask[b, -n:] = True
    return dict(fp_xyz=[xyz], fp_features=[feats], padding_mask=mask)


def test_loss_has_every_layer_is_finite_and_reaches_decoder_and_backbone():
    model = build_detector()
    losses = run_loss(model, batch([0, 1]))
    num_layers = 3
    expected = {f'd{i}.{n}' for i in range(num_layers - 1) for n in LOSS_NAMES} | set(LOSS_NAMES)
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    head = model.bbox_head
    for i, layer in enumerate(head.decoder.layers):
        assert layer.cross_attn.in_proj_weight.grad.abs().sum() > 0
        # 3DETR queries start empty, so the first self-attention mixes zero values: no gradient there.
        assert (layer.self_attn.in_proj_weight.grad.abs().sum() > 0) == (i > 0)
    assert model.backbone.embed[0].weight.grad.abs().sum() > 0
    assert head.cls_head.layers[-1].weight.grad.abs().sum() > 0


def test_each_layer_is_matched_and_weighted_on_its_own():
    torch.manual_seed(0)
    head = MODELS.build(dict(head_cfg(), train_cfg=detector_cfg()['train_cfg']))
    gen = torch.Generator().manual_seed(1)
    feat = token_feat_dict(gen, num_tokens=20)
    points = [torch.rand(100, 3, generator=gen) * 4 for _ in range(2)]
    _, boxes, labels = synthetic_scene(0)
    gts = [InstanceData(bboxes_3d=boxes, labels_3d=labels)] * 2
    preds = head(points, feat)
    losses = head.loss_by_feat(preds, gts)
    for layer in range(3):
        sliced = {k: (v[layer:layer + 1] if k in ('cls_logits', 'center_normalized', 'size_normalized', 'centers',
                                                    'sizes', 'angles') else v) for k, v in preds.items()}
        alone = head.loss_by_feat(sliced, gts)
        prefix = '' if layer == 2 else f'd{layer}.'
        for name in LOSS_NAMES:
            torch.testing.assert_close(alone[name], losses[prefix + name])
    assert not torch.allclose(losses['d0.loss_cls'], losses['loss_cls'])


def test_classification_loss_without_objects_is_plain_no_object_cross_entropy():
    torch.manual_seed(0)
    head = MODELS.build(dict(head_cfg(no_object_weight=0.25), train_cfg=detector_cfg()['train_cfg']))
    gen = torch.Generator().manual_seed(2)
    feat = token_feat_dict(gen, num_tokens=20, num_padded=(0, 6))
    points = [torch.rand(100, 3, generator=gen) * 4 for _ in range(2)]
    empty = InstanceData(bboxes_3d=DepthInstance3DBoxes(torch.zeros(0, 7)), labels_3d=torch.zeros(0).long())
    preds = head(points, feat)
    losses = head.loss_by_feat(preds, [empty, empty])
    valid = preds['query_valid']
    logits = preds['cls_logits'][-1][valid]
    expected = F.cross_entropy(logits, torch.full((len(logits), ), NUM_CLASSES))
    torch.testing.assert_close(losses['loss_cls'], expected)
    for name in ('loss_center', 'loss_size', 'loss_giou'):
        assert losses[name].item() == 0


def test_classification_loss_is_weighted_mean_with_no_object_weight():
    torch.manual_seed(0)
    head = MODELS.build(dict(head_cfg(no_object_weight=0.25), train_cfg=detector_cfg()['train_cfg']))
    gen = torch.Generator().manual_seed(3)
    feat = token_feat_dict(gen, batch_size=1, num_tokens=20)
    points = [torch.rand(100, 3, generator=gen) * 4]
    _, boxes, labels = synthetic_scene(0)
    preds = head(points, feat)
    losses = head.loss_by_feat(preds, [InstanceData(bboxes_3d=boxes, labels_3d=labels)])
    # Recover the matching of the last layer and compare with torch's class-weighted cross-entropy.
    gt = head._gt_targets(InstanceData(bboxes_3d=boxes, labels_3d=labels), preds['scene_min'][0],
                          preds['scene_max'][0], torch.device('cpu'), torch.float32)
    layer = {k: preds[k][-1][0] for k in ('cls_logits', 'center_normalized')}
    q_idx, g_idx = head._assign(layer, head.boxes_from_preds(preds)[-1][0], gt, preds['query_valid'][0])
    target = torch.full((preds['cls_logits'].shape[2], ), NUM_CLASSES)
    target[q_idx] = labels[g_idx]
    weight = torch.tensor([1.0] * NUM_CLASSES + [0.25])
    expected = F.cross_entropy(preds['cls_logits'][-1][0], target, weight=weight)
    torch.testing.assert_close(losses['loss_cls'], expected)
    assert len(q_idx) == 3 and sorted(g_idx.tolist()) == [0, 1, 2]


def test_heading_bins_add_angle_losses_and_rotated_giou():
    model = build_detector(num_angle_bins=12)
    losses = run_loss(model, batch([0, 1], yaw=True))
    assert {'loss_angle_cls', 'loss_angle_reg', 'd0.loss_angle_cls', 'd1.loss_angle_reg'} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.bbox_head.angle_reg_head.layers[-1].weight.grad.abs().sum() > 0


def test_angle_bins_round_trip():
    angles = torch.linspace(-math.pi + 1e-4, math.pi, 97, dtype=torch.float64)
    bins, residual = angle_to_bin(angles, 12)
    assert bins.min() >= 0 and bins.max() <= 11 and residual.abs().max() <= 1
    back = bin_to_angle(bins, residual, 12)
    torch.testing.assert_close(torch.atan2(torch.sin(back - angles), torch.cos(back - angles)),
                               torch.zeros_like(angles), atol=1e-9, rtol=0)


@pytest.mark.parametrize('query_source', ['fps', 'tokens'])
def test_padded_tokens_never_change_real_outputs(query_source):
    torch.manual_seed(0)
    head = MODELS.build(head_cfg(query_source=query_source, num_queries=8)).eval()
    gen = torch.Generator().manual_seed(4)
    feat = token_feat_dict(gen, num_tokens=14, num_padded=(3, 9))
    points = [torch.rand(100, 3, generator=gen) * 4 for _ in range(2)]
    changed = {k: [t.clone() for t in v] if isinstance(v, list) else v.clone() for k, v in feat.items()}
    pad = feat['padding_mask']
    changed['fp_xyz'][0][pad] = torch.rand(int(pad.sum()), 3, generator=gen) * 4
    changed['fp_features'][0].transpose(1, 2)[pad] = torch.randn(int(pad.sum()), 32, generator=gen) * 10
    with torch.no_grad():
        a, b = head(points, feat), head(points, changed)
    valid = a['query_valid']
    torch.testing.assert_close(valid, b['query_valid'])
    # Scene 1 has 5 real tokens for 8 queries: the 3 extra queries are invalid.
    assert valid.sum(1).tolist() == [8, 5]
    for key in ('cls_logits', 'centers', 'sizes'):
        torch.testing.assert_close(a[key][:, valid], b[key][:, valid])


def test_too_few_tokens_for_the_queries_is_logged_once_with_the_count(monkeypatch):
    import logging

    from projects.sam_mtp.models.heads import threedetr_head
    logged = []
    monkeypatch.setattr(threedetr_head, 'print_log', lambda msg, **kw: logged.append((msg, kw.get('level'))))
    gen = torch.Generator().manual_seed(6)
    points = [torch.rand(100, 3, generator=gen) * 4 for _ in range(2)]
    enough = MODELS.build(head_cfg(query_source='tokens', num_queries=8)).eval()
    with torch.no_grad():
        enough(points, token_feat_dict(gen, num_tokens=12, num_padded=(4, 0)))  # 8 and 12 real tokens
    assert logged == []
    few = MODELS.build(head_cfg(query_source='tokens', num_queries=8)).eval()
    with torch.no_grad():
        for _ in range(2):
            few(points, token_feat_dict(gen, num_tokens=12, num_padded=(0, 7)))  # 12 and 5 real tokens
    assert len(logged) == 1 and logged[0][1] == logging.WARNING
    assert 'a scene has 5 tokens for num_queries=8' in logged[0][0]


def test_token_queries_are_the_real_tokens_and_fps_is_greedy():
    torch.manual_seed(0)
    head = MODELS.build(head_cfg(query_source='tokens', num_queries=16)).eval()
    gen = torch.Generator().manual_seed(5)
    feat = token_feat_dict(gen, num_tokens=12, num_padded=(2, 0))
    points = [torch.rand(100, 3, generator=gen) * 4 for _ in range(2)]
    with torch.no_grad():
        preds = head(points, feat)
    assert preds['query_xyz'].shape == (2, 12, 3)  # Q = min(num_queries, M)
    real = feat['fp_xyz'][0][0, :10]
    chosen = preds['query_xyz'][0][preds['query_valid'][0]]
    assert sorted(map(tuple, chosen.tolist())) == sorted(map(tuple, real.tolist()))


def test_masked_furthest_point_sample_matches_brute_force():
    gen = torch.Generator().manual_seed(6)
    xyz = torch.rand(3, 30, 3, generator=gen)
    valid = torch.rand(3, 30, generator=gen) > 0.3
    idx = masked_furthest_point_sample(xyz, 8, valid)
    for b in range(3):
        pts, ok = xyz[b].numpy(), valid[b].numpy()
        picks = [int(np.flatnonzero(ok)[0])]
        while len(picks) < 8:
            d = np.min(((pts[:, None] - pts[picks][None]) ** 2).sum(-1), axis=1)
            d[~ok] = -1
            picks.append(int(d.argmax()))
        assert idx[b].tolist() == picks


def test_predict_returns_det3d_samples_with_boxes_scores_labels():
    model = build_detector(test_cfg=dict(empty_box_min_points=1, score_thr=0.01, max_num=20))
    model.eval()
    data = model.data_preprocessor(batch([0, 1]), training=False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert len(results) == 2
    for result in results:
        assert isinstance(result, Det3DDataSample)
        pred = result.pred_instances_3d
        assert isinstance(pred.bboxes_3d, DepthInstance3DBoxes) and not pred.bboxes_3d.with_yaw
        assert pred.bboxes_3d.tensor.shape[1] == 7
        assert len(pred.bboxes_3d) == len(pred.scores_3d) == len(pred.labels_3d) <= 20
        assert (pred.scores_3d >= 0.01).all() and (pred.labels_3d < NUM_CLASSES).all()
        assert (pred.bboxes_3d.dims > 0).all()


def test_predict_post_processing_options():
    model = build_detector()
    model.eval()
    data = model.data_preprocessor(batch([0]), training=False)
    everything = dict(empty_box_min_points=0, use_nms=False, objectness_thr=-1.0, score_thr=0.0)
    with torch.no_grad():
        raw = model(**data, mode='tensor')
        model.bbox_head.test_cfg = dict(everything, per_class_proposal=True)
        dense = model(**data, mode='predict')[0].pred_instances_3d
        model.bbox_head.test_cfg = dict(everything, per_class_proposal=False)
        single = model(**data, mode='predict')[0].pred_instances_3d
        model.bbox_head.test_cfg = dict(everything, empty_box_min_points=10 ** 6)
        fallback = model(**data, mode='predict')[0].pred_instances_3d
        model.bbox_head.test_cfg = dict(everything, objectness_thr=0.5)
        confident = model(**data, mode='predict')[0].pred_instances_3d
    probs = raw['cls_logits'][-1, 0].softmax(-1)
    objectness = 1 - probs[:, -1]
    expected = probs[:, :-1] * objectness[:, None]  # p(class) * objectness, every query and class
    num_queries = 16
    assert len(dense) == num_queries * NUM_CLASSES and len(single) == num_queries
    torch.testing.assert_close(dense.scores_3d, expected.flatten())
    torch.testing.assert_close(dense.labels_3d, torch.arange(NUM_CLASSES).repeat(num_queries))
    torch.testing.assert_close(single.scores_3d, expected.max(1).values)
    # No box holds a million points: the most confident box survives alone, once per class.
    centres = raw['centers'][-1, 0]
    assert len(fallback) == NUM_CLASSES
    torch.testing.assert_close(fallback.bboxes_3d.gravity_center, centres[objectness.argmax()].expand(3, 3))
    assert len(confident) == NUM_CLASSES * int((objectness > 0.5).sum())


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match='query_source must be one of'):
        MODELS.build(head_cfg(query_source='random'))
    torch.manual_seed(0)
    head = MODELS.build(head_cfg())
    gen = torch.Generator().manual_seed(7)
    feat = token_feat_dict(gen)
    points = [torch.rand(50, 3) for _ in range(2)]
    with pytest.raises(KeyError, match='ThreeDETRHead: the backbone output has no "fp_xyz"'):
        head(points, dict(fp_features=feat['fp_features']))
    with pytest.raises(ValueError, match='a scene has only padded tokens'):
        head(points, dict(feat, padding_mask=torch.ones(2, 12, dtype=torch.bool)))
    with pytest.raises(ValueError, match='padding_mask must be a bool'):
        head(points, dict(feat, padding_mask=torch.zeros(2, 12)))
    preds = head(points, feat)
    _, boxes, _ = synthetic_scene(0)
    with pytest.raises(RuntimeError, match='training needs train_cfg'):
        head.loss_by_feat(preds, [InstanceData(bboxes_3d=boxes, labels_3d=torch.tensor([0, 1, 2]))] * 2)
    head = MODELS.build(dict(head_cfg(), train_cfg=detector_cfg()['train_cfg']))
    with pytest.raises(ValueError, match=r'gt labels must lie in \[0, 3\)'):
        head.loss_by_feat(head(points, feat), [InstanceData(bboxes_3d=boxes, labels_3d=torch.tensor([0, 1, 3]))] * 2)
    model = build_detector()
    data = batch([0, 1])
    data['inputs']['points'][1] = data['inputs']['points'][1][:-5]
    with pytest.raises(ValueError, match='same number of points'):
        run_loss(model, data)


def test_one_heading_bin_is_3detrs_scannet_head():
    """3DETR's ScanNet (num_angle_bin = 1): both heading heads exist and are trained, the residual loss reaches the
    shared layers, and boxes stay axis-aligned with heading 0 whatever the heads output."""
    torch.manual_seed(0)
    model = build_detector(num_angle_bins=1)
    head = model.bbox_head
    assert head.angle_cls_head.out_channels == 1 and head.angle_reg_head.out_channels == 1
    losses = run_loss(model, batch([0, 1]))
    assert {'loss_angle_cls', 'loss_angle_reg', 'd0.loss_angle_cls', 'd1.loss_angle_reg'} <= set(losses)
    assert all(losses[k] == 0 for k in losses if k.endswith('loss_angle_cls'))  # one class: log-softmax is 0
    assert losses['loss_angle_reg'] > 0
    losses['loss_angle_reg'].backward()
    assert head.angle_reg_head.layers[-1].weight.grad.abs().sum() > 0
    assert head.decoder.layers[-1].ffn[0].weight.grad.abs().sum() > 0  # the shared layers see it
    gen = torch.Generator().manual_seed(5)
    feat, points = token_feat_dict(gen), [torch.rand(100, 3, generator=gen) * 4 for _ in range(2)]
    head.eval()
    with torch.no_grad():
        last = head.angle_reg_head.layers[-1]
        last.weight.zero_()
        last.bias.fill_(0.7)  # a residual of 0.7 x pi would rotate the boxes if it were used
        preds = head(points, feat)
    torch.testing.assert_close(preds['angle_residual_normalized'], torch.full_like(preds['angles'], 0.7)[..., None])
    assert (preds['angles'] == 0).all() and head.boxes_from_preds(preds).shape[-1] == 6


def test_heading_and_scene_problems_raise_clear_errors():
    # Oriented gt boxes (SUN RGB-D) with an axis-aligned head would silently learn the wrong boxes.
    model = build_detector()
    with pytest.raises(ValueError, match='gt boxes have headings .* num_angle_bins=0'):
        run_loss(model, batch([0], yaw=True))
    with pytest.raises(ValueError, match='gt boxes have headings .* num_angle_bins=1'):
        run_loss(build_detector(num_angle_bins=1), batch([0], yaw=True))
    # A scene with no points: named, instead of a min() of an empty tensor deep in the head.
    data = batch([0, 1])
    data['inputs']['points'] = [p[:0] for p in data['inputs']['points']]
    data['data_samples'][0].set_metainfo(dict(lidar_path='data/scannet/points/scene0000_00.bin'))
    with pytest.raises(ValueError, match='sample data/scannet/points/scene0000_00.bin has no points left'):
        run_loss(model, data)


def test_3detr_encoder_refuses_too_few_points_and_wrong_channels():
    encoder = MODELS.build(dict(type='ThreeDETREncoder', num_points=64, num_samples=8, sa_channels=(16, 32),
                                num_layers=1, num_heads=2, feedforward_channels=16))
    with pytest.raises(ValueError, match='a scene has 40 points but the set abstraction samples 64 centres'):
        encoder(torch.rand(1, 40, 3))
    with pytest.raises(ValueError, match=r'points must be \(B, N, in_channels=3\), got \(1, 100, 4\)'):
        encoder(torch.rand(1, 100, 4))
    with pytest.raises(ValueError, match='masking_radius needs one radius per layer'):
        MODELS.build(dict(type='ThreeDETREncoder', num_layers=3, masking_radius=(0.2, 0.4)))
    with pytest.raises(ValueError, match='downsample_cfg mlp_channels must end at the width 256'):
        MODELS.build(dict(type='ThreeDETRMaskedEncoder',
                          downsample_cfg=dict(num_point=8, radius=0.4, num_sample=8, mlp_channels=(64, 128))))



def test_a_scene_with_one_token_trains_with_running_batchnorm_statistics():
    """A batch of one scene whose segments give a single token: BatchNorm has one row, so it cannot estimate batch
    statistics. The head normalises that row with the running statistics (as in eval mode) and keeps training,
    leaving the running statistics untouched; with two rows it uses and updates the batch statistics."""
    from projects.sam_mtp.models.heads.threedetr_transformer import PointwiseMLP
    torch.manual_seed(0)
    mlp = PointwiseMLP(4, [8], 3, norm=True).train()
    norm = mlp.layers[1]
    norm.running_mean.fill_(0.5)
    norm.running_var.fill_(2.0)
    x = torch.randn(1, 5, 4)
    one = torch.zeros(1, 5, dtype=torch.bool)
    one[0, 2] = True
    out = mlp(x, one)
    hidden = mlp.layers[0](x[0, 2])
    expected = mlp.layers[3](torch.relu((hidden - 0.5) / math.sqrt(2.0 + norm.eps) * norm.weight + norm.bias))
    torch.testing.assert_close(out[0, 2], expected)
    assert out[0, ~one[0]].abs().sum() == 0
    assert torch.all(norm.running_mean == 0.5) and norm.training
    out.sum().backward()
    assert mlp.layers[0].weight.grad.abs().sum() > 0
    two = one.clone()
    two[0, 4] = True
    mlp(x, two)
    assert not torch.all(norm.running_mean == 0.5)  # batch statistics used and folded into the running ones
