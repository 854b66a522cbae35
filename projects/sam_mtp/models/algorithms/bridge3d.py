"""Bridge3D pretraining (Chen et al., NeurIPS 2023) on the shared plain point transformer.

Read from Zhimin-C/Bridge3D ``Pretrain/models/ReCon.py`` (the model its ``Pretrain/cfgs/pretrain/base.yaml``
builds) and ``Pretrain/models/transformer.py``; docs/pretraining.md, "Bridge3D pretraining", lists what was read
and every deliberate difference.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Mapping, Optional

import torch
from mmdet3d.registry import MODELS
from torch import Tensor

from ..backbones.plain_point_transformer import PlainPointTransformer
from ..tokenizers.point_tokens import PointTokens
from .base import BaseTokenAlgorithm

# Keys of ``data_samples`` Bridge3D reads (made by ``Bridge3DFrameDataset`` + ``bridge3d_collate``).
BRIDGE3D_TARGET_KEYS = ('region_feat', 'region_mask', 'region_class', 'region_text_feat', 'scene_feat',
                        'caption_feat')


def bridge3d_token_mask(padding_mask: Tensor, mask_ratio: float,
                        generator: Optional[torch.Generator] = None) -> Tensor:
    """(B, M) bool, True for the tokens hidden from the encoder (Bridge3D's ``_mask_center_rand``).

    Per sample with M_real real tokens, ``floor(mask_ratio * M_real)`` of them (the reference's
    ``int(mask_ratio * G)``), chosen uniformly at random; at most M_real - 1 so one token stays visible.
    Padding is never masked.
    """
    if not 0. <= mask_ratio < 1.:
        raise ValueError(f'mask_ratio must be in [0, 1), got {mask_ratio}')
    real = ~padding_mask
    num_real = real.sum(dim=1)
    num_masked = torch.minimum(torch.floor(num_real.double() * mask_ratio).long(), (num_real - 1).clamp(min=0))
    return _random_subset(real, num_masked, generator)


def semantic_guided_keep(masked: Tensor, foreground: Tensor, padding_mask: Tensor, drop_ratio: float,
                         generator: Optional[torch.Generator] = None) -> Tensor:
    """(B, M) bool, the masked tokens whose reconstruction is scored (Bridge3D's "semantic-guided drop").

    Every masked foreground token is kept. Per sample, the number kept is brought up to
    ``num_masked - floor(drop_ratio * M_real)`` (the reference's ``mask_num - int(drop_ratio * G)``) with
    background masked tokens drawn uniformly at random; when the foreground alone exceeds it, only foreground
    tokens are kept. With the reference's 0.75 / 0.7 and 256 tokens, that is at least 13 of the 192 masked tokens.
    """
    if not 0. <= drop_ratio < 1.:
        raise ValueError(f'drop_ratio must be in [0, 1), got {drop_ratio}')
    masked_fg = masked & foreground
    masked_bg = masked & ~foreground
    num_real = (~padding_mask).sum(dim=1)
    budget = masked.sum(dim=1) - torch.floor(num_real.double() * drop_ratio).long()
    num_bg = (budget - masked_fg.sum(dim=1)).clamp(min=0)
    return masked_fg | _random_subset(masked_bg, num_bg, generator)


def _random_subset(candidates: Tensor, counts: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """(B, M) bool: ``counts[b]`` entries of row b drawn uniformly from its True ``candidates``."""
    if generator is None:
        noise = torch.rand(candidates.shape, device=candidates.device)
    else:
        noise = torch.rand(candidates.shape, generator=generator).to(candidates.device)
    noise = noise.masked_fill(~candidates, 2.)  # non-candidates rank last
    rank = noise.argsort(dim=1).argsort(dim=1)
    return (rank < counts[:, None]) & candidates


@contextmanager
def patch_tokens_of_every_block(backbone: PlainPointTransformer) -> Iterator[List[Tensor]]:
    """Collect, during the forward passes run inside the block, the output of every encoder block's first
    LayerNorm: the patch tokens the reference's global queries attend to (``norm1(vis_x)``)."""
    collected: List[Tensor] = []
    handles = [block.norm1.register_forward_hook(lambda module, args, output: collected.append(output))
               for block in backbone.encoder.blocks]
    try:
        yield collected
    finally:
        for handle in handles:
            handle.remove()


@MODELS.register_module()
class Bridge3D(BaseTokenAlgorithm):
    """Bridge3D pretraining: masked point modelling with foundation-model-guided reconstruction and region-
    and scene-level distillation of 2D image features and CLIP text features.

    One step (``loss``):

    1. **Tokens and mask.** FPS + kNN tokens; ``floor(0.75 M)`` random tokens are masked
       (:func:`bridge3d_token_mask`). A token is **foreground** when the SAM region of its centre point has a
       class (``region_class > 0``: a region the open-vocabulary labels named), as the reference reads the
       pseudo class at the FPS centre.
    2. **Encoder** on the visible tokens only; the global queries (cls / img / text,
       :class:`GlobalQueryBranch`) read every block's patch tokens, detached.
    3. **Decoder** (2 blocks) over visible features and mask tokens, centre embeddings of all tokens.
    4. **Losses** (summed, each with its ``loss_weight``):

       * ``loss_rec``: Chamfer-L2 between ``reconstruction_head`` (Linear C -> 3 S) of the decoded masked tokens
         and their S local points, on the masked tokens kept by :func:`semantic_guided_keep` (all foreground,
         background up to the budget set by ``drop_ratio``);
       * ``loss_region_img``: for every SAM region with at least one visible token centre, the mean of
         ``region_image_head`` over those decoded visible tokens regresses the region's 2D feature
         (``region_feat``: DINOv2, mean over the region's pixels); smooth-L1 averaged over regions and channels;
       * ``loss_region_text``: ``region_text_head`` of every decoded visible foreground token regresses the CLIP
         text feature of its region's class; smooth-L1 averaged over tokens and channels;
       * ``loss_scene_img``: ``scene_image_head`` of the img query regresses the frame's image feature
         (``scene_feat``);
       * ``loss_scene_text``: ``scene_text_head`` of the text query regresses the CLIP feature of the frame's
         caption (``caption_feat``).

    All targets are offline data (no gradient). Data contract: ``inputs = dict(points, point_region)`` and
    ``data_samples`` with :data:`BRIDGE3D_TARGET_KEYS` (``Bridge3DFrameDataset`` + ``bridge3d_collate``).

    Args:
        tokenizer (dict): ``FPSKNNTokenizer`` (Bridge3D: 256 tokens x 128 points).
        backbone (dict): ``PlainPointTransformer`` (the encoder every fine-tuning config loads).
        global_queries (dict): ``GlobalQueryBranch``; ``num_layers`` must equal the encoder's.
        decoder (dict): ``MaskedTokenDecoder``.
        reconstruction_head (dict): ``TokenProjector``; ``out_channels`` is filled with 3 x points per token.
        region_image_head, region_text_head, scene_image_head, scene_text_head (dict): ``TokenProjector``s.
        mask_ratio (float): Default 0.75. drop_ratio (float): Default 0.7.
        loss_reconstruction (dict): Default ``ChamferL2Loss``.
        loss_region_image, loss_region_text, loss_scene_image, loss_scene_text (dict): Default
            ``mmdet.SmoothL1Loss`` (beta 1, mean: the reference's ``nn.SmoothL1Loss()``).
    """

    def __init__(self,
                 tokenizer: dict,
                 backbone: dict,
                 global_queries: dict,
                 decoder: dict,
                 reconstruction_head: dict,
                 region_image_head: dict,
                 region_text_head: dict,
                 scene_image_head: dict,
                 scene_text_head: dict,
                 mask_ratio: float = 0.75,
                 drop_ratio: float = 0.7,
                 loss_reconstruction: dict = dict(type='ChamferL2Loss'),
                 loss_region_image: dict = dict(type='mmdet.SmoothL1Loss', beta=1.0),
                 loss_region_text: dict = dict(type='mmdet.SmoothL1Loss', beta=1.0),
                 loss_scene_image: dict = dict(type='mmdet.SmoothL1Loss', beta=1.0),
                 loss_scene_text: dict = dict(type='mmdet.SmoothL1Loss', beta=1.0),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        owner = type(self).__name__
        if not 0. <= mask_ratio < 1. or not 0. <= drop_ratio < 1.:
            raise ValueError(f'{owner}: mask_ratio and drop_ratio must be in [0, 1), got {mask_ratio}, {drop_ratio}')
        self.mask_ratio = mask_ratio
        self.drop_ratio = drop_ratio
        self.tokenizer = MODELS.build(tokenizer)
        self.backbone = MODELS.build(backbone)
        if not isinstance(self.backbone, PlainPointTransformer):
            raise ValueError(f'{owner}: backbone must be a PlainPointTransformer, got {type(self.backbone).__name__}')
        self.global_queries = MODELS.build(global_queries)
        if self.global_queries.num_layers != len(self.backbone.encoder.blocks):
            raise ValueError(f'{owner}: global_queries.num_layers={self.global_queries.num_layers} but the encoder '
                             f'has {len(self.backbone.encoder.blocks)} blocks (one query block reads each)')
        self.img_query = self.global_queries.index('img')
        self.text_query = self.global_queries.index('text')
        self.decoder = MODELS.build(decoder)
        points_out = 3 * self.tokenizer.num_points_per_token
        reconstruction_head = dict(reconstruction_head)
        if reconstruction_head.setdefault('out_channels', points_out) != points_out:
            raise ValueError(f'{owner}: reconstruction_head.out_channels={reconstruction_head["out_channels"]} but '
                             f'the tokens have {points_out // 3} points (needs {points_out})')
        self.reconstruction_head = MODELS.build(reconstruction_head)
        self.region_image_head = MODELS.build(region_image_head)
        self.region_text_head = MODELS.build(region_text_head)
        self.scene_image_head = MODELS.build(scene_image_head)
        self.scene_text_head = MODELS.build(scene_text_head)
        self.loss_reconstruction = MODELS.build(loss_reconstruction)
        self.loss_region_image = MODELS.build(loss_region_image)
        self.loss_region_text = MODELS.build(loss_region_text)
        self.loss_scene_image = MODELS.build(loss_scene_image)
        self.loss_scene_text = MODELS.build(loss_scene_text)

    # ----------------------------------------------------------------- target lookup
    def _check_targets(self, tokens: PointTokens, data_samples: Mapping) -> None:
        owner = type(self).__name__
        if not isinstance(data_samples, Mapping) or any(k not in data_samples for k in BRIDGE3D_TARGET_KEYS):
            got = sorted(data_samples) if isinstance(data_samples, Mapping) else type(data_samples).__name__
            raise ValueError(f'{owner}: data_samples must hold {list(BRIDGE3D_TARGET_KEYS)} (made by '
                             f'Bridge3DFrameDataset and bridge3d_collate), got {got}')
        num_rows = data_samples['region_feat'].shape[1]
        rows = tokens.region_index - 1
        has_region = tokens.region_index > 0
        bad = has_region & ((rows >= num_rows) |
                            ~data_samples['region_mask'].gather(1, rows.clamp(0, max(num_rows - 1, 0))))
        if bool(bad.any()):
            sample = int(bad.nonzero()[0, 0])
            raise ValueError(f'{owner}: sample {sample} has points with region ids that have no target row '
                             f'(point_region and region_feat disagree)')

    @staticmethod
    def _region_lookup(values: Tensor, region_index: Tensor) -> Tensor:
        """values (B, R, ...) at every token's region row -> (B, M, ...); tokens without a region get row 0
        (callers mask them out)."""
        rows = (region_index - 1).clamp(min=0)
        batch_idx = torch.arange(values.shape[0], device=values.device)[:, None]
        return values[batch_idx, rows]

    # ----------------------------------------------------------------- losses
    def loss(self, inputs: Mapping, data_samples: Mapping) -> Dict[str, Tensor]:
        tokens = self.tokenize(inputs)
        self._check_targets(tokens, data_samples)
        real = ~tokens.padding_mask
        has_region = tokens.region_index > 0
        foreground = has_region & (self._region_lookup(data_samples['region_class'], tokens.region_index) > 0)

        masked = bridge3d_token_mask(tokens.padding_mask, self.mask_ratio)
        visible = real & ~masked
        with patch_tokens_of_every_block(self.backbone) as block_tokens:
            encoded = self.backbone.encode_visible(tokens, visible)
        queries = self.global_queries(block_tokens, encoded.padding_mask, self.backbone.encoder.norm)
        decoded = self.decoder(encoded.features, encoded.index, tokens.centers, tokens.padding_mask)

        # Reconstruction of the kept masked tokens' local points.
        kept = semantic_guided_keep(masked, foreground, tokens.padding_mask, self.drop_ratio)
        num_points = tokens.neighborhoods.shape[2]
        rebuilt = self.reconstruction_head(decoded[kept]).reshape(-1, num_points, 3)
        losses = dict(loss_rec=self.loss_reconstruction(rebuilt, tokens.neighborhoods[kept]))

        # Region-level image distillation: per (sample, region), the mean head output of its visible tokens.
        region_tokens = visible & has_region
        batch_idx, slot_idx = region_tokens.nonzero(as_tuple=True)
        num_rows = data_samples['region_feat'].shape[1]
        flat_region = batch_idx * num_rows + tokens.region_index[batch_idx, slot_idx] - 1
        regions, token_region = torch.unique(flat_region, return_inverse=True)
        pred = self.region_image_head(decoded[batch_idx, slot_idx])
        summed = pred.new_zeros(regions.numel(), pred.shape[-1]).index_add_(0, token_region, pred)
        counts = torch.bincount(token_region, minlength=regions.numel()).clamp(min=1)
        region_target = data_samples['region_feat'].flatten(0, 1)[regions]
        losses['loss_region_img'] = self.loss_region_image(summed / counts[:, None].to(pred.dtype), region_target)

        # Region-level text distillation on the visible foreground tokens.
        text_tokens = visible & foreground
        text_target = self._region_lookup(data_samples['region_text_feat'], tokens.region_index)[text_tokens]
        losses['loss_region_text'] = self.loss_region_text(self.region_text_head(decoded[text_tokens]), text_target)

        # Scene-level distillation through the img and text queries.
        losses['loss_scene_img'] = self.loss_scene_image(self.scene_image_head(queries[:, self.img_query]),
                                                         data_samples['scene_feat'])
        losses['loss_scene_text'] = self.loss_scene_text(self.scene_text_head(queries[:, self.text_query]),
                                                         data_samples['caption_feat'])
        # Logged, not optimised (mmengine sums only keys containing "loss").
        losses.update(
            masked_tokens=decoded.new_tensor(float(masked.sum())),
            reconstructed_tokens=decoded.new_tensor(float(kept.sum())),
            distilled_regions=decoded.new_tensor(float(regions.numel())),
            text_tokens=decoded.new_tensor(float(text_tokens.sum())))
        return losses

