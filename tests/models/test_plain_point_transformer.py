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


class Bridge3DAttention(torch.nn.Module):
    """Bridge3D ``Pretrain/models/transformer.py`` ``Attention`` as read there: qkv without bias (the default
    ``qkv_bias=False`` is never overridden), explicit softmax(q k^T * d^-0.5) v, output projection with bias."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = torch.nn.Linear(dim, dim * 3, bias=False)
        self.proj = torch.nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Bridge3DBlock(torch.nn.Module):
    """Bridge3D ``Block`` without the contrast tokens: x + attn(norm1(x)), x + mlp(norm2(x)), MLP ratio 2."""

    def __init__(self, dim, num_heads, mlp_ratio=2.):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim)
        self.attn = Bridge3DAttention(dim, num_heads)
        self.norm2 = torch.nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.fc1, self.act, self.fc2 = torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


def test_blocks_match_bridge3d_and_have_no_qkv_bias():
    """Our stack (no padding) = Bridge3D's TransformerDecoder loop: x = block(x + pos) per block, final LN."""
    from projects.sam_mtp.models.backbones import TransformerStack
    torch.manual_seed(0)
    ours = TransformerStack(32, num_layers=2, num_heads=4, mlp_ratio=2.).eval()
    assert not [k for k in ours.state_dict() if k.endswith('qkv.bias')]
    ref_blocks = torch.nn.ModuleList([Bridge3DBlock(32, 4) for _ in range(2)])
    ref_norm = torch.nn.LayerNorm(32)
    for block, ref in zip(ours.blocks, ref_blocks):
        with torch.no_grad():
            for name in ('norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias', 'attn.qkv.weight',
                         'attn.proj.weight', 'attn.proj.bias'):
                ref.get_parameter(name).copy_(block.get_parameter(name))
            ref.fc1.weight.copy_(block.mlp[0].weight), ref.fc1.bias.copy_(block.mlp[0].bias)
            ref.fc2.weight.copy_(block.mlp[3].weight), ref.fc2.bias.copy_(block.mlp[3].bias)
    with torch.no_grad():
        ref_norm.weight.copy_(torch.rand(32)), ref_norm.bias.copy_(torch.rand(32))
        ours.norm.weight.copy_(ref_norm.weight), ours.norm.bias.copy_(ref_norm.bias)
    x, pos = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
    expected = x
    for ref in ref_blocks:
        expected = ref(expected + pos)
    expected = ref_norm(expected)
    torch.testing.assert_close(ours(x, pos, torch.zeros(2, 5, dtype=torch.bool)), expected, atol=1e-5, rtol=1e-5)


def test_initialisation_and_drop_path_follow_bridge3d():
    from mmcv.cnn.bricks import DropPath

    from projects.sam_mtp.models.necks import MaskedTokenDecoder
    torch.manual_seed(0)
    encoder = PlainPointTransformer(embed_dims=64, num_layers=3, num_heads=4)  # Bridge3D widths, narrower
    weights = [m for m in encoder.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))]
    assert len(weights) == 4 + 2 + 3 * 4  # mini-PointNet convs, centre MLP, qkv/proj/fc1/fc2 per block
    for m in weights:  # trunc-normal(0.02), zero bias (MaskTransformer._init_weights)
        assert m.weight.std().item() == pytest.approx(0.02, rel=0.15) and m.weight.abs().max() < 0.02 * 6
        assert m.bias is None or torch.all(m.bias == 0)
    # Stochastic depth linearly spaced to 0.1 over the encoder blocks (Bridge3D: linspace(0, 0.1, depth)).
    rates = [b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0. for b in encoder.encoder.blocks]
    assert rates == pytest.approx([0.0, 0.05, 0.1])
    decoder = MaskedTokenDecoder(in_channels=64, embed_dims=64)
    rates = [b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0. for b in decoder.decoder.blocks]
    assert rates == pytest.approx([0.0, 0.1])  # ReCon.py: MAE_decoder drop_path_rate linspace(0, 0.1, 2)
    assert not [k for k in decoder.state_dict() if k.endswith('qkv.bias')]
    for m in decoder.decoder.modules():  # xavier-uniform, zero bias (TransformerDecoder._init_weights)
        if isinstance(m, torch.nn.Linear):
            bound = (6 / (m.in_features + m.out_features)) ** 0.5
            assert m.weight.abs().max() <= bound
            assert m.weight.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.1)
            assert m.bias is None or torch.all(m.bias == 0)
    assert decoder.mask_token.std().item() == pytest.approx(0.02, rel=0.3)
