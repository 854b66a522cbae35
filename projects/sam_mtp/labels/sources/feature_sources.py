"""Feature sources: a frozen 2D ViT that turns an RGB image into a (D, h, w) grid of patch features.

A feature source is called as ``source(image)`` with the full RGB uint8 colour frame and returns the patch
tokens of the last layer (after the final LayerNorm) as a float tensor on its device. The frame is resized as a
whole (no crop, aspect kept up to rounding) so that its short side is ``short_side`` and both sides are
multiples of the patch size; the grid therefore covers exactly the field of view of the mask image and
:func:`.pooling.pool_region_features` can up-sample it to the mask resolution.

Models are mmpretrain ``VisionTransformer`` backbones. DINOv2 settings follow mmpretrain's
``configs/dinov2/vit-base-p14_dinov2-pre_headless.py``: arch ``base``, patch 14, ``img_size=518`` (the
checkpoint's 37x37 position embedding), layer scale 1e-5, final norm, ImageNet mean/std on RGB.

Position embedding at other input sizes: frames run at e.g. 448x602 (a 32x43 patch grid), so the 37x37 grid is
resized. mmpretrain resizes it to the exact target grid; the official DINOv2 model
(``DinoVisionTransformer.interpolate_pos_encoding`` in facebookresearch/dinov2) calls bicubic
``F.interpolate`` with the *scale factor* ``(target + 0.1) / 37`` instead, which samples the grid at slightly
different positions (with a random-weight ViT-B the patch features differ by up to 0.69). Our forward
(:meth:`ViTFeatureSource.patch_features`) runs mmpretrain's modules with the official interpolation, so the
features equal the official model's at every input size (``tests/labels/test_dinov2_parity.py``).
"""
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS

from ..runner.sharding import resolve_device
from .checkpoints import load_state_dict_strict, require_checkpoint

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def patch_aligned_size(height: int, width: int, short_side: int, patch_size: int):
    """(H, W) with the short side ``short_side`` rounded to the patch size and the long side scaled by the same
    factor, rounded to the nearest multiple of the patch size (aspect error below half a patch)."""
    short = max(patch_size, int(round(short_side / patch_size)) * patch_size)
    scale = short / min(height, width)
    def fit(side):
        return max(patch_size, int(round(side * scale / patch_size)) * patch_size)
    return (short, fit(width)) if height <= width else (fit(height), short)


def interpolate_pos_embed(pos_embed: torch.Tensor, src_grid: Tuple[int, int], dst_grid: Tuple[int, int],
                          offset: float = 0.1, num_extra_tokens: int = 1) -> torch.Tensor:
    """Resize a ViT position embedding (1, extra + h*w, C) from ``src_grid`` to ``dst_grid`` the way the
    official DINOv2 model does.

    Bicubic, no antialiasing, no corner alignment. With ``offset > 0`` the interpolation is driven by the scale
    factor ``(dst + offset) / src`` per axis (DINOv2's default 0.1, kept there for compatibility with its
    trained weights); the output size is still ``dst`` because the size is rounded down. ``offset=0`` gives an
    exact-size resize (mmpretrain's ``resize_pos_embed``). The embedding is returned unchanged when the grids
    are equal. Computed in float32, returned in the input dtype.
    """
    src_grid, dst_grid = tuple(src_grid), tuple(dst_grid)
    if src_grid == dst_grid:
        return pos_embed
    extra, grid = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    dims = grid.shape[-1]
    if grid.shape[1] != src_grid[0] * src_grid[1]:
        raise ValueError(f'position embedding has {grid.shape[1]} grid tokens, not {src_grid[0]}x{src_grid[1]}')
    grid = grid.float().reshape(1, src_grid[0], src_grid[1], dims).permute(0, 3, 1, 2)
    if offset:
        scale = tuple((d + offset) / s for d, s in zip(dst_grid, src_grid))
        grid = F.interpolate(grid, scale_factor=scale, mode='bicubic', align_corners=False)
    else:
        grid = F.interpolate(grid, size=dst_grid, mode='bicubic', align_corners=False)
    if tuple(grid.shape[-2:]) != dst_grid:  # cannot happen for offset in [0, 1); a guard, not a fallback
        raise RuntimeError(f'position embedding resized to {tuple(grid.shape[-2:])} instead of {dst_grid}')
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dims)
    return torch.cat([extra.float(), grid], dim=1).to(pos_embed.dtype)


class ViTFeatureSource:
    """Shared machinery: an mmpretrain VisionTransformer returning its last patch-token map.

    Args:
        arch: mmpretrain arch name (``base``, ``small``, ...) or a dict with ``embed_dims``, ``num_layers``,
            ``num_heads``, ``feedforward_channels``.
        patch_size, img_size, layer_scale_init_value: VisionTransformer settings (img_size is the size of the
            stored position embedding; other input sizes interpolate it).
        short_side: short side of the network input in pixels (rounded to the patch size).
        device: torch device; ``cuda`` becomes ``cuda:$LOCAL_RANK`` under a distributed launcher.
        fp16: run the ViT under CUDA autocast (features are stored as float16 anyway).
        interpolate_offset: position-embedding resize of the official DINOv2 model (see
            :func:`interpolate_pos_embed`); 0.1 as in DINOv2, 0 for mmpretrain's exact-size resize.
    """

    def __init__(self, arch: Union[str, dict] = 'base', patch_size: int = 14, img_size: int = 518,
                 layer_scale_init_value: float = 1e-5, short_side: int = 448, device: str = 'cuda',
                 fp16: bool = False, interpolate_offset: float = 0.1):
        from mmpretrain.models import VisionTransformer
        if not 0 <= interpolate_offset < 1:
            raise ValueError(f'interpolate_offset must be in [0, 1), got {interpolate_offset}')
        self.device = resolve_device(device)
        self.patch_size = patch_size
        self.short_side = short_side
        self.fp16 = fp16
        self.interpolate_offset = interpolate_offset
        self.model = VisionTransformer(
            arch=arch, img_size=img_size, patch_size=patch_size, layer_scale_init_value=layer_scale_init_value,
            out_type='featmap', final_norm=True, out_indices=-1)
        self.feature_dim = self.model.embed_dims
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        self._mean, self._std = mean.to(self.device), std.to(self.device)

    def _finish(self) -> None:
        self.model.to(self.device).eval()
        self.model.requires_grad_(False)

    def input_size(self, height: int, width: int):
        return patch_aligned_size(height, width, self.short_side, self.patch_size)

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images (H, W multiples of the patch size) -> (B, C, H/p, W/p) patch tokens
        of the last layer after the final LayerNorm.

        mmpretrain's modules in the order of its forward, with the position embedding resized as the official
        DINOv2 model does (mmpretrain's own forward resizes it to the exact grid instead).
        """
        model = self.model
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(f'input size {tuple(x.shape[-2:])} is not a multiple of the patch size '
                             f'{self.patch_size}')
        tokens, grid = model.patch_embed(x)
        tokens = torch.cat([model.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + interpolate_pos_embed(model.pos_embed, model.patch_resolution, grid,
                                                self.interpolate_offset, model.num_extra_tokens)
        tokens = model.pre_norm(model.drop_after_pos(tokens))
        for layer in model.layers:
            tokens = layer(tokens)
        tokens = model.ln1(tokens)  # final_norm=True
        patches = tokens[:, model.num_extra_tokens:]
        return patches.reshape(tokens.shape[0], grid[0], grid[1], -1).permute(0, 3, 1, 2)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> torch.Tensor:
        import cv2
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}')
        h, w = self.input_size(*image.shape[:2])
        interp = cv2.INTER_AREA if h < image.shape[0] else cv2.INTER_CUBIC
        resized = cv2.resize(image, (w, h), interpolation=interp)
        x = torch.from_numpy(resized).to(self.device).permute(2, 0, 1).float()
        x = ((x - self._mean) / self._std)[None]
        with torch.autocast(self.device.type, enabled=self.fp16 and self.device.type == 'cuda'):
            feats = self.patch_features(x)
        return feats[0].float()


@MODELS.register_module()
class DINOv2FeatureSource(ViTFeatureSource):
    """DINOv2 ViT-B/14 (the paper's 2D teacher) built with mmpretrain's VisionTransformer.

    Args:
        checkpoint: mmpretrain-format DINOv2 weights (a classifier checkpoint with ``backbone.*`` keys or a bare
            backbone state dict), e.g. mmpretrain's ``vit-base-p14_dinov2-pre_3rdparty_20230426-ba246503.pth``.
            Official DINOv2 (torch hub) weights are converted with :mod:`.convert_dinov2`.
        Other arguments: see :class:`ViTFeatureSource`.
    """

    def __init__(self, checkpoint: str, arch: Union[str, dict] = 'base', patch_size: int = 14, img_size: int = 518,
                 layer_scale_init_value: float = 1e-5, short_side: int = 448, device: str = 'cuda',
                 fp16: bool = False, interpolate_offset: float = 0.1):
        require_checkpoint(checkpoint, 'DINOv2 ViT')
        super().__init__(arch, patch_size, img_size, layer_scale_init_value, short_side, device, fp16,
                         interpolate_offset)
        load_state_dict_strict(self.model, checkpoint, 'DINOv2 ViT', strip_prefixes=('module.', 'backbone.'))
        self._finish()


@MODELS.register_module()
class RandomViTFeatureSource(ViTFeatureSource):
    """Stand-in for demos and tests: a small randomly initialised ViT (seeded), no checkpoint.

    It knows no semantics, but on the synthetic scenes, where every class has its own colour, its region features
    still carry class (docs/demo_results.md measures it); it exercises the exact code path of DINOv2FeatureSource at
    a fraction of the cost. Never use it for real labels.
    """

    def __init__(self, arch: Optional[dict] = None, patch_size: int = 14, img_size: int = 224,
                 layer_scale_init_value: float = 1e-5, short_side: int = 224, device: str = 'cpu',
                 fp16: bool = False, seed: int = 0, interpolate_offset: float = 0.1):
        arch = arch or dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            super().__init__(arch, patch_size, img_size, layer_scale_init_value, short_side, device, fp16,
                             interpolate_offset)
            # Linear/conv layers are randomly initialised at construction; the position embedding and class
            # token start at zero, so draw them too (mmengine's init_weights would log every parameter).
            torch.nn.init.trunc_normal_(self.model.pos_embed, std=0.02)
            torch.nn.init.trunc_normal_(self.model.cls_token, std=0.02)
        self._finish()


@MODELS.register_module()
class ClassEmbeddingFeatureSource:
    """Stand-in for demos on synthetic data: per-pixel "features" = a fixed random embedding of the pixel's
    semantic class + Gaussian noise, so that the distillation targets carry class information the way DINOv2's
    do on real images (the random ViT's features of flat synthetic colours carry little).

    Reads ``<scene_dir>/<folder>/<stem>.png`` (uint16 class ids per pixel, the synthetic generator's NYU40
    ``label`` images) and returns a (D, h, w) grid at ``1/stride`` of the image resolution. Deterministic:
    the embedding comes from ``seed``, the noise from the seed and the frame. Never use it for real labels.

    Args:
        feature_dim (int): D. Default 64.
        noise_std (float): std of the per-pixel noise; embeddings have unit-variance entries. Default 0.5.
        folder (str): folder of the class-id images next to ``color/``. Default ``label``.
        stride (int): down-sampling of the returned grid (like a ViT's patch grid). Default 8.
        num_classes (int): ids >= num_classes share the last embedding. Default 256.
        seed (int): embedding and noise seed. Default 0.
    """
    requires_record = True  # LabelGenerator passes the frame record (the image alone has no class ids)

    def __init__(self, feature_dim: int = 64, noise_std: float = 0.5, folder: str = 'label', stride: int = 8,
                 num_classes: int = 256, seed: int = 0):
        self.feature_dim = feature_dim
        self.noise_std = noise_std
        self.folder = folder
        self.stride = stride
        self.seed = seed
        self.embedding = torch.from_numpy(
            np.random.default_rng(seed).standard_normal((num_classes, feature_dim)).astype(np.float32))

    def __call__(self, image: np.ndarray, record) -> torch.Tensor:
        import os

        import cv2

        from ..formats.frames import FrameError
        from ..geometry import frame_seed
        stem = os.path.splitext(os.path.basename(record.color_path))[0]
        path = os.path.join(record.scene_dir, self.folder, f'{stem}.png')
        labels = cv2.imread(path, cv2.IMREAD_UNCHANGED) if os.path.isfile(path) else None
        if labels is None or labels.ndim != 2:
            raise FrameError('missing_file', path, 'class-id image does not exist or is not single-channel')
        h, w = max(1, image.shape[0] // self.stride), max(1, image.shape[1] // self.stride)
        labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int64)
        ids = torch.from_numpy(labels.clip(0, len(self.embedding) - 1))
        rng = frame_seed(self.seed, record.scene, record.frame_id)
        noise = torch.from_numpy(rng.standard_normal((h, w, self.feature_dim)).astype(np.float32))
        return (self.embedding[ids] + self.noise_std * noise).permute(2, 0, 1).contiguous()
