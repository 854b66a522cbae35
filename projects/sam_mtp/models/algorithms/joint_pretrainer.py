"""Table 4's "Stage 1 + MTP in same stage": distillation and masked token prediction in one training run."""
from typing import Dict, Mapping, Optional

import torch.nn.functional as F
from mmdet3d.registry import MODELS
from torch import Tensor

from .distiller import SamMtpDistiller
from .masked_token_predictor import MaskedTokenPredictionMixin, _fill_out_channels


@MODELS.register_module()
class SamMtpJointPretrainer(MaskedTokenPredictionMixin, SamMtpDistiller):
    """One encoder trained with L_distill + L_ins + L_token at once (the single-stage ablation).

    Each step encodes the complete token set once: its projected features take the distillation loss, and the
    same features, detached (stop-gradient), are the masked-token-prediction targets for a second, masked
    pass of the same encoder. So the "teacher" is the online encoder of the current step: no frozen stage-1
    model, no EMA. The detached targets come from the training-mode pass (drop-path active), which is what a
    single-stage run can offer without an extra forward.

    Args:
        tokenizer, backbone, projector, loss: as :class:`SamMtpDistiller`.
        decoder, instance_head, token_head, mask_ratio, target_norm, loss_ins, loss_token: as
            :class:`SamMtpMaskedTokenPredictor` (targets are encoder tokens, ``embed_dims`` wide).
    """

    def __init__(self,
                 tokenizer: dict,
                 backbone: dict,
                 projector: dict,
                 decoder: dict,
                 instance_head: dict,
                 token_head: dict,
                 loss: dict = dict(type='GroupBalancedDistillLoss'),
                 mask_ratio: float = 0.6,
                 target_norm: bool = False,
                 loss_ins: dict = dict(type='TokenFeatureMSELoss'),
                 loss_token: dict = dict(type='TokenFeatureMSELoss'),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(tokenizer=tokenizer, backbone=backbone, projector=projector, loss=loss,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        owner = type(self).__name__
        if not 0. <= mask_ratio < 1.:
            raise ValueError(f'{owner}: mask_ratio must be in [0, 1), got {mask_ratio}')
        self.mask_ratio = mask_ratio
        self.target_norm = target_norm
        dims = self.backbone.embed_dims
        self.decoder = MODELS.build(decoder)
        self.instance_head = MODELS.build(_fill_out_channels(instance_head, dims, owner, 'instance_head'))
        self.token_head = MODELS.build(_fill_out_channels(token_head, dims, owner, 'token_head'))
        self.loss_ins = MODELS.build(loss_ins)
        self.loss_token = MODELS.build(loss_token)

    def loss(self, inputs: Mapping, data_samples: Mapping) -> Dict[str, Tensor]:
        features, tokens = self.extract_feat(inputs)
        losses = self.distill_losses(features, tokens, data_samples)
        mtp_targets = features.detach()
        if self.target_norm:
            mtp_targets = F.layer_norm(mtp_targets, mtp_targets.shape[-1:])
            mtp_targets = mtp_targets * (~tokens.padding_mask)[..., None].to(mtp_targets.dtype)
        losses.update(self.mtp_losses(tokens, mtp_targets))
        return losses
