"""Point-MAE (Pang et al., ECCV 2022) on scenes: masked point-group reconstruction with SAM-MTP's encoder.

Reference: Pang-Yatian/Point-MAE ``models/Point_MAE.py`` (``Point_MAE``, ``MaskTransformer``, ``Group``,
``Encoder``, ``TransformerDecoder``) and the Chamfer-L2 of ``extensions/chamfer_dist``; the scene setting is
the reconstruction branch of Bridge3D's ``Pretrain/cfgs/pretrain/base.yaml`` (a Point-MAE fork). The config
``configs/sam_mtp/pretrain/point-mae_plain-transformer_8xb8-120e_scannet-frames.py`` says where every number
comes from; docs/pretraining.md ("Point-MAE on scenes") lists the deliberate differences.
"""
from typing import Dict, Mapping, Optional

import torch
from mmdet3d.registry import MODELS
from torch import Tensor

from projects.sam_mtp.engine.launch import ConfigCheckError, _iter_dataset_cfgs

from ..tokenizers.point_tokens import PointTokens
from .base import BaseTokenAlgorithm
from .token_utils import random_token_mask, unpack_point_inputs

GROUP_SIZE_SETTING = 'model.tokenizer.num_points_per_token'


@MODELS.register_module()
class PointMAE(BaseTokenAlgorithm):
    """tokenizer -> random token mask -> backbone on the visible tokens -> decoder with mask tokens -> head
    predicting each masked token's point group -> Chamfer-L2 against the true group.

    * Tokens: ``FPSKNNTokenizer`` (FPS centres, kNN groups in local coordinates = Point-MAE's ``Group``).
    * Masking: per sample, ``round(mask_ratio * M_real)`` of its real tokens, uniformly at random
      (:func:`.token_utils.random_token_mask`; Point-MAE's ``_mask_center_rand``). Padding is never masked.
    * Encoder: the ``PlainPointTransformer`` of SAM-MTP (``self.backbone``, the same keys), run on the visible
      tokens only (masked tokens are removed from the sequence, as Point-MAE's ``x_vis``).
    * Decoder (``MaskedTokenDecoder``): visible features in their slots, a learned mask token in the masked
      ones, the centre embedding of every token added before every block, final LayerNorm.
    * Head (``PointGroupReconstructionHead``): Linear to ``3 * S`` per masked token, read as (S, 3), and its
      loss (Chamfer-L2: per direction the mean squared distance to the nearest point, the two summed) against
      the masked token's true local coordinates. The targets are data (the tokenizer has no parameters) and
      are detached, so the masked groups reach the loss only as targets.

    Checkpoints hold ``backbone.*`` (the encoder every fine-tuning config loads with
    ``init_cfg=dict(type='Pretrained', prefix='backbone.')``), ``decoder.*`` and ``head.*``.

    Bad input: a sample with fewer valid points than the group size S cannot give S distinct neighbours; its
    first batch raises :class:`ConfigCheckError` naming ``model.tokenizer.num_points_per_token`` and the
    frame's file (``tools/train.py`` prints it as one ``error:`` line), and :meth:`check_train_config` refuses
    a config whose pipeline samples fewer points per scene than S before the Runner is built.

    Args:
        tokenizer (dict): ``FPSKNNTokenizer`` (needs ``num_points_per_token``).
        backbone (dict): ``PlainPointTransformer``.
        decoder (dict): ``MaskedTokenDecoder``.
        head (dict): ``PointGroupReconstructionHead``; ``num_points`` is filled with the group size and must
            equal it.
        mask_ratio (float): fraction of real tokens masked, in (0, 1). Default 0.75 (Bridge3D's scene setting;
            Point-MAE's object setting is 0.6).
        data_preprocessor (dict, optional): default ``BaseDataPreprocessor``.
    """

    def __init__(self,
                 tokenizer: dict,
                 backbone: dict,
                 decoder: dict,
                 head: dict,
                 mask_ratio: float = 0.75,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        owner = type(self).__name__
        if not 0. < mask_ratio < 1.:
            raise ValueError(f'{owner}: mask_ratio must be in (0, 1), got {mask_ratio}')
        self.mask_ratio = mask_ratio
        self.tokenizer = MODELS.build(tokenizer)
        group_size = getattr(self.tokenizer, 'num_points_per_token', None)
        if not isinstance(group_size, int):
            raise ValueError(f'{owner}: the tokenizer ({type(self.tokenizer).__name__}) has no fixed '
                             'num_points_per_token; use FPSKNNTokenizer')
        self.group_size = group_size
        self.backbone = MODELS.build(backbone)
        self.decoder = MODELS.build(decoder)
        head = dict(head)
        given = head.setdefault('num_points', group_size)
        if given != group_size:
            raise ValueError(f'{owner}: head.num_points={given} but {GROUP_SIZE_SETTING}={group_size}')
        self.head = MODELS.build(head)

    # ----------------------------------------------------------------- bad input
    @staticmethod
    def check_train_config(cfg) -> Optional[str]:
        """The problem of a config whose train pipeline samples fewer points per scene than the group size,
        or None. Called by ``tools/train.py`` before the Runner is built (``engine.launch``)."""
        group_size = cfg.model.get('tokenizer', {}).get('num_points_per_token', 128)  # FPSKNNTokenizer default
        loader = cfg.get('train_dataloader') or {}
        for dataset in _iter_dataset_cfgs(loader.get('dataset')):
            for i, transform in enumerate(dataset.get('pipeline') or []):
                if isinstance(transform, dict) and transform.get('type') == 'FrameSamplePoints':
                    num_points = transform.get('num_points', 20000)  # FrameSamplePoints' default
                    if num_points is not None and num_points < group_size:
                        return (f'{GROUP_SIZE_SETTING}={group_size} exceeds the {num_points} points per scene '
                                f'of train_dataloader.dataset.pipeline[{i}] (FrameSamplePoints num_points='
                                f'{num_points}): Point-MAE reconstructs groups of that many distinct points')
        return None

    def _check_group_size(self, inputs: Mapping, data_samples: Optional[Mapping]) -> None:
        points, point_region = unpack_point_inputs(inputs, type(self).__name__)
        if point_region is None:
            counts = torch.full(points.shape[:1], points.shape[1], dtype=torch.long)
        else:
            counts = (point_region >= 0).sum(dim=1)
        short = counts < self.group_size
        if not bool(short.any()):
            return
        b = int(short.nonzero()[0])
        meta = (data_samples or {}).get('metainfo') if isinstance(data_samples, Mapping) else None
        where = (meta[b].get('label_path') if isinstance(meta, (list, tuple)) and len(meta) > b else None) \
            or f'sample {b} of the batch'
        raise ConfigCheckError(f'{where}: {int(counts[b])} points, fewer than {GROUP_SIZE_SETTING}='
                               f'{self.group_size} (Point-MAE reconstructs groups of that many distinct points)')

    # ----------------------------------------------------------------- BaseModel API
    def loss(self, inputs: Mapping, data_samples: Optional[Mapping] = None) -> Dict[str, Tensor]:
        self._check_group_size(inputs, data_samples)
        tokens = self.tokenize(inputs)
        return self.reconstruct(tokens, random_token_mask(tokens.padding_mask, self.mask_ratio))

    def reconstruct(self, tokens: PointTokens, masked: Tensor) -> Dict[str, Tensor]:
        """The reconstruction loss of the tokens where ``masked`` (B, M) is True (padding is ignored).

        Returns ``loss_recon`` (mean Chamfer-L2 over masked tokens) and, logged only, ``masked_tokens``.
        """
        masked = masked & ~tokens.padding_mask
        visible = self.backbone.encode_visible(tokens, ~masked)
        decoded = self.decoder(visible.features, visible.index, tokens.centers, tokens.padding_mask)
        batch_idx, slot_idx = masked.nonzero(as_tuple=True)
        pred = self.head(decoded[batch_idx, slot_idx])
        target = tokens.neighborhoods[batch_idx, slot_idx].detach()
        loss = self.head.loss(pred, target)
        # Logged, not optimised (mmengine sums only keys containing "loss").
        return dict(loss_recon=loss, masked_tokens=loss.new_tensor(float(batch_idx.numel())))

