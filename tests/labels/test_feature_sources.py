"""Feature sources: DINOv2 settings through mmpretrain's VisionTransformer loaded by path, the random stand-in,
checkpoint errors, and the official-DINOv2 key converter."""
import numpy as np
import pytest
import torch

from projects.sam_mtp.labels import CheckpointMismatchError, build_label_source
from projects.sam_mtp.labels.sources.convert_dinov2 import convert_dinov2_state_dict
from projects.sam_mtp.labels.sources.feature_sources import IMAGENET_MEAN, IMAGENET_STD, patch_aligned_size
from projects.sam_mtp.testing import TINY_VIT_ARCH, build_tiny_vit, tiny_vit_source_cfg


def test_patch_aligned_size_keeps_aspect():
    assert patch_aligned_size(968, 1296, 448, 14) == (448, 602)  # ScanNet colour -> 32 x 43 patches
    assert patch_aligned_size(480, 640, 448, 14) == (448, 602)
    assert patch_aligned_size(640, 480, 224, 14) == (294, 224)
    for h, w in [(100, 333), (72, 96), (500, 20)]:
        out = patch_aligned_size(h, w, 56, 14)
        assert out[0] % 14 == 0 and out[1] % 14 == 0 and min(out) == 56
        assert abs(out[1] / out[0] - w / h) <= 7 / 56 * (w / h) + 1e-9  # within half a patch


def test_dinov2_source_matches_mmpretrain_forward(tiny_vit_checkpoint):
    """Image preprocessing + forward. With ``interpolate_offset=0`` the position embedding is resized to the exact
    grid, as mmpretrain's own forward does; the default (the official DINOv2 resize) is pinned against the
    official architecture in test_dinov2_parity.py."""
    source = build_label_source(tiny_vit_source_cfg(tiny_vit_checkpoint, interpolate_offset=0.0))
    assert source.feature_dim == 32
    image = np.random.default_rng(0).integers(0, 255, (72, 96, 3), dtype=np.uint8)
    feats = source(image)
    assert feats.shape == (32, 4, 5) and feats.dtype == torch.float32  # 56 x 70 input, patch 14
    # Reference: the same weights loaded into a fresh VisionTransformer, run on the normalised resized image.
    import cv2
    ref_model = build_tiny_vit()
    ref_model.eval()  # mmpretrain backbones do not return self from train()
    state = torch.load(tiny_vit_checkpoint)['state_dict']
    ref_model.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()})
    resized = cv2.resize(image, (70, 56), interpolation=cv2.INTER_AREA).astype(np.float32)
    x = (torch.from_numpy(resized) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    with torch.no_grad():
        ref = ref_model(x.permute(2, 0, 1)[None])[-1][0]
    torch.testing.assert_close(feats, ref, atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in source.model.parameters())


def test_dinov2_checkpoint_errors(tiny_vit_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match=r'missing\.pth: DINOv2 ViT checkpoint does not exist'):
        build_label_source(tiny_vit_source_cfg(str(tmp_path / 'missing.pth')))
    # A checkpoint of another architecture: every layer has the wrong width.
    with pytest.raises(CheckpointMismatchError) as info:
        build_label_source(tiny_vit_source_cfg(tiny_vit_checkpoint, arch=dict(TINY_VIT_ARCH, embed_dims=48)))
    assert 'tiny_vit.pth' in str(info.value) and 'shape mismatches' in str(info.value)
    assert 'cls_token: checkpoint (1, 1, 32) vs model (1, 1, 48)' in str(info.value)
    # A checkpoint with one layer fewer: missing keys are listed by name.
    with pytest.raises(CheckpointMismatchError, match=r"missing keys\), first layers\.2\.\S+ \(missing\)"):
        build_label_source(tiny_vit_source_cfg(tiny_vit_checkpoint, arch=dict(TINY_VIT_ARCH, num_layers=3)))
    # The position embedding of another img_size must not be silently resized.
    with pytest.raises(CheckpointMismatchError, match='pos_embed'):
        build_label_source(tiny_vit_source_cfg(tiny_vit_checkpoint, img_size=70))


def test_random_stand_in_is_seeded():
    a = build_label_source(dict(type='RandomViTFeatureSource', seed=3, short_side=28))
    b = build_label_source(dict(type='RandomViTFeatureSource', seed=3, short_side=28))
    c = build_label_source(dict(type='RandomViTFeatureSource', seed=4, short_side=28))
    image = np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    assert a(image).shape == (64, 2, 3)
    torch.testing.assert_close(a(image), b(image))
    assert not torch.allclose(a(image), c(image))
    state = torch.get_rng_state()
    build_label_source(dict(type='RandomViTFeatureSource', seed=3, short_side=28))
    assert torch.equal(state, torch.get_rng_state())  # building does not disturb the global RNG
    with pytest.raises(ValueError, match='RGB uint8'):
        a(image.astype(np.float32))


def test_official_dinov2_keys_convert_to_mmpretrain(tmp_path):
    """Official DINOv2 key names (written out by hand) map onto every key of the mmpretrain model."""
    model = build_tiny_vit()
    torch.manual_seed(0)
    official = {'cls_token': torch.randn(1, 1, 32), 'pos_embed': torch.randn(1, 17, 32),
                'mask_token': torch.randn(1, 32), 'patch_embed.proj.weight': torch.randn(32, 3, 14, 14),
                'patch_embed.proj.bias': torch.randn(32), 'norm.weight': torch.randn(32), 'norm.bias': torch.randn(32)}
    for i in range(2):
        for name, shape in [('norm1.weight', (32, )), ('norm1.bias', (32, )), ('attn.qkv.weight', (96, 32)),
                            ('attn.qkv.bias', (96, )), ('attn.proj.weight', (32, 32)), ('attn.proj.bias', (32, )),
                            ('ls1.gamma', (32, )), ('norm2.weight', (32, )), ('norm2.bias', (32, )),
                            ('mlp.fc1.weight', (64, 32)), ('mlp.fc1.bias', (64, )), ('mlp.fc2.weight', (32, 64)),
                            ('mlp.fc2.bias', (32, )), ('ls2.gamma', (32, ))]:
            official[f'blocks.{i}.{name}'] = torch.randn(shape)
    converted = convert_dinov2_state_dict(official)
    model.load_state_dict(converted, strict=True)
    assert torch.equal(model.layers[1].attn.gamma1.weight, official['blocks.1.ls1.gamma'])
    assert torch.equal(model.layers[0].ffn.layers[0][0].weight, official['blocks.0.mlp.fc1.weight'])
    assert torch.equal(model.ln1.bias, official['norm.bias'])
    chunked = {k.replace('blocks.1.', 'blocks.0.1.'): v for k, v in official.items()}  # block-chunk layout
    assert convert_dinov2_state_dict(chunked).keys() == converted.keys()
    with pytest.raises(KeyError, match='register tokens'):
        convert_dinov2_state_dict(dict(official, register_tokens=torch.zeros(1, 4, 32)))
    # The command line writes a checkpoint DINOv2FeatureSource loads.
    from projects.sam_mtp.labels.sources.convert_dinov2 import main
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'converted.pth')
    official['pos_embed'] = torch.randn(1, 17, 32)
    torch.save(official, src)
    main([src, dst])
    source = build_label_source(tiny_vit_source_cfg(dst))
    assert torch.equal(source.model.pos_embed, official['pos_embed'])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_dinov2_source_on_cuda_matches_cpu(tiny_vit_checkpoint):
    image = np.random.default_rng(0).integers(0, 255, (72, 96, 3), dtype=np.uint8)
    cpu = build_label_source(tiny_vit_source_cfg(tiny_vit_checkpoint))(image)
    gpu = build_label_source(tiny_vit_source_cfg(tiny_vit_checkpoint, device='cuda'))(image)
    assert gpu.device.type == 'cuda'
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


def test_cuda_device_without_cuda_is_an_error(tiny_vit_checkpoint, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(RuntimeError, match='CUDA is not available'):
        build_label_source(tiny_vit_source_cfg(tiny_vit_checkpoint, device='cuda'))
