"""Stage 1 of SAM-MTP: region-level dense distillation of 2D foundation-model features into point tokens."""
from typing import Dict, List, Mapping, Optional

from mmdet3d.registry import MODELS
from torch import Tensor

from ..tokenizers.point_tokens import PointTokens
from .base import BaseTokenAlgorithm
from .token_utils import gather_region_targets


@MODELS.register_module()
class SamMtpDistiller(BaseTokenAlgorithm):
    """tokenizer -> backbone -> projector -> group-balanced smooth-L1 to the region targets (§3.2-3.4).

    Data contract (``sam_mtp_collate``): ``inputs = dict(points (B, N, 3), point_region (B, N))`` and
    ``data_samples = dict(region_feat (B, R, D), region_weight (B, R), region_mask (B, R),
    num_groups (B,), ...)``. Token i of a sample regresses row ``region_index_i - 1`` of its
    ``region_feat``; tokens without a region (fallback, padding) get no loss.

    Args:
        tokenizer (dict): e.g. ``SAMGuidedTokenizer`` or ``FPSKNNTokenizer``.
        backbone (dict): ``PlainPointTransformer``.
        projector (dict): ``TokenProjector`` to the 2D feature size (Linear 256 -> 768 by default).
        loss (dict): ``GroupBalancedDistillLoss``.
        data_preprocessor (dict, optional): moves the collated batch to the device; default
            ``BaseDataPreprocessor``.
    """

    def __init__(self,
                 tokenizer: dict,
                 backbone: dict,
                 projector: dict,
                 loss: dict = dict(type='GroupBalancedDistillLoss'),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.tokenizer = MODELS.build(tokenizer)
        self.backbone = MODELS.build(backbone)
        self.projector = MODELS.build(projector)
        self.loss_distill = MODELS.build(loss)

    def loss(self, inputs: Mapping, data_samples: Mapping) -> Dict[str, Tensor]:
        features, tokens = self.extract_feat(inputs)
        return self.distill_losses(features, tokens, data_samples)

    def distill_losses(self, features: Tensor, tokens: PointTokens, data_samples: Mapping) -> Dict[str, Tensor]:
        """``loss_distill`` of the projected features of the tokens that have a region target, and their number
        ``target_tokens``."""
        batch_idx, slot_idx, targets = gather_region_targets(tokens, data_samples, type(self).__name__)
        pred = self.projector(features[batch_idx, slot_idx])
        loss = self.loss_distill(pred, targets['target'], targets['group_weight'], targets['num_groups'])
        # Logged, not optimised (mmengine sums only keys containing "loss").
        return dict(loss_distill=loss, target_tokens=pred.new_tensor(float(batch_idx.numel())))

    def predict(self, inputs: Mapping, data_samples: Optional[Mapping] = None) -> List[dict]:
        """Per-sample token features for probes and feature pictures.

        Each dict: ``token_feats`` (M_i, C), ``projected`` (M_i, D), ``centers`` (M_i, 3),
        ``region_index`` (M_i,), ``point_token`` (N,) (-1 for padding/dropped points).
        """
        features, tokens = self.extract_feat(inputs)
        projected = self.projector(features)
        results = []
        for b in range(features.shape[0]):
            real = ~tokens.padding_mask[b]
            results.append(
                dict(token_feats=features[b, real], projected=projected[b, real],
                     centers=tokens.centers[b, real], region_index=tokens.region_index[b, real],
                     point_token=tokens.point_token[b]))
        return results
