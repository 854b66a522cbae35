"""PlainPointTransformer: padding never changes real tokens, visible-only encoding, checkpoint loading."""
import pytest
import torch

from projects.sam_mtp.models.backbones import PlainPointTransformer, pack_selected
from projects.sam_mtp.models.tokenizers import PointTokens

TINY = dict(embed_dims=32, num_layers=2, num_heads=4, pointnet_channels=(16, 32, 32), pos_hidden_dims=16)


def _tokens(batch=2, slots=6, group=8, real=(6, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    padding = torch.arange(slots)[None].expand(batch, -1) >= torch.tensor(real)[:, None]
    return PointTokens(
        neighborhoods=torch.randn(batch, slots, group, 3, generator=g),
        centers=torch.randn(batch, slots, 3, generator=g),
        padding_mask=padding,
        region_index=torch.where(padding, -1, 1),
        point_token=torch.zeros(batch, 1, dtype=torch.long))


def _perturb_padding(tokens, scale=100.):
    pad = tokens.padding_mask
    neigh = tokens.neighborhoods.clone()
    centers = tokens.centers.clone()
    neigh[pad] = torch.randn_like(neigh[pad]) * scale
    centers[pad] = torch.randn_like(centers[pad]) * scale
    return PointTokens(neigh, centers, pad, tokens.region_index, tokens.point_token)


@pytest.mark.parametrize('train', [False, True])
def test_padded_tokens_never_change_real_outputs(train):
    torch.manual_seed(0)
    model = PlainPointTransformer(**TINY, drop_path_rate=0.1).train(train)
    tokens = _tokens()
    torch.manual_seed(1)
    out = model(tokens)
    torch.manual_seed(1)  # same drop-path draws
    out_perturbed = model(_perturb_padding(tokens))
    real = ~tokens.padding_mask
    torch.testing.assert_close(out[real], out_perturbed[real], atol=1e-5, rtol=1e-5)
    assert torch.all(out[tokens.padding_mask] == 0) and torch.all(out_perturbed[tokens.padding_mask] == 0)
    assert out.shape == (2, 6, 32)


def test_padding_matches_unpadded_sample_and_gets_no_gradient():
    torch.manual_seed(0)
    model = PlainPointTransformer(**TINY).eval()
    tokens = _tokens()
    tokens.neighborhoods.requires_grad_(True)
    out = model(tokens)
    alone = PointTokens(tokens.neighborhoods[1:, :4].detach(), tokens.centers[1:, :4], tokens.padding_mask[1:, :4],
                        tokens.region_index[1:, :4], tokens.point_token[1:])
    torch.testing.assert_close(out[1, :4], model(alone)[0], atol=1e-5, rtol=1e-5)
    out.sum().backward()
    assert torch.all(tokens.neighborhoods.grad[tokens.padding_mask] == 0)
    assert tokens.neighborhoods.grad[~tokens.padding_mask].abs().sum() > 0


def test_fully_padded_sample_is_finite():
    model = PlainPointTransformer(**TINY).train()
    tokens = _tokens(real=(3, 0))
    tokens.neighborhoods.requires_grad_(True)
    out = model(tokens)
    assert torch.isfinite(out).all() and torch.all(out[1] == 0)
    out.sum().backward()
    assert torch.isfinite(tokens.neighborhoods.grad).all()


def test_pack_selected_and_encode_visible():
    selected = torch.tensor([[True, False, True, True], [False, False, True, False]])
    index, padding = pack_selected(selected)
    assert index.tolist() == [[0, 2, 3], [2, -1, -1]]
    assert padding.tolist() == [[False, False, False], [False, True, True]]
    torch.manual_seed(0)
    model = PlainPointTransformer(**TINY).eval()
    tokens = _tokens()
    visible = torch.tensor([[True, False, True, False, True, True], [False, True, True, False, True, True]])
    out = model.encode_visible(tokens, visible)
    # padding slots (sample 1, slots 4, 5) are never visible even if asked for
    assert out.index.tolist() == [[0, 2, 4, 5], [1, 2, -1, -1]]
    for b in range(2):
        idx = out.index[b][out.index[b] >= 0]
        sub = PointTokens(tokens.neighborhoods[b:b + 1, idx], tokens.centers[b:b + 1, idx],
                          torch.zeros(1, len(idx), dtype=torch.bool), tokens.region_index[b:b + 1, idx],
                          tokens.point_token[b:b + 1])
        torch.testing.assert_close(out.features[b, :len(idx)], model(sub)[0], atol=1e-5, rtol=1e-5)
    assert torch.all(out.features[1, 2:] == 0)
    with pytest.raises(ValueError, match='visible mask'):
        model.encode_visible(tokens, visible[:, :3])


def test_pretrained_prefix_loading(tmp_path):
    torch.manual_seed(0)
    source = PlainPointTransformer(**TINY)
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['projector.layers.0.weight'] = torch.zeros(3, 32)
    path = tmp_path / 'stage1.pth'
    torch.save(dict(state_dict=state), path)
    torch.manual_seed(1)
    target = PlainPointTransformer(**TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                                         prefix='backbone.'))
    assert not torch.equal(target.pos_embed.mlp[0].weight, source.pos_embed.mlp[0].weight)
    target.init_weights()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)


def test_backbone_rejects_bad_shapes():
    model = PlainPointTransformer(**TINY)
    with pytest.raises(ValueError, match='neighborhoods must be'):
        model.encode(torch.zeros(2, 3, 8, 2), torch.zeros(2, 3, 3), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match='do not match'):
        model.encode(torch.zeros(2, 3, 8, 3), torch.zeros(2, 4, 3), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match='divisible'):
        PlainPointTransformer(embed_dims=30, num_heads=4)
