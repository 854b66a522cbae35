"""The pretrained SAM-MTP encoder as an mmdet3d point backbone for fine-tuning (detection and segmentation).

Data flow (B scenes, N points, D = 3 + C input channels, M token slots)::

    points (B, N, D) from Det3DDataPreprocessor (stacked like PointNet2SASSG's input)
      -> xyz (B, N, 3), segment column (optional) -> point_region = id + 1 (id -1 -> 0), other columns
      -> tokenizer (SAMGuidedTokenizer on scene segments, or FPSKNNTokenizer)  -> PointTokens
      -> PlainPointTransformer (composed, so pretrained keys map 1:1)          -> (B, M, C)
      -> optional Linear to out_channels, representative input point of every token
      -> dict read by mmdet3d's indoor heads (VoteHead, GroupFree3DHead), ThreeDETRHead and
         TokenInterpolationSegHead

Pretrained weights come from ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``. Unlike
mmengine's non-strict ``PretrainedInit``, the encoder is loaded strictly: every encoder key must be in the
checkpoint under ``prefix`` with the same shape, and no other key may sit under the prefix, otherwise a
RuntimeError names the file and the offending keys. Parameters outside the encoder (the output projection)
keep their initialisation.
"""
import logging
from typing import Dict, List, Optional, Tuple

import torch
from mmdet3d.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import PretrainedInit
from torch import Tensor, nn

from projects.sam_mtp.labels.formats.scene_segments import SEGMENT_ID_LIMIT
from projects.sam_mtp.ops import knn

from ..tokenizers.point_tokens import PointTokens
from .pretraining_tokenizer import pretraining_tokenizer_type

__all__ = ['SamMtpPointBackbone', 'token_representatives', 'fill_padded_tokens', 'load_encoder_state']


def token_representatives(xyz: Tensor, tokens: PointTokens) -> Tensor:
    """(B, M) long index of one input point per token slot: the token member nearest to the token centre.

    Ties go to the lowest point index. A real token that owns no point (FPS centres on duplicated points) takes
    the input point nearest to its centre. Padded slots get 0 (callers overwrite them). Vectorised over points.
    """
    batch, num_points = tokens.point_token.shape
    num_slots = tokens.centers.shape[1]
    owner = tokens.point_token
    member = owner >= 0
    slot = owner.clamp(min=0)
    centre_of_point = torch.gather(tokens.centers, 1, slot[..., None].expand(-1, -1, 3))
    dist = (xyz - centre_of_point).square().sum(-1)
    dist = dist.masked_fill(~member, float('inf'))
    flat = (slot + torch.arange(batch, device=xyz.device)[:, None] * num_slots).flatten()
    member_flat = member.flatten()
    best = dist.new_full((batch * num_slots, ), float('inf'))
    best.scatter_reduce_(0, flat[member_flat], dist.flatten()[member_flat], reduce='amin')
    is_best = member_flat & (dist.flatten() == best[flat])
    point_idx = torch.arange(num_points, device=xyz.device).repeat(batch)
    rep = torch.full((batch * num_slots, ), num_points, dtype=torch.long, device=xyz.device)
    rep.scatter_reduce_(0, flat[is_best], point_idx[is_best], reduce='amin')
    rep = rep.view(batch, num_slots)
    orphan = (rep == num_points) & ~tokens.padding_mask
    if bool(orphan.any()):
        nearest = knn(1, xyz.contiguous(), tokens.centers.contiguous())[:, 0].long()  # (B, M)
        rep = torch.where(orphan, nearest, rep)
    return rep.masked_fill(rep == num_points, 0)


def fill_padded_tokens(padding_mask: Tensor, num_slots: Optional[int] = None) -> Tuple[Tensor, Tensor]:
    """Source slot of every output slot so that padded slots repeat the real tokens cyclically.

    Real tokens must be left-packed (slots ``0..c-1`` of a sample with ``c`` real tokens, as every tokenizer
    returns them). Output slot ``j`` reads slot ``j mod c``: real slots read themselves, and with
    ``num_slots = k * c`` every real token appears exactly ``k`` times (otherwise ``floor`` or ``ceil`` of
    ``num_slots / c`` times), so softmax attention over all slots equals attention over the real tokens alone
    when the multiplicities are equal.

    Returns:
        ``source`` (B, S) long and the output ``padding_mask`` (B, S) bool, ``S = num_slots or M``.
    """
    counts = (~padding_mask).sum(dim=1)
    if bool((counts == 0).any()):
        empty = (counts == 0).nonzero(as_tuple=True)[0].tolist()
        raise ValueError(f'SamMtpPointBackbone: scene(s) {empty} of the batch have no token; a scene needs at '
                         'least one (SAM tokens: a segment or enough unassigned points for a fallback token)')
    num_slots = padding_mask.shape[1] if num_slots is None else num_slots
    slots = torch.arange(num_slots, device=padding_mask.device)
    source = slots[None] % counts[:, None]
    return source, slots[None] >= counts[:, None]


def sassg_outputs(xyz: Tensor, point_features: Tensor, token_xyz: Tensor, features: Tensor,
                  indices: Tensor) -> Dict[str, List[Tensor]]:
    """An encoder's output in mmdet3d's ``PointNet2SASSG`` layout, which the detection heads read: the tokens
    (positions ``(B, M, 3)``, features ``(B, C, M)``, input point indices ``(B, M)``) as the one ``fp_*`` level;
    the input points ``(B, N, 3)`` with their features, then the tokens, as the ``sa_*`` levels."""
    point_indices = torch.arange(xyz.shape[1], device=xyz.device).expand(xyz.shape[0], -1)
    return dict(
        fp_xyz=[token_xyz],
        fp_features=[features],
        fp_indices=[indices],
        sa_xyz=[xyz, token_xyz],
        sa_features=[point_features, features],
        sa_indices=[point_indices, indices])


def load_encoder_state(encoder: nn.Module, checkpoint: str, prefix: str = 'backbone.', owner: str = 'encoder',
                       map_location: str = 'cpu', max_listed: int = 3,
                       meta: Optional[dict] = None) -> Dict[str, Tensor]:
    """Strictly load the keys ``prefix + k`` of a checkpoint into ``encoder`` (its key ``k``).

    Accepts mmengine checkpoints (``dict(state_dict=..., meta=...)``) and bare state dicts; strips the
    ``module.`` of DDP-saved keys. Raises CheckpointNotFoundError (a FileNotFoundError) for a missing file and
    CheckpointMismatchError (a RuntimeError; one line naming the file, the number of mismatching keys and the
    first ``max_listed``, all of them in the log) when the checkpoint's encoder does not match ``encoder``
    exactly. A ``meta`` dict given is filled with the checkpoint's ``meta``.

    Returns:
        The loaded ``{encoder key: tensor}``.
    """
    from projects.sam_mtp.engine.checkpoint import (
        CheckpointMismatchError,
        load_state_strict,
        read_checkpoint_state,
        strip_prefix,
    )

    loaded, state = read_checkpoint_state(checkpoint, 'pretrained', f'{owner} init_cfg', map_location=map_location)
    selected = strip_prefix(state, prefix)
    if not selected:
        raise CheckpointMismatchError(
            checkpoint, f'no key starts with prefix {prefix!r} (first keys: {list(state)[:max_listed]}); stage-1 '
            "and stage-2 checkpoints keep the encoder under 'backbone.'")
    load_state_strict(encoder, selected, checkpoint, owner, show=max_listed, shown_prefix=prefix,
                      hint='use the encoder settings (embed_dims, num_layers, num_heads, mlp_ratio, pointnet_channels, '
                      'pos_hidden_dims) of the pretraining config')
    if meta is not None and isinstance(loaded.get('meta'), dict):
        meta.update(loaded['meta'])
    return selected


@MODELS.register_module()
class SamMtpPointBackbone(BaseModule):
    """Tokenizer + pretrained plain point transformer, returning the feature dict of mmdet3d's indoor heads.

    Input: ``points (B, N, D)``. Columns ``0:3`` are xyz. With ``segment_channel`` set, that column holds the
    scene-segment id written by ``LoadSceneSegments`` (``-1`` = no segment); it becomes the tokenizer's
    ``point_region = id + 1`` (0 = no region) and is not a point feature. The remaining columns (colour,
    height, normalised xyz, ...) are the per-point features ``sa_features[0]`` (``None`` when there are none);
    the encoder itself sees only xyz, as in pretraining.

    Output dict (``M`` token slots, ``C = out_channels``):

    * ``fp_xyz``/``fp_features``/``fp_indices``: one-element lists with the token centres ``(B, M, 3)``,
      features ``(B, C, M)`` and the index ``(B, M)`` of a representative input point per token (the token
      member nearest to the centre; for FPS tokens the centre point itself). GroupFree3DHead and VoteHead read
      the last entries; ``fp_indices`` lets GroupFree3D look up per-point instance labels.
    * ``sa_xyz``/``sa_features``/``sa_indices``: ``[input xyz (B, N, 3), token centres]``,
      ``[point features (B, C_pt, N) or None, token features]``, ``[arange(N), fp_indices]``, the layout of
      ``PointNet2SASSG`` (segmentation heads read entry 0, VoteNet-style heads the last one).
    * ``padding_mask`` ``(B, M)`` bool, True at slots without a real token (ThreeDETRHead and
      TokenInterpolationSegHead ignore them); ``point_token`` ``(B, N)`` the slot of every point (-1: none).

    Padded slots: SAM tokens vary in number per scene, so slots past a scene's real tokens are padding. Heads
    that take no padding mask (GroupFree3D's KPS sampling and cross-attention, VoteHead) would read zeros
    there; instead every padded slot holds a **copy of a real token** (centre, feature and index), the real
    tokens repeated cyclically (:func:`fill_padded_tokens`), so such heads see only real tokens, at most
    duplicated. ``num_output_tokens`` fixes M (e.g. at least GroupFree3D's ``num_proposal``, which top-k
    samples from the slots); without it M is the largest token count of the batch.

    Args:
        tokenizer (dict): ``SAMGuidedTokenizer`` (needs ``segment_channel``) or ``FPSKNNTokenizer``.
        encoder (dict): the pretraining encoder config, ``PlainPointTransformer`` (reuse the one encoder base,
            ``configs/sam_mtp/_base_/models/plain-point-transformer.py``; ``pos_every_block=False`` adds the centre
            embedding once, as Bridge3D's 3DETR fine-tuning does).
        in_channels (int, optional): D, checked against the input when given.
        segment_channel (int, optional): column of the segment id (non-negative index into D).
        out_channels (int, optional): add a Linear from the encoder width to this many channels (e.g. 288 for
            mmdet3d's stock GroupFree3D head); None keeps the encoder width.
        num_output_tokens (int, optional): fixed number of output slots M; a tokenizer that can make more tokens
            (``max_tokens``/``num_tokens``) is refused at build time, more real tokens at run time raise ValueError.
        init_cfg (dict | list, optional): ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')`` loads
            the encoder strictly (see the module docstring); other init types apply to the whole backbone.
    """

    def __init__(self,
                 tokenizer: dict = dict(type='FPSKNNTokenizer', num_tokens=2048, num_points_per_token=64),
                 encoder: dict = dict(type='PlainPointTransformer'),
                 in_channels: Optional[int] = None,
                 segment_channel: Optional[int] = None,
                 out_channels: Optional[int] = None,
                 num_output_tokens: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        if in_channels is not None and in_channels < 3:
            raise ValueError(f'{name}: in_channels must be >= 3 (xyz first), got {in_channels}')
        if segment_channel is not None:
            if segment_channel < 3:
                raise ValueError(f'{name}: segment_channel must be a non-negative column after xyz (>= 3), got '
                                 f'{segment_channel}')
            if in_channels is not None and segment_channel >= in_channels:
                raise ValueError(f'{name}: segment_channel={segment_channel} is outside in_channels={in_channels}')
        if num_output_tokens is not None and num_output_tokens < 1:
            raise ValueError(f'{name}: num_output_tokens must be >= 1, got {num_output_tokens}')
        self.in_channels = in_channels
        self.segment_channel = segment_channel
        self.num_output_tokens = num_output_tokens
        self.tokenizer = MODELS.build(tokenizer)
        self.requires_segments = type(self.tokenizer).__name__ == 'SAMGuidedTokenizer'
        if self.requires_segments and segment_channel is None:
            raise ValueError(f'{name}: {type(self.tokenizer).__name__} needs the scene-segment column: add '
                             "LoadSceneSegments to the pipeline and set segment_channel to its column")
        token_cap = getattr(self.tokenizer, 'max_tokens', getattr(self.tokenizer, 'num_tokens', None))
        if num_output_tokens is not None and token_cap is not None and token_cap > num_output_tokens:
            raise ValueError(f'{name}: the tokenizer makes up to {token_cap} tokens but num_output_tokens='
                             f'{num_output_tokens}; lower its max_tokens/num_tokens or raise num_output_tokens')
        self.encoder = MODELS.build(encoder)
        embed_dims = getattr(self.encoder, 'embed_dims', None)
        if embed_dims is None:
            raise ValueError(f'{name}: encoder {type(self.encoder).__name__} has no embed_dims')
        self.out_channels = out_channels or embed_dims
        self.out_proj = nn.Linear(embed_dims, out_channels) if out_channels not in (None, embed_dims) else None

    # ------------------------------------------------------------------------------------------------ weights
    def _pretrained_cfgs(self) -> Tuple[List[dict], List[dict]]:
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else ([self.init_cfg] if self.init_cfg else [])
        pretrained = [c for c in cfgs if c.get('type') in ('Pretrained', PretrainedInit)]
        return pretrained, [c for c in cfgs if c not in pretrained]

    def init_weights(self) -> None:
        """Default/other initialisation, then the strict encoder load of a ``Pretrained`` init_cfg."""
        pretrained, others = self._pretrained_cfgs()
        if not pretrained:
            return super().init_weights()
        if len(pretrained) > 1:
            raise ValueError(f'{type(self).__name__}: at most one Pretrained init_cfg, got {len(pretrained)}')
        cfg = pretrained[0]
        if not cfg.get('checkpoint'):
            raise ValueError(f'{type(self).__name__}: init_cfg {cfg} has no checkpoint')
        original = self.init_cfg
        self.init_cfg = others or None  # mmengine's own PretrainedInit would load non-strictly
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        self.load_pretrained(cfg['checkpoint'], cfg.get('prefix', 'backbone.'), cfg.get('map_location', 'cpu'))

    def load_pretrained(self, checkpoint: str, prefix: str = 'backbone.', map_location: str = 'cpu') -> None:
        """Load the encoder from a stage-1/stage-2 checkpoint, strictly (see :func:`load_encoder_state`)."""
        if prefix and not prefix.endswith('.'):
            prefix += '.'
        meta = {}
        loaded = load_encoder_state(self.encoder, checkpoint, prefix, f'{type(self).__name__}.encoder',
                                    map_location, meta=meta)
        fresh = [n for n, _ in self.named_parameters() if not n.startswith('encoder.')]
        pretrained_with = pretraining_tokenizer_type(meta)
        print_log(f'{type(self).__name__}: loaded {len(loaded)} encoder tensors from {checkpoint} (prefix '
                  f'{prefix!r}, pretrained on {pretrained_with or "unknown (no config in its meta)"} tokens); '
                  f'initialised here, not pretrained: {fresh or "nothing"}', logger='current')
        self._warn_tokenizer_mismatch(checkpoint, pretrained_with)

    _warned_tokenizer_mismatches = set()  # (checkpoint, pretrained, fine-tuning) tokenizers warned about

    def _warn_tokenizer_mismatch(self, checkpoint: str, pretrained_with: Optional[str]) -> None:
        """Warn once per process when the encoder was pretrained on another kind of tokens than it gets here.

        An unknown pretraining tokenizer (a checkpoint without mmengine's config text) gives no warning.
        """
        finetune_with = type(self.tokenizer).__name__
        key = (checkpoint, pretrained_with, finetune_with)
        if pretrained_with is None or pretrained_with == finetune_with or \
                key in SamMtpPointBackbone._warned_tokenizer_mismatches:
            return
        SamMtpPointBackbone._warned_tokenizer_mismatches.add(key)
        print_log(f'{checkpoint}: its encoder was pretrained on {pretrained_with} tokens but is fine-tuned on '
                  f'{finetune_with} tokens (model.backbone.tokenizer); the paper fine-tunes with the tokenizer '
                  'of pretraining (docs/finetune.md, "Swapping the backbone into a stock mmdet3d config")',
                  logger='current', level=logging.WARNING)

    # ------------------------------------------------------------------------------------------------ forward
    def _split_inputs(self, points: Tensor) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """xyz (B, N, 3), point_region (B, N) or None, point features (B, C_pt, N) or None."""
        name = type(self).__name__
        if points.dim() != 3 or points.shape[-1] < 3:
            raise ValueError(f'{name}: points must be (B, N, D >= 3) with xyz first, got {tuple(points.shape)}')
        channels = points.shape[-1]
        if self.in_channels is not None and channels != self.in_channels:
            raise ValueError(f'{name}: expected in_channels={self.in_channels} point columns, got {channels}; '
                             'check use_dim, shift_height, LoadSceneSegments and use_normalized_coord')
        feature_cols = list(range(3, channels))
        point_region = None
        if self.segment_channel is not None:
            if self.segment_channel >= channels:
                raise ValueError(f'{name}: segment_channel={self.segment_channel} but the points have only '
                                 f'{channels} columns; add LoadSceneSegments to the pipeline')
            segment = points[..., self.segment_channel]
            ids = segment.round()
            if bool((ids < -1).any()) or bool((ids != segment).any()) or bool((ids >= SEGMENT_ID_LIMIT).any()):
                raise ValueError(f'{name}: column {self.segment_channel} does not hold segment ids (integers '
                                 f'in [-1, 2**24)); is segment_channel right?')
            point_region = ids.long() + 1  # none (-1) -> 0 = no region
            feature_cols.remove(self.segment_channel)
        features = points[..., feature_cols].transpose(1, 2).contiguous() if feature_cols else None
        return points[..., :3].contiguous(), point_region, features

    def forward(self, points: Tensor) -> dict:
        xyz, point_region, point_features = self._split_inputs(points)
        tokens: PointTokens = self.tokenizer(xyz, point_region)
        features = self.encoder(tokens)                                          # (B, M, C), zero at padding
        if self.out_proj is not None:
            features = self.out_proj(features)
        representatives = token_representatives(xyz, tokens)

        num_real = int(tokens.num_tokens.max()) if tokens.num_tokens.numel() else 0
        if self.num_output_tokens is not None and num_real > self.num_output_tokens:
            raise ValueError(f'{type(self).__name__}: the tokenizer made {num_real} tokens for a scene but '
                             f'num_output_tokens={self.num_output_tokens}; lower the tokenizer\'s max_tokens/'
                             'num_tokens or raise num_output_tokens')
        source, padding_mask = fill_padded_tokens(tokens.padding_mask, self.num_output_tokens)
        centers = torch.gather(tokens.centers, 1, source[..., None].expand(-1, -1, 3))
        features = torch.gather(features, 1, source[..., None].expand(-1, -1, features.shape[-1]))
        indices = torch.gather(representatives, 1, source)
        features = features.transpose(1, 2).contiguous()                       # (B, C, M)
        return dict(sassg_outputs(xyz, point_features, centers, features, indices),
                    padding_mask=padding_mask, point_token=tokens.point_token)
