"""Parity of our 3DETR with facebookresearch/3detr, with every expected value computed here from the reference's
formulas and architecture (models/model_3detr.py, models/transformer.py, models/helpers.py,
models/position_embedding.py, criterion.py, datasets/scannet.py, datasets/sunrgbd.py), never by calling the code
under test:

(a) box decoding of a hand-built query, (b) parameter counts derived layer by layer, (c) the loss of a hand-built
2-query / 1-box scene, plus the encoder and decoder layers against their reference forward passes rebuilt here,
(d) the ScanNet head end to end on one tiny scene (queries, embeddings, decoder outputs, boxes, every layer's losses).
"""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from mmdet3d.structures import DepthInstance3DBoxes
from mmengine.config import Config
from mmengine.structures import InstanceData
from test_3detr_helpers import head_cfg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCHMARKS = osp.join(REPO, 'configs', 'sam_mtp', 'benchmarks')


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def set_constant_output(mlp, values):
    """Make a PointwiseMLP output ``values`` for every input: zero last weight, bias = values."""
    last = mlp.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(values))


# ------------------------------------------------------------------------------------------------ (a) decoding
def test_box_decoding_of_a_hand_built_query():
    torch.manual_seed(0)
    num_bins = 12
    head = MODELS.build(head_cfg(num_queries=1, num_angle_bins=num_bins, num_decoder_layers=1)).eval()
    centre_logits, size_logits = [0.3, -1.2, 2.0], [0.5, -0.5, 1.0]
    angle_bin, angle_residual = 7, 0.4  # bin 7 is centred at 210 deg: 3DETR wraps angles > pi by -2 pi
    angle_logits = [0.0] * num_bins
    angle_logits[angle_bin] = 5.0
    residuals = [0.9] * num_bins
    residuals[angle_bin] = angle_residual
    set_constant_output(head.center_head, centre_logits)
    set_constant_output(head.size_head, size_logits)
    set_constant_output(head.angle_cls_head, angle_logits)
    set_constant_output(head.angle_reg_head, residuals)

    query = [1.0, 2.0, 0.5]
    scene_min, scene_max = [-1.0, 0.0, 0.0], [3.0, 4.0, 2.5]
    points = torch.tensor([scene_min, scene_max, query])
    feat = dict(fp_xyz=[torch.tensor([[query]])], fp_features=[torch.randn(1, 32, 1)])
    with torch.no_grad():
        preds = head([points], feat)

    # 3DETR: centre_unnormalized = query_xyz + (sigmoid - 0.5) [metres]; normalised by the scene range after.
    extent = [hi - lo for lo, hi in zip(scene_min, scene_max)]
    centre = [q + sigmoid(c) - 0.5 for q, c in zip(query, centre_logits)]
    centre_normalized = [(c - lo) / e for c, lo, e in zip(centre, scene_min, extent)]
    size = [sigmoid(s) * e for s, e in zip(size_logits, extent)]
    angle = angle_bin * 2 * math.pi / num_bins + angle_residual * math.pi / num_bins
    angle = angle - 2 * math.pi if angle > math.pi else angle
    assert angle < 0  # the wrap was exercised
    close = dict(rtol=0, atol=1e-5)
    torch.testing.assert_close(preds['centers'][-1, 0, 0], torch.tensor(centre), **close)
    torch.testing.assert_close(preds['center_normalized'][-1, 0, 0], torch.tensor(centre_normalized), **close)
    torch.testing.assert_close(preds['sizes'][-1, 0, 0], torch.tensor(size), **close)
    torch.testing.assert_close(preds['angles'][-1, 0, 0], torch.tensor(angle), **close)

    head.test_cfg = dict(empty_box_min_points=0, use_nms=False, objectness_thr=-1.0, per_class_proposal=False)
    with torch.no_grad():
        result = head.predict_by_feat([points], preds, [dict(box_type_3d=DepthInstance3DBoxes)])[0]
    box = result.bboxes_3d
    torch.testing.assert_close(box.gravity_center[0], torch.tensor(centre), **close)
    torch.testing.assert_close(box.dims[0], torch.tensor(size), **close)
    torch.testing.assert_close(box.yaw[0], torch.tensor(angle), **close)


# ------------------------------------------------------------------------------------------------ (b) counts
def conv_bn(c_in, c_out):
    """1x1 conv without bias (3DETR: bias off when followed by BatchNorm) + BatchNorm weight and bias."""
    return c_in * c_out + 2 * c_out


def linear(c_in, c_out, bias=True):
    return c_in * c_out + (c_out if bias else 0)


def multihead_attention(d):
    """nn.MultiheadAttention: in_proj (3d x d) + bias (3d), out_proj (d x d) + bias (d)."""
    return 3 * d * d + 3 * d + d * d + d


def layer_norm(d):
    return 2 * d


def reference_3detr_parameters(num_classes, num_angle_bins, masked=False):
    """Parameters of build_3detr(args) for the scripts' settings, by module (models/model_3detr.py)."""
    d = 256
    counts = {}
    # build_preencoder: PointnetSAModuleVotes(mlp=[3 * use_color(0), 64, 128, 256]) + 3 for use_xyz, bn=True.
    counts['pre_encoder'] = conv_bn(3, 64) + conv_bn(64, 128) + conv_bn(128, d)
    # TransformerEncoderLayer(d, nhead 4, dim_feedforward 128): self_attn, linear1, linear2, norm1, norm2.
    encoder_layer = multihead_attention(d) + linear(d, 128) + linear(128, d) + 2 * layer_norm(d)
    counts['encoder'] = 3 * encoder_layer
    if masked:  # interim_downsampling: PointnetSAModuleVotes(mlp=[256, 256, 256, 256]) + 3 for use_xyz
        counts['encoder'] += conv_bn(d + 3, 256) + conv_bn(256, 256) + conv_bn(256, d)
    # encoder_to_decoder_projection: GenericMLP(hidden [d, d] or [d] for the masked encoder, bn1d, no biases,
    # output norm and activation).
    counts['encoder_to_decoder_projection'] = conv_bn(d, d) * (2 if masked else 3)
    # query_projection: GenericMLP(hidden [d], hidden_use_bias=True, output bias, no norm).
    counts['query_projection'] = linear(d, d) + linear(d, d)
    # TransformerDecoderLayer(d, 4, dim_feedforward 256): self_attn, multihead_attn, linear1, linear2, norm1-3;
    # TransformerDecoder adds one LayerNorm.
    decoder_layer = 2 * multihead_attention(d) + linear(d, 256) + linear(256, d) + 3 * layer_norm(d)
    counts['decoder'] = 8 * decoder_layer + layer_norm(d)

    def mlp_head(out):  # GenericMLP(hidden [d, d], bn1d, dropout, hidden_use_bias False, output bias)
        return conv_bn(d, d) + conv_bn(d, d) + linear(d, out)

    counts['sem_cls_head'] = mlp_head(num_classes + 1)
    counts['center_head'] = mlp_head(3)
    counts['size_head'] = mlp_head(3)
    counts['angle_cls_head'] = mlp_head(num_angle_bins)
    counts['angle_residual_head'] = mlp_head(num_angle_bins)
    return counts


def our_parameters(config):
    cfg = Config.fromfile(osp.join(BENCHMARKS, config))
    model = MODELS.build(cfg.model)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('config,num_classes,num_angle_bins,masked,expected', [
    # ScanNet: 3DETR's dataset config has num_angle_bin = 1; its two 1-bin heading heads are built and trained
    # (criterion.loss_angle), although the heading they give is multiplied by 0.
    ('threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py', 18, 1, False, 7_305_691),
    ('threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py', 10, 12, False, 7_309_289),
    ('threedetr-m_masked-encoder_1xb8-1080e_scannet-3d.py', 18, 1, True, 7_438_555),
    ('threedetr-m_masked-encoder_1xb8-1080e_sunrgbd-3d.py', 10, 12, True, 7_442_153),
], ids=['scannet', 'sunrgbd', 'scannet-masked', 'sunrgbd-masked'])
def test_parameter_count_equals_the_reference_architecture(config, num_classes, num_angle_bins, masked, expected):
    counts = reference_3detr_parameters(num_classes, num_angle_bins, masked)
    assert sum(counts.values()) == expected  # the number docs/downstream.md quotes
    assert our_parameters(config) == expected


# ------------------------------------------------------------------------------------------------ (c) loss
def hand_preds(cls_logits, centres, sizes, scene_min, scene_max, angles=None):
    """A one-layer, one-scene prediction dict as ThreeDETRHead.forward returns it."""
    centres, sizes = torch.tensor(centres), torch.tensor(sizes)
    lo, hi = torch.tensor(scene_min), torch.tensor(scene_max)
    preds = dict(
        cls_logits=torch.tensor(cls_logits)[None, None],
        centers=centres[None, None],
        center_normalized=((centres - lo) / (hi - lo))[None, None],
        sizes=sizes[None, None],
        size_normalized=(sizes / (hi - lo))[None, None],
        angles=torch.zeros(1, 1, len(centres)),
        query_valid=torch.ones(1, len(centres), dtype=torch.bool),
        scene_min=lo[None],
        scene_max=hi[None])
    return preds


def interval_overlap(a_lo, a_hi, b_lo, b_hi):
    return max(0.0, min(a_hi, b_hi) - max(a_lo, b_lo))


def aligned_giou(box_a, box_b):
    """GIoU of axis-aligned (centre, size) boxes with 3DETR's enclosing axis-aligned box, by intervals."""
    (ca, sa), (cb, sb) = box_a, box_b
    inter, enclose = 1.0, 1.0
    for i in range(3):
        a_lo, a_hi, b_lo, b_hi = ca[i] - sa[i] / 2, ca[i] + sa[i] / 2, cb[i] - sb[i] / 2, cb[i] + sb[i] / 2
        inter *= interval_overlap(a_lo, a_hi, b_lo, b_hi)
        enclose *= max(a_hi, b_hi) - min(a_lo, b_lo)
    union = math.prod(sa) + math.prod(sb) - inter
    return inter / union - (enclose - union) / enclose


def cross_entropy(logits, target):
    return math.log(sum(math.exp(v) for v in logits)) - logits[target]


def softmax(logits):
    total = sum(math.exp(v) for v in logits)
    return [math.exp(v) / total for v in logits]


SCANNET_COSTS = [dict(type='mmdet.ClassificationCost', weight=1.0), dict(type='BBox3DGIoUCost', weight=2.0)]
SUN_COSTS = [dict(type='mmdet.ClassificationCost', weight=1.0), dict(type='BBox3DGIoUCost', weight=3.0),
             dict(type='BBox3DCenterL1Cost', weight=5.0), dict(type='BBox3DObjectnessCost', weight=5.0)]


def build_head(num_classes, costs, **overrides):
    cfg = dict(head_cfg(num_classes=num_classes, **overrides),
               train_cfg=dict(assigner=dict(type='mmdet.HungarianAssigner', match_costs=costs)))
    return MODELS.build(cfg)


def test_loss_of_a_hand_built_scannet_scene():
    """ScanNet settings: 2 queries, 1 box (class 0); losses cls 1, centre 5, size 1, GIoU 1; no-object 0.25; one
    heading bin (datasets/scannet.py): angle cls 0.1 (a 1-class cross-entropy, 0) and angle reg 0.5 (Huber, delta
    1, of the residual against ScanNet's residual target 0)."""
    head = build_head(2, SCANNET_COSTS, no_object_weight=0.25, num_angle_bins=1)
    scene_min, scene_max = [0.0, 0.0, 0.0], [4.0, 5.0, 2.0]
    gt = ([1.0, 1.0, 0.5], [1.0, 1.0, 1.0])
    q0 = ([1.2, 1.0, 0.5], [1.2, 1.0, 0.8])
    q1 = ([3.0, 3.0, 1.0], [0.5, 0.5, 0.5])
    logits = [[2.0, 0.0, -1.0], [0.0, 0.5, 1.0]]
    preds = hand_preds(logits, [q0[0], q1[0]], [q0[1], q1[1]], scene_min, scene_max)
    residuals = [-1.3, 0.4]  # query 0's is in Huber's linear part
    preds.update(angle_logits=torch.tensor([[[[0.7], [-0.2]]]]),
                 angle_residual_normalized=torch.tensor(residuals)[None, None, :, None])
    boxes = DepthInstance3DBoxes(torch.tensor([gt[0] + gt[1] + [0.0]]), with_yaw=False, origin=(0.5, 0.5, 0.5))
    losses = head.loss_by_feat(preds, [InstanceData(bboxes_3d=boxes, labels_3d=torch.tensor([0]))])

    # Matching (3DETR's Matcher): cost = -1 * p(gt class) - 2 * GIoU; query 0 must win.
    giou0, giou1 = aligned_giou(q0, gt), aligned_giou(q1, gt)
    cost0 = -softmax(logits[0])[0] - 2 * giou0
    cost1 = -softmax(logits[1])[0] - 2 * giou1
    assert cost0 < cost1
    extent = [hi - lo for lo, hi in zip(scene_min, scene_max)]
    # SetCriterion: weighted CE mean (query 1 is "no object", index 2, weight 0.25); box losses / num_boxes (1).
    loss_cls = (1.0 * cross_entropy(logits[0], 0) + 0.25 * cross_entropy(logits[1], 2)) / (1.0 + 0.25)
    loss_center = 5.0 * sum(abs(p - g) / e for p, g, e in zip(q0[0], gt[0], extent))
    loss_size = 1.0 * sum(abs(p - g) / e for p, g, e in zip(q0[1], gt[1], extent))
    loss_giou = 1.0 * (1 - giou0)
    loss_angle_reg = 0.5 * (abs(residuals[0]) - 0.5)  # huber_loss: 0.5 * 1 ** 2 + 1 * (|x| - 1)
    expected = dict(loss_cls=loss_cls, loss_center=loss_center, loss_size=loss_size, loss_giou=loss_giou,
                    loss_angle_cls=0.0, loss_angle_reg=loss_angle_reg)
    assert set(losses) == set(expected)
    for name, value in expected.items():
        assert losses[name].item() == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert loss_center == pytest.approx(0.25) and loss_size == pytest.approx(0.15)


def test_loss_of_a_hand_built_sunrgbd_scene():
    """SUN RGB-D settings: 12 heading bins, no-object 0.1, GIoU loss weight 0 (GIoU only in the matcher), angle
    classification 0.1 (CE) and residual 0.5 (Huber, delta 1, in units of pi / 12)."""
    num_bins = 12
    head = build_head(2, SUN_COSTS, no_object_weight=0.1, num_angle_bins=num_bins,
                      loss_giou=dict(type='GIoU3DLoss', loss_weight=0.0))
    scene_min, scene_max = [-2.0, 0.0, -1.0], [2.0, 6.0, 1.0]
    gt_centre, gt_size, gt_yaw = [0.0, 2.0, 0.0], [1.0, 2.0, 1.0], 0.6
    q0 = ([0.1, 2.2, 0.0], [1.1, 1.8, 1.0])
    q1 = ([1.5, 5.5, 0.8], [0.4, 0.4, 0.4])
    logits = [[1.5, 0.0, -2.0], [-1.0, 0.0, 1.5]]  # query 0: likely class 0 and an object; query 1: no object
    preds = hand_preds(logits, [q0[0], q1[0]], [q0[1], q1[1]], scene_min, scene_max)
    angle_logits = [[0.1 * k for k in range(num_bins)], [0.0] * num_bins]
    residuals = [[0.05 * k - 0.3 for k in range(num_bins)], [0.0] * num_bins]
    preds.update(angle_logits=torch.tensor(angle_logits)[None, None],
                 angle_residual_normalized=torch.tensor(residuals)[None, None],
                 angles=torch.tensor([[[0.55, 0.0]]]))
    boxes = DepthInstance3DBoxes(torch.tensor([gt_centre + gt_size + [gt_yaw]]), origin=(0.5, 0.5, 0.5))
    losses = head.loss_by_feat(preds, [InstanceData(bboxes_3d=boxes, labels_3d=torch.tensor([0]))])

    extent = [hi - lo for lo, hi in zip(scene_min, scene_max)]
    # Query 0 wins whatever the rotated GIoU (in [-1, 1], weight 3): centre (5 x L1) and objectness (-5 x p)
    # terms alone separate the queries by more than 2 x 3.
    p0, p1 = softmax(logits[0]), softmax(logits[1])
    centre_cost = [5.0 * sum(abs(p - g) / e for p, g, e in zip(q[0], gt_centre, extent)) for q in (q0, q1)]
    partial0 = -p0[0] + centre_cost[0] - 5.0 * (1 - p0[-1])
    partial1 = -p1[0] + centre_cost[1] - 5.0 * (1 - p1[-1])
    assert partial0 + 3.0 < partial1 - 3.0
    # 3DETR's SunrgbdDatasetConfig.angle2class and the criterion's residual normalisation.
    per_bin = 2 * math.pi / num_bins
    shifted = (gt_yaw % (2 * math.pi) + per_bin / 2) % (2 * math.pi)
    gt_bin = int(shifted / per_bin)
    gt_residual = (shifted - (gt_bin * per_bin + per_bin / 2)) / (math.pi / num_bins)
    diff = residuals[0][gt_bin] - gt_residual
    huber = 0.5 * diff ** 2 if abs(diff) <= 1 else abs(diff) - 0.5
    expected = dict(
        loss_cls=(cross_entropy(logits[0], 0) + 0.1 * cross_entropy(logits[1], 2)) / 1.1,
        loss_center=5.0 * sum(abs(p - g) / e for p, g, e in zip(q0[0], gt_centre, extent)),
        loss_size=1.0 * sum(abs(p - g) / e for p, g, e in zip(q0[1], gt_size, extent)),
        loss_giou=0.0,
        loss_angle_cls=0.1 * cross_entropy(angle_logits[0], gt_bin),
        loss_angle_reg=0.5 * huber)
    assert gt_bin == 1
    assert set(losses) == set(expected)
    for name, value in expected.items():
        assert losses[name].item() == pytest.approx(value, rel=1e-5, abs=1e-6), name


# ------------------------------------------------------------------------------------------------ layers
def reference_encoder_layer_forward(layer, src, mask=None):
    """3DETR's TransformerEncoderLayer.forward_pre (models/transformer.py), eval mode, pos=None."""
    src2 = layer.norm1(src)
    src2 = layer.self_attn(src2, src2, value=src2, attn_mask=mask)[0]
    src = src + src2
    src2 = layer.norm2(src)
    src2 = layer.linear2(F.relu(layer.linear1(src2)))
    return src + src2


def test_encoder_transformer_matches_the_reference_forward_with_radius_masks():
    torch.manual_seed(0)
    encoder = MODELS.build(dict(type='ThreeDETRMaskedEncoder', num_points=32, num_samples=8,
                                sa_channels=(16, 32), num_layers=3, num_heads=4, feedforward_channels=24,
                                downsample_cfg=dict(num_point=16, radius=0.8, num_sample=8,
                                                    mlp_channels=(32, 32)))).eval()
    gen = torch.Generator().manual_seed(1)
    points = torch.rand(2, 200, 3, generator=gen) * 3
    with torch.no_grad():
        out = encoder(points)
        # Rebuild the forward from the reference's structure, reusing the same sub-modules' weights.
        xyz, feats, idx = encoder.set_abstraction(points, None)
        tokens = feats.transpose(1, 2)
        for i, layer in enumerate(encoder.layers):
            radius = (0.16, 0.64, 1.44)[i]
            far = torch.cdist(xyz, xyz) >= radius            # MaskedTransformerEncoder.compute_mask
            mask = far.unsqueeze(1).repeat(1, 4, 1, 1).view(-1, xyz.shape[1], xyz.shape[1])
            tokens = reference_encoder_layer_forward(layer, tokens, mask)
            if i == 0:
                xyz, feats, down = encoder.downsample(xyz, tokens.transpose(1, 2).contiguous())
                tokens = feats.transpose(1, 2)
                idx = torch.gather(idx.long(), 1, down.long())
    assert out['fp_xyz'][0].shape == (2, 16, 3) and out['fp_features'][0].shape == (2, 32, 16)
    torch.testing.assert_close(out['fp_xyz'][0], xyz)
    torch.testing.assert_close(out['fp_features'][0], tokens.transpose(1, 2))
    torch.testing.assert_close(out['fp_indices'][0], idx)
    # The indices point at the input points the tokens sit on.
    torch.testing.assert_close(torch.gather(points, 1, idx[..., None].expand(-1, -1, 3)), xyz)


def test_decoder_layer_matches_the_reference_forward():
    torch.manual_seed(0)
    head = MODELS.build(head_cfg(num_decoder_layers=1)).eval()
    layer = head.decoder.layers[0]
    gen = torch.Generator().manual_seed(2)
    tgt, memory = torch.randn(2, 5, 32, generator=gen), torch.randn(2, 9, 32, generator=gen)
    query_pos, pos = torch.randn(2, 5, 32, generator=gen), torch.randn(2, 9, 32, generator=gen)
    with torch.no_grad():
        ours = layer(tgt, memory, query_pos, pos)
        expected = ref_decoder_layer(layer, tgt, memory, pos, query_pos)
    torch.testing.assert_close(ours, expected)
    # 3DETR's TransformerDecoder._reset_parameters: xavier-uniform on every matrix. Its bound for a
    # (fan_out, fan_in) matrix is sqrt(6 / (fan_in + fan_out)).
    bound = math.sqrt(6 / (32 + 32))
    assert layer.cross_attn.out_proj.weight.abs().max() <= bound
    assert layer.cross_attn.out_proj.weight.abs().max() > 0.8 * bound


# ------------------------------------------------------------------------------------------------ end to end
# Model3DETR.forward after its encoder, and SetCriterion on every decoder layer, rebuilt from facebookresearch/3detr
# (models/model_3detr.py, models/helpers.py GenericMLP, models/position_embedding.py, models/transformer.py,
# criterion.py, utils/box_util.py, datasets/scannet.py). The reference takes only the head's *weights* (Linear,
# BatchNorm, LayerNorm, attention parameters and the Fourier matrix); the order of operations, the activations, the
# normalisations and the loss formulas are written here.
def ref_furthest_point_sample(xyz, num):
    """pointnet2's furthest_point_sample: starts at index 0, then the point farthest from all picked ones."""
    picks, dist = [0], torch.full((xyz.shape[0], ), float('inf'), dtype=torch.float64)
    xyz = xyz.double()
    for _ in range(num - 1):
        dist = torch.minimum(dist, (xyz - xyz[picks[-1]]).square().sum(-1))
        picks.append(int(dist.argmax()))
    return torch.tensor(picks)


def ref_fourier(xyz, lo, hi, gauss_b):
    """PositionEmbeddingCoordsSine(pos_type='fourier', normalize=True): shift_scale_points into [0, 1] by the
    point cloud's range, times 2 pi, times the Gaussian matrix; [sin, cos]."""
    proj = ((xyz - lo) / (hi - lo) * 2 * math.pi) @ gauss_b
    return torch.cat([proj.sin(), proj.cos()], dim=-1)


def ref_batch_norm(x, bn):
    return F.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)  # train mode: batch stats


def weights_of(mlp):
    return ([m for m in mlp.layers if isinstance(m, torch.nn.Linear)],
            [m for m in mlp.layers if isinstance(m, torch.nn.BatchNorm1d)])


def ref_encoder_to_decoder_projection(x, mlp):
    """GenericMLP(hidden [d, d], bn1d, relu, output_use_norm, output_use_activation, no biases)."""
    (l1, l2, l3), (n1, n2, n3) = weights_of(mlp)
    x = F.relu(ref_batch_norm(F.linear(x, l1.weight), n1))
    x = F.relu(ref_batch_norm(F.linear(x, l2.weight), n2))
    return F.relu(ref_batch_norm(F.linear(x, l3.weight), n3))


def ref_query_projection(x, mlp):
    """GenericMLP(hidden [d], hidden_use_bias=True, output_use_activation=True): conv-ReLU-conv-ReLU."""
    (l1, l2), _ = weights_of(mlp)
    return F.relu(l2(F.relu(l1(x))))


def ref_prediction_mlp(x, mlp):
    """build_mlp_heads' GenericMLP(hidden [d, d], bn1d, relu, dropout (0 here), output bias)."""
    (l1, l2, l3), (n1, n2) = weights_of(mlp)
    x = F.relu(ref_batch_norm(F.linear(x, l1.weight), n1))
    x = F.relu(ref_batch_norm(F.linear(x, l2.weight), n2))
    return l3(x)


def ref_decoder_layer(layer, tgt, memory, pos, query_pos):
    """3DETR's pre-norm TransformerDecoderLayer.forward_pre (dropout off)."""
    norm1, norm2, norm3 = layer.norms
    t2 = norm1(tgt)
    tgt = tgt + layer.self_attn(t2 + query_pos, t2 + query_pos, value=t2)[0]
    t2 = norm2(tgt)
    tgt = tgt + layer.cross_attn(t2 + query_pos, memory + pos, value=memory)[0]
    t2 = norm3(tgt)
    linear1, linear2 = [m for m in layer.ffn if isinstance(m, torch.nn.Linear)]
    return tgt + linear2(F.relu(linear1(t2)))


def ref_decoder(decoder, memory, pos, query_pos):
    """TransformerDecoder(return_intermediate=True) of pre-norm TransformerDecoderLayer.forward_pre from tgt = 0:
    every intermediate output goes through the decoder's final LayerNorm."""
    tgt, intermediate = torch.zeros_like(query_pos), []
    for layer in decoder.layers:
        tgt = ref_decoder_layer(layer, tgt, memory, pos, query_pos)
        intermediate.append(F.layer_norm(tgt, tgt.shape[-1:], decoder.norm.weight, decoder.norm.bias,
                                         decoder.norm.eps))
    return torch.stack(intermediate)


def ref_aligned_giou(c1, s1, c2, s2):
    """generalized_box3d_iou(rotated_boxes=False) of (K1, 3) and (K2, 3) centre/size boxes -> (K1, K2)."""
    lo1, hi1, lo2, hi2 = (c1 - s1 / 2)[:, None], (c1 + s1 / 2)[:, None], (c2 - s2 / 2)[None], (c2 + s2 / 2)[None]
    inter = (torch.minimum(hi1, hi2) - torch.maximum(lo1, lo2)).clamp(min=0).prod(-1)
    enclosing = (torch.maximum(hi1, hi2) - torch.minimum(lo1, lo2)).prod(-1)
    union = s1.prod(-1)[:, None] + s2.prod(-1)[None] - inter
    return inter / union - (1 - union / enclosing)


def huber(x, delta=1.0):
    quadratic = x.abs().clamp(max=delta)
    return 0.5 * quadratic ** 2 + delta * (x.abs() - quadratic)


def ref_layer_losses(out, gt_labels, gt_centres, gt_sizes, lo, hi, num_classes):
    """SetCriterion.single_output_forward with scripts/scannet_ep1080.sh's weights (matcher cls 1, GIoU 2; losses
    cls 1, no-object 0.25, centre 5, size 1, GIoU 1, angle cls 0.1, angle reg 0.5) and ScanNet's targets
    (datasets/scannet.py: angle class 0, residual 0, normalised by pi / num_angle_bin)."""
    from scipy.optimize import linear_sum_assignment
    extent = hi - lo
    gious = ref_aligned_giou(out['center_unnormalized'], out['size_unnormalized'], gt_centres, gt_sizes)
    cls_prob = out['sem_cls_logits'].softmax(-1)
    cost = 1.0 * -cls_prob[:, gt_labels] + 2.0 * -gious
    q_idx, g_idx = (torch.as_tensor(i) for i in linear_sum_assignment(cost.detach().numpy()))
    num_boxes = len(gt_labels)
    target = torch.full((cost.shape[0], ), num_classes)
    target[q_idx] = gt_labels[g_idx]
    weight = torch.ones(num_classes + 1)
    weight[-1] = 0.25
    gt_angle_class, gt_angle_residual = torch.zeros(num_boxes, dtype=torch.long), torch.zeros(num_boxes)
    residual_target = gt_angle_residual / (math.pi / 1)
    return dict(
        loss_cls=1.0 * F.cross_entropy(out['sem_cls_logits'], target, weight, reduction='mean'),
        loss_angle_cls=0.1 * F.cross_entropy(out['angle_logits'][q_idx], gt_angle_class[g_idx],
                                             reduction='sum') / num_boxes,
        loss_angle_reg=0.5 * huber(out['angle_residual_normalized'][q_idx, gt_angle_class[g_idx]]
                                   - residual_target[g_idx]).sum() / num_boxes,
        loss_center=5.0 * (out['center_normalized'][q_idx] - ((gt_centres - lo) / extent)[g_idx]).abs().sum()
        / num_boxes,
        loss_size=1.0 * (out['size_normalized'][q_idx] - (gt_sizes / extent)[g_idx]).abs().sum() / num_boxes,
        loss_giou=1.0 * (1 - gious[q_idx, g_idx]).sum() / num_boxes)


def test_scannet_head_end_to_end_equals_3detr_rebuilt_from_its_source():
    """One tiny ScanNet scene through the head of the ScanNet config (widths shrunk, dropout off, train mode):
    query positions, Fourier key and query embeddings, the encoder-to-decoder projection, every decoder layer's
    output, the box parameters, the 1-bin heading outputs and every layer's losses equal 3DETR's computation."""
    cfg = Config.fromfile(osp.join(BENCHMARKS, 'threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py'))
    num_classes, dims = 3, 16
    small = dict(cfg.model.bbox_head, num_classes=num_classes, in_channels=dims, num_queries=8, embed_dims=dims,
                 num_decoder_layers=2, num_heads=2, feedforward_channels=dims, mlp_channels=(dims, dims), dropout=0.0,
                 mlp_dropout=0.0, train_cfg=cfg.model.train_cfg)
    torch.manual_seed(0)
    head = MODELS.build(small).train()
    assert head.num_angle_bins == 1

    gen = torch.Generator().manual_seed(3)
    # A room of 4 m x 3 m x 2 m away from the origin: normalising by the point range matters.
    points = torch.rand(96, 3, generator=gen) * torch.tensor([4.0, 3.0, 2.0]) + torch.tensor([2.0, -1.0, 0.0])
    tokens_xyz = points[:24]
    token_features = torch.randn(1, dims, 24, generator=gen)
    gt_centres = torch.tensor([[3.0, 0.0, 0.5], [4.5, 1.0, 0.8], [5.0, -0.2, 1.0]])
    gt_sizes = torch.tensor([[1.0, 0.8, 1.0], [0.6, 1.2, 1.6], [1.4, 0.5, 0.6]])
    gt_labels = torch.tensor([0, 2, 1])
    gt = InstanceData(bboxes_3d=DepthInstance3DBoxes(torch.cat([gt_centres, gt_sizes], 1), box_dim=6,
                                                     with_yaw=False, origin=(0.5, 0.5, 0.5)),
                      labels_3d=gt_labels)

    seen = {}
    hook = head.decoder.register_forward_hook(
        lambda module, args, output: seen.update(memory=args[1], query_pos=args[2], key_pos=args[3], hidden=output))
    feat = dict(fp_xyz=[tokens_xyz[None]], fp_features=[token_features])
    preds = head([points], feat)
    losses = head.loss_by_feat(preds, [gt])
    hook.remove()

    with torch.no_grad():
        lo, hi = points.min(0).values, points.max(0).values        # point_cloud_dims_min / _max
        memory = ref_encoder_to_decoder_projection(token_features[0].t(), head.memory_proj)
        query_xyz = tokens_xyz[ref_furthest_point_sample(tokens_xyz, 8)]
        gauss_b = head.pos_encoding.gauss_b
        query_pos = ref_query_projection(ref_fourier(query_xyz, lo, hi, gauss_b), head.query_pos_proj)
        key_pos = ref_fourier(tokens_xyz, lo, hi, gauss_b)
        hidden = ref_decoder(head.decoder, memory[None], key_pos[None], query_pos[None])[:, 0]   # (L, Q, D)
        rows = hidden.reshape(-1, dims)  # get_box_predictions: the heads see (layers x batch x queries) rows
        per_layer = lambda x: x.reshape(hidden.shape[0], hidden.shape[1], -1)  # noqa: E731
        center_offset = per_layer(ref_prediction_mlp(rows, head.center_head)).sigmoid() - 0.5
        size_normalized = per_layer(ref_prediction_mlp(rows, head.size_head)).sigmoid()
        angle_logits = per_layer(ref_prediction_mlp(rows, head.angle_cls_head))
        angle_residual_normalized = per_layer(ref_prediction_mlp(rows, head.angle_reg_head))
        angle_residual = angle_residual_normalized * (math.pi / 1)  # pi / num_angle_bins
        ref_out = []
        for layer in range(hidden.shape[0]):
            centre = query_xyz + center_offset[layer]
            ref_out.append(dict(
                sem_cls_logits=per_layer(ref_prediction_mlp(rows, head.cls_head))[layer],
                center_unnormalized=centre,
                center_normalized=(centre - lo) / (hi - lo),
                size_normalized=size_normalized[layer],
                size_unnormalized=size_normalized[layer] * (hi - lo).clamp(min=0.1),
                angle_logits=angle_logits[layer],
                angle_residual_normalized=angle_residual_normalized[layer],
                # compute_predicted_angle with one bin: logits * 0 + residual * 0, clamped at 0.
                angle_continuous=(angle_logits[layer] * 0 + angle_residual[layer] * 0).squeeze(-1).clamp(min=0)))

    close = dict(atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(preds['query_xyz'][0], query_xyz)
    torch.testing.assert_close(seen['key_pos'][0], key_pos, **close)
    torch.testing.assert_close(seen['query_pos'][0], query_pos, **close)
    torch.testing.assert_close(seen['memory'][0], memory, **close)
    torch.testing.assert_close(seen['hidden'][:, 0], hidden, **close)
    for layer, out in enumerate(ref_out):
        torch.testing.assert_close(preds['cls_logits'][layer, 0], out['sem_cls_logits'], **close)
        torch.testing.assert_close(preds['centers'][layer, 0], out['center_unnormalized'], **close)
        torch.testing.assert_close(preds['center_normalized'][layer, 0], out['center_normalized'], **close)
        torch.testing.assert_close(preds['sizes'][layer, 0], out['size_unnormalized'], **close)
        torch.testing.assert_close(preds['angle_logits'][layer, 0], out['angle_logits'], **close)
        torch.testing.assert_close(preds['angle_residual_normalized'][layer, 0], out['angle_residual_normalized'],
                                   **close)
        torch.testing.assert_close(preds['angles'][layer, 0], out['angle_continuous'])

        expected = ref_layer_losses(out, gt_labels, gt_centres, gt_sizes, lo, hi, num_classes)
        prefix = '' if layer == len(ref_out) - 1 else f'd{layer}.'
        for name, value in expected.items():
            torch.testing.assert_close(losses[prefix + name], value, **close, msg=f'{prefix}{name}')
    assert set(losses) == {p + name for p in ('', 'd0.') for name in expected}
    # The residual term is a real loss on ScanNet (3DETR keeps it): not zero at initialisation.
    assert losses['loss_angle_reg'] > 1e-3 and losses['loss_angle_cls'] == 0
