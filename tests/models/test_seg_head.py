"""TokenInterpolationSegHead: three-NN interpolation against NumPy brute force, padding, EncoderDecoder3D use."""
import numpy as np
import pytest
import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample, PointData
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.registry import init_default_scope
from torch import nn

import projects.sam_mtp.models.heads  # noqa: F401  (registers the head)
from projects.sam_mtp.models.heads.token_interp_seg_head import (
    _three_interpolate_torch,
    _three_nn_torch,
    interpolate_tokens_to_points,
)

# Configs name mmdet3d modules without a scope prefix, as under the runner.
init_default_scope('mmdet3d')

NUM_CLASSES = 5

def brute_force_interpolation(point_xyz, token_xyz, token_features, eps=1e-8):
    """NumPy reference: for every point, inverse-distance weights of its three nearest tokens."""
    point_xyz, token_xyz, token_features = (t.double().numpy() for t in (point_xyz, token_xyz, token_features))
    out = np.zeros((token_features.shape[0], token_features.shape[1], point_xyz.shape[1]))
    for b in range(point_xyz.shape[0]):
        for n in range(point_xyz.shape[1]):
            dist = np.sqrt(((token_xyz[b] - point_xyz[b, n]) ** 2).sum(1))
            nearest = np.argsort(dist, kind='stable')[:3]
            w = 1 / (dist[nearest] + eps)
            out[b, :, n] = token_features[b][:, nearest] @ (w / w.sum())
    return torch.from_numpy(out)

def make_tokens(gen, batch=2, num_points=40, num_tokens=9, channels=6):
    return (torch.rand(batch, num_points, 3, generator=gen), torch.rand(batch, num_tokens, 3, generator=gen),
            torch.randn(batch, channels, num_tokens, generator=gen))

def test_interpolation_matches_numpy_brute_force():
    gen = torch.Generator().manual_seed(0)
    point_xyz, token_xyz, token_features = make_tokens(gen)
    ref = brute_force_interpolation(point_xyz, token_xyz, token_features)
    torch.testing.assert_close(interpolate_tokens_to_points(point_xyz, token_xyz, token_features).double(), ref,
                               atol=1e-5, rtol=1e-5)
    # The plain-torch fallback (used when the project's ops are absent) agrees as well, also across chunks.
    dist, idx = _three_nn_torch(point_xyz, token_xyz, chunk=7)
    assert idx.dtype == torch.int32 and (dist[..., 1:] >= dist[..., :-1]).all()
    inv = 1 / (dist + 1e-8)
    fallback = _three_interpolate_torch(token_features, idx, inv / inv.sum(-1, keepdim=True))
    torch.testing.assert_close(fallback.double(), ref, atol=1e-5, rtol=1e-5)

def test_point_on_a_token_takes_its_feature():
    gen = torch.Generator().manual_seed(1)
    _, token_xyz, token_features = make_tokens(gen)
    out = interpolate_tokens_to_points(token_xyz.clone(), token_xyz, token_features)
    torch.testing.assert_close(out, token_features, atol=1e-4, rtol=1e-4)

def test_padded_tokens_are_never_used():
    gen = torch.Generator().manual_seed(2)
    point_xyz, token_xyz, token_features = make_tokens(gen, batch=1, num_tokens=12)
    mask = torch.zeros(1, 12, dtype=torch.bool)
    mask[0, 8:] = True
    garbage_xyz, garbage_feat = token_xyz.clone(), token_features.clone()
    garbage_xyz[0, 8:] = point_xyz[0, :4]  # padded tokens placed right on some points
    garbage_feat[0, :, 8:] = 1e3
    out = interpolate_tokens_to_points(point_xyz, garbage_xyz, garbage_feat, padding_mask=mask)
    ref = brute_force_interpolation(point_xyz, token_xyz[:, :8], token_features[:, :, :8])
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)

@MODELS.register_module(force=True)
class SegHeadTestTokenBackbone(BaseModule):
    """Tokens = every fourth point, per-token MLP features; exposes the input points like PointNet++."""

    def __init__(self, in_channels=6, channels=16):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(in_channels, channels), nn.ReLU(), nn.Linear(channels, channels))

    def forward(self, points):
        tokens = points[:, ::4]
        return dict(
            sa_xyz=[points[..., :3].contiguous()],
            sa_features=[points[..., 3:].transpose(1, 2).contiguous()],
            fp_xyz=[tokens[..., :3].contiguous()],
            fp_features=[self.embed(tokens).transpose(1, 2).contiguous()])

def segmentor_cfg(point_channels=3):
    return dict(
        type='EncoderDecoder3D',
        data_preprocessor=dict(type='Det3DDataPreprocessor'),
        backbone=dict(type='SegHeadTestTokenBackbone'),
        decode_head=dict(type='TokenInterpolationSegHead', in_channels=16, point_channels=point_channels,
                         mlp_channels=(16, 16), num_classes=NUM_CLASSES, dropout_ratio=0.0,
                         loss_decode=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=ConfigDict(mode='whole'))  # the runner hands ConfigDicts to models

def seg_batch(gen, batch=2, num_points=64):
    points, samples = [], []
    for _ in range(batch):
        points.append(torch.rand(num_points, 6, generator=gen))
        sample = Det3DDataSample()
        sample.gt_pts_seg = PointData(pts_semantic_mask=torch.randint(0, NUM_CLASSES, (num_points, ), generator=gen))
        samples.append(sample)
    return dict(inputs=dict(points=points), data_samples=samples)

def test_encoder_decoder_loss_backward_and_predict():
    torch.manual_seed(0)
    model = MODELS.build(segmentor_cfg())
    gen = torch.Generator().manual_seed(3)
    data = model.data_preprocessor(seg_batch(gen), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'decode.loss_sem_seg'} and torch.isfinite(losses['decode.loss_sem_seg'])
    losses['decode.loss_sem_seg'].backward()
    assert model.backbone.embed[0].weight.grad.abs().sum() > 0
    assert model.decode_head.conv_seg.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        logits = model(**data, mode='tensor')
        results = model(**model.data_preprocessor(seg_batch(gen), training=False), mode='predict')
    assert logits.shape == (2, NUM_CLASSES, 64)
    for result in results:
        mask = result.pred_pts_seg.pts_semantic_mask
        assert mask.shape == (64, ) and mask.min() >= 0 and mask.max() < NUM_CLASSES

def test_point_features_change_the_logits():
    # With point_channels the per-point input features reach the classifier, without them they do not.
    for point_channels, should_change in ((3, True), (0, False)):
        torch.manual_seed(0)
        model = MODELS.build(segmentor_cfg(point_channels)).eval()
        gen = torch.Generator().manual_seed(4)
        points = torch.rand(1, 64, 6, generator=gen)
        other = points.clone()
        other[0, 1::4, 3:] += 1.0  # features of non-token points only
        with torch.no_grad():
            a = model.decode_head(model.backbone(points))
            b = model.decode_head(model.backbone(other))
        assert (not torch.allclose(a, b)) == should_change

def test_bad_inputs_raise_clear_errors():
    head = MODELS.build(segmentor_cfg()['decode_head'])
    gen = torch.Generator().manual_seed(5)
    point_xyz, token_xyz, token_features = make_tokens(gen, channels=16)
    feats = dict(sa_xyz=[point_xyz], sa_features=[None], fp_xyz=[token_xyz], fp_features=[token_features])
    with pytest.raises(ValueError, match=r'point_channels=3 needs sa_features\[0\] of shape \(B, 3, N\)'):
        head(feats)
    with pytest.raises(KeyError, match='TokenInterpolationSegHead: the backbone output has no "sa_xyz"'):
        head(dict(fp_xyz=[token_xyz], fp_features=[token_features]))
    with pytest.raises(ValueError, match='needs at least 3 tokens'):
        interpolate_tokens_to_points(point_xyz, token_xyz[:, :2], token_features[..., :2])
    with pytest.raises(ValueError, match='mlp_channels must not be empty'):
        MODELS.build(dict(segmentor_cfg()['decode_head'], mlp_channels=()))
