"""DINOv2FeatureSource equals the official DINOv2 model at every input size.

The official architecture (facebookresearch/dinov2 ``dinov2/models/vision_transformer.py`` and
``dinov2/layers/``, as built by ``dinov2/hub/backbones.py``: img_size 518, patch 14, layer scale, no register
tokens, ``interpolate_offset=0.1``, no antialiasing) is rebuilt below in plain PyTorch from a reading of that
source, with its parameter names, so that its random weights go through our key converter
(``convert_dinov2_state_dict``) into the mmpretrain model of the feature source. Only the pieces the inference
path uses are rebuilt (no drop-path, no xFormers, no masking).
"""
import math

import pytest
import torch
from torch import nn

from projects.sam_mtp.labels import build_label_source
from projects.sam_mtp.labels.sources.convert_dinov2 import convert_dinov2_state_dict


class OfficialAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).unbind(2)
        # Written out instead of scaled_dot_product_attention: softmax(q k^T / sqrt(d)) v.
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        attn = (q @ k.transpose(-2, -1) / math.sqrt(c // self.num_heads)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class OfficialLayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class OfficialMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class OfficialBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = OfficialAttention(dim, num_heads)
        self.ls1 = OfficialLayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = OfficialMlp(dim, int(dim * mlp_ratio))
        self.ls2 = OfficialLayerScale(dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class OfficialPatchEmbed(nn.Module):
    def __init__(self, patch_size, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class OfficialDinoViT(nn.Module):
    """DinoVisionTransformer's inference path: patch embed, cls token, interpolated position embedding,
    blocks, final norm; ``patch_tokens`` is ``forward_features(x)['x_norm_patchtokens']``."""

    def __init__(self, dim, depth, num_heads, img_size=518, patch_size=14, mlp_ratio=4.0,
                 interpolate_offset=0.1):
        super().__init__()
        self.patch_size = patch_size
        self.interpolate_offset = interpolate_offset
        self.patch_embed = OfficialPatchEmbed(patch_size, dim)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.blocks = nn.ModuleList([OfficialBlock(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))

    def interpolate_pos_encoding(self, x, w, h):
        # The official names: x is (B, nc, w, h), so "w" is the image height and "h" its width.
        npatch, n = x.shape[1] - 1, self.pos_embed.shape[1] - 1
        if npatch == n and w == h:
            return self.pos_embed
        pos = self.pos_embed.float()
        w0, h0 = w // self.patch_size, h // self.patch_size
        m = int(math.sqrt(n))
        sx, sy = float(w0 + self.interpolate_offset) / m, float(h0 + self.interpolate_offset) / m
        patch_pos = nn.functional.interpolate(pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2),
                                              scale_factor=(sx, sy), mode='bicubic', antialias=False)
        assert (w0, h0) == patch_pos.shape[-2:]
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])
        return torch.cat((pos[:, :1], patch_pos), dim=1).to(x.dtype)

    def patch_tokens(self, x):
        _, _, w, h = x.shape
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(tokens, w, h)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 1:]


def random_official_dinov2(dim, depth, num_heads, seed=0):
    """An official-architecture model with every parameter random (position embedding included, at the
    magnitude of a trained model's), in eval mode."""
    torch.manual_seed(seed)
    model = OfficialDinoViT(dim, depth, num_heads).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('gamma'):
                param.uniform_(0.5, 1.5)
            elif name in ('pos_embed', 'cls_token'):
                param.normal_(0, 1.0)
            elif name.startswith('norm') or '.norm' in name:
                param.normal_(1.0 if name.endswith('weight') else 0.0, 0.1)
            else:
                param.normal_(0, 1.0 / math.sqrt(param.shape[-1] if param.dim() > 1 else dim))
    return model


def converted_source(official, tmp_path, arch, **kwargs):
    path = str(tmp_path / 'converted.pth')
    torch.save(dict(state_dict=convert_dinov2_state_dict(official.state_dict())), path)
    return build_label_source(dict(type='DINOv2FeatureSource', checkpoint=path, arch=arch, patch_size=14,
                                   img_size=518, device='cpu', **kwargs))


def max_abs_diff(official, source, height, width, seed=1):
    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ours = source.patch_features(x)[0].flatten(1).t()  # (h*w, C) in row-major patch order
        ref = official.patch_tokens(x)[0]
    assert ours.shape == ref.shape
    return float((ours - ref).abs().max())


# Small width and depth keep the test fast; the position embedding is the real 37x37 grid of img_size 518.
DIM, DEPTH, HEADS = 48, 2, 3
ARCH = dict(embed_dims=DIM, num_layers=DEPTH, num_heads=HEADS, feedforward_channels=4 * DIM)


@pytest.fixture(scope='module')
def official_and_source(tmp_path_factory):
    official = random_official_dinov2(DIM, DEPTH, HEADS)
    return official, converted_source(official, tmp_path_factory.mktemp('dinov2'), ARCH)


@pytest.mark.parametrize('height,width', [(448, 602), (224, 294), (518, 518), (294, 224)])
def test_features_equal_the_official_model(official_and_source, height, width):
    official, source = official_and_source
    assert max_abs_diff(official, source, height, width) <= 1e-4


def test_exact_size_resize_would_differ(official_and_source, tmp_path):
    """The test has power: mmpretrain's exact-size resize (offset 0) is measurably off at 448x602, not at 518."""
    official, _ = official_and_source
    exact = converted_source(official, tmp_path, ARCH, interpolate_offset=0.0)
    assert max_abs_diff(official, exact, 448, 602) > 1e-2
    assert max_abs_diff(official, exact, 518, 518) <= 1e-4
    # And mmpretrain's own forward is the exact-size resize.
    x = torch.randn(1, 3, 448, 602)
    with torch.no_grad():
        torch.testing.assert_close(exact.model(x)[-1], exact.patch_features(x), atol=1e-5, rtol=1e-5)


def test_bad_input_size_and_offset(official_and_source, tmp_path):
    _, source = official_and_source
    with pytest.raises(ValueError, match='not a multiple of the patch size 14'):
        source.patch_features(torch.zeros(1, 3, 450, 602))
    with pytest.raises(ValueError, match=r'interpolate_offset must be in \[0, 1\)'):
        build_label_source(dict(type='RandomViTFeatureSource', interpolate_offset=1.5))


def measure_vit_b(tmp_path):
    """Max abs differences of a converted random ViT-B/14 with the official model, with the official resize
    (offset 0.1) and mmpretrain's exact-size resize (offset 0), at three sizes (slow on a CPU; docs/labels.md)."""
    official = random_official_dinov2(768, 12, 12)
    arch = dict(embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072)
    out = {}
    for offset in (0.1, 0.0):
        source = converted_source(official, tmp_path, arch, interpolate_offset=offset)
        for size in ((448, 602), (224, 294), (518, 518)):
            out[f'offset={offset} {size[0]}x{size[1]}'] = max_abs_diff(official, source, *size)
    return out
