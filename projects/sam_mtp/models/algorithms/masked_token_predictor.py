"""Stage 2 of SAM-MTP (§3.5): a student predicts a frozen stage-1 teacher's features from 40 % of the tokens."""
import logging
from typing import Dict, Mapping, Optional

import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from mmengine.logging import print_log
from torch import Tensor, nn

from ..tokenizers.point_tokens import PointTokens
from .base import BaseTokenAlgorithm
from .token_utils import masked_mean, random_token_mask

TEACHER_TARGETS = ('encoder', 'projector')


def _fill_out_channels(cfg: dict, out_channels: int, owner: str, name: str) -> dict:
    """Copy of a head config whose ``out_channels`` defaults to the target size and must match it."""
    cfg = dict(cfg)
    given = cfg.setdefault('out_channels', out_channels)
    if given != out_channels:
        raise ValueError(f'{owner}: {name}.out_channels={given} but the targets have {out_channels} channels')
    return cfg


class MaskedTokenPredictionMixin:
    """The student side of masked token prediction, shared by the two-stage and the joint algorithms.

    Needs ``backbone``, ``decoder``, ``instance_head``, ``token_head``, ``loss_ins``, ``loss_token`` and
    ``mask_ratio`` on the class that mixes it in.
    """

    def mtp_losses(self, tokens: PointTokens, targets: Tensor) -> Dict[str, Tensor]:
        """L_ins and L_token against ``targets`` (B, M, D), the teacher's features of all tokens.

        L_ins = MSE(MLP(mean of student visible features), mean of teacher features over real tokens);
        L_token = mean over masked tokens of MSE(Linear(decoder output), teacher token feature).
        """
        masked = random_token_mask(tokens.padding_mask, self.mask_ratio)
        visible = self.backbone.encode_visible(tokens, ~masked & ~tokens.padding_mask)
        has_tokens = tokens.num_tokens > 0
        student_global = masked_mean(visible.features, ~visible.padding_mask)[has_tokens]
        teacher_global = masked_mean(targets, ~tokens.padding_mask)[has_tokens]
        loss_ins = self.loss_ins(self.instance_head(student_global), teacher_global)
        decoded = self.decoder(visible.features, visible.index, tokens.centers, tokens.padding_mask)
        batch_idx, slot_idx = masked.nonzero(as_tuple=True)
        loss_token = self.loss_token(self.token_head(decoded[batch_idx, slot_idx]), targets[batch_idx, slot_idx])
        return dict(loss_ins=loss_ins, loss_token=loss_token,
                    masked_tokens=loss_token.new_tensor(float(batch_idx.numel())))


@MODELS.register_module()
class SamMtpMaskedTokenPredictor(MaskedTokenPredictionMixin, BaseTokenAlgorithm):
    """Masked token prediction with a frozen stage-1 teacher; L = L_ins + L_token.

    The teacher is built from ``teacher`` (the stage-1 model config, e.g. ``SamMtpDistiller``) and loaded
    from ``teacher_checkpoint`` in :meth:`init_weights` (the Runner calls it before training) or
    :meth:`load_teacher`. It is frozen explicitly:

    * every parameter has ``requires_grad=False`` and its forward runs under ``torch.no_grad``;
    * it is held outside the registered submodules, so ``parameters()``, ``state_dict()`` (checkpoints) and
      every optimizer built from ``named_parameters()`` never see it, while ``.to()``/``.cuda()``/``.half()``
      still move it (``_apply`` is forwarded);
    * it stays in eval mode under ``model.train()`` (no drop-path, BN running statistics).

    Teacher and student see the **same** tokens (the student's tokenizer, run once), so token targets line up
    slot by slot; the teacher's own tokenizer is not used.

    Args:
        tokenizer, backbone (dict): the student's tokenizer and encoder.
        decoder (dict): ``MaskedTokenDecoder`` (Bridge3D: 2 blocks).
        instance_head (dict): the L_ins MLP, applied to the pooled student feature; ``out_channels`` is
            filled with the target size.
        token_head (dict): Linear from decoder width to the target size; ``out_channels`` filled likewise.
        teacher (dict): stage-1 model config; needs ``backbone`` (and ``projector`` for that target).
        teacher_checkpoint (str, optional): stage-1 checkpoint; required before training.
        mask_ratio (float): Default 0.6.
        target (str): 'encoder' (default: teacher encoder tokens after the final LN, paper §3.5,
            docs/design_choices.md#q6) or
            'projector' (teacher projector output, the 2D feature space).
        target_norm (bool): LayerNorm (no affine) of every target token before pooling/regression.
        loss_ins, loss_token (dict): Default ``TokenFeatureMSELoss``.
    """

    def __init__(self,
                 tokenizer: dict,
                 backbone: dict,
                 decoder: dict,
                 instance_head: dict,
                 token_head: dict,
                 teacher: dict,
                 teacher_checkpoint: Optional[str] = None,
                 mask_ratio: float = 0.6,
                 target: str = 'encoder',
                 target_norm: bool = False,
                 loss_ins: dict = dict(type='TokenFeatureMSELoss'),
                 loss_token: dict = dict(type='TokenFeatureMSELoss'),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        owner = type(self).__name__
        if target not in TEACHER_TARGETS:
            raise ValueError(f'{owner}: target must be one of {TEACHER_TARGETS}, got {target!r}')
        if not 0. <= mask_ratio < 1.:
            raise ValueError(f'{owner}: mask_ratio must be in [0, 1), got {mask_ratio}')
        self.mask_ratio = mask_ratio
        self.target = target
        self.target_norm = target_norm
        self.teacher_checkpoint = teacher_checkpoint

        teacher_model = MODELS.build(teacher)
        for part in ('backbone', ) + (('projector', ) if target == 'projector' else ()):
            if not isinstance(getattr(teacher_model, part, None), nn.Module):
                raise ValueError(f'{owner}: the teacher ({type(teacher_model).__name__}) has no {part!r}, '
                                 f'needed for target={target!r}')
        teacher_model.requires_grad_(False)
        teacher_model.eval()
        # Not an nn.Module attribute on purpose: keeps the teacher out of parameters(), state_dict() and the
        # optimizer. _apply() and train() below forward device/dtype moves and keep it in eval mode.
        object.__setattr__(self, '_teacher', teacher_model)
        self._teacher_loaded = False
        target_dims = (teacher_model.projector.out_channels
                       if target == 'projector' else teacher_model.backbone.embed_dims)

        self.tokenizer = MODELS.build(tokenizer)
        self.backbone = MODELS.build(backbone)
        self.decoder = MODELS.build(decoder)
        self.instance_head = MODELS.build(_fill_out_channels(instance_head, target_dims, owner, 'instance_head'))
        self.token_head = MODELS.build(_fill_out_channels(token_head, target_dims, owner, 'token_head'))
        self.loss_ins = MODELS.build(loss_ins)
        self.loss_token = MODELS.build(loss_token)
        if type(teacher_model.tokenizer) is not type(self.tokenizer):
            print_log(f'{owner}: the student tokenizer ({type(self.tokenizer).__name__}) differs from the '
                      f"teacher's ({type(teacher_model.tokenizer).__name__}); both use the student's tokens",
                      logger='current', level=logging.WARNING)

    # ----------------------------------------------------------------- teacher handling
    @property
    def teacher(self) -> nn.Module:
        """The frozen stage-1 model (not a registered submodule)."""
        return self._teacher

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        teacher = self.__dict__.get('_teacher')
        if teacher is not None:
            teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        teacher = self.__dict__.get('_teacher')
        if teacher is not None:
            teacher.eval()
        return self

    def init_weights(self):
        """Initialise the student, then load the teacher from ``teacher_checkpoint``."""
        super().init_weights()
        if self.teacher_checkpoint is None:
            raise ValueError(f'{type(self).__name__}: teacher_checkpoint is not set; pass the stage-1 '
                             'checkpoint, e.g. --cfg-options model.teacher_checkpoint=work_dirs/stage1/epoch_120.pth')
        self.load_teacher(self.teacher_checkpoint)

    def load_teacher(self, checkpoint: str) -> None:
        """Load the teacher's weights strictly: every teacher key must be present with the same shape."""
        load_frozen_state(self._teacher, checkpoint, type(self).__name__)
        self._teacher.requires_grad_(False)
        self._teacher.eval()
        self._teacher_loaded = True
        print_log(f'{type(self).__name__}: loaded the frozen teacher from {checkpoint}', logger='current')

    @torch.no_grad()
    def teacher_targets(self, tokens: PointTokens) -> Tensor:
        """(B, M, D) teacher features of all tokens, zero at padding."""
        if not self._teacher_loaded:
            raise RuntimeError(f'{type(self).__name__}: the teacher has no weights yet; set teacher_checkpoint '
                               '(model.init_weights() loads it) or call load_teacher(path)')
        self._teacher.eval()
        features = self._teacher.backbone(tokens)
        if self.target == 'projector':
            features = self._teacher.projector(features)
        if self.target_norm:
            features = F.layer_norm(features, features.shape[-1:])
        return features * (~tokens.padding_mask)[..., None].to(features.dtype)

    # ----------------------------------------------------------------- BaseModel API
    def loss(self, inputs: Mapping, data_samples: Optional[Mapping] = None) -> Dict[str, Tensor]:
        tokens = self.tokenize(inputs)
        return self.mtp_losses(tokens, self.teacher_targets(tokens))


def load_frozen_state(module: nn.Module, checkpoint: str, owner: str, max_listed: int = 3) -> None:
    """Load ``checkpoint`` into ``module`` requiring every key with its shape; errors are one line naming the
    file (CheckpointMismatchError: the number of missing and mis-shaped keys and the first ``max_listed``, all
    of them in the log).

    ``module.`` prefixes of DDP-saved state dicts are stripped; extra keys are reported in the log only.
    """
    from projects.sam_mtp.engine.checkpoint import load_state_strict, read_checkpoint_state

    _, state = read_checkpoint_state(checkpoint, 'teacher', owner, load_context=f'teacher_checkpoint of {owner}')
    load_state_strict(module, state, checkpoint, f'the teacher ({owner}.teacher, {type(module).__name__})',
                      hint='is it a stage-1 checkpoint of the same model config?', show=max_listed,
                      ignore_unexpected=True)
