"""3DETR detection head (Misra et al., ICCV 2021) for mmdet3d, with SAM-MTP's token queries.

Data flow (B scenes, M encoder tokens, Q queries, L decoder layers)::

    backbone dict: fp_xyz[-1] (B, M, 3), fp_features[-1] (B, C, M), padding_mask (B, M) bool (optional)
      -> memory = MLP(features): 1x1 conv-BN-ReLU layers as 3DETR's encoder-to-decoder projection (B, M, D)
      -> queries: 'fps'    Q token positions by furthest point sampling, content zeros         (3DETR)
                  'tokens' the tokens themselves (capped at Q by FPS), content = their memory  (SAM-MTP)
      -> query_pos = MLP(Fourier(query xyz)), key_pos = Fourier(token xyz), both scene-normalised
      -> decoder (pre-norm, L layers) -> every layer through the shared prediction MLPs        (L, B, Q, *)
      -> boxes (3DETR's parametrisation): centre = query xyz + (sigmoid - 0.5) metres, then normalised by
         the scene extent for the centre loss/cost; size = sigmoid * scene extent; heading = bin + residual
         (12 bins on SUN RGB-D; ScanNet has 3DETR's single bin: heads and losses, heading always 0)

Training matches every layer's predictions to the ground truth with mmdet's ``HungarianAssigner``
(class probability, 3D GIoU, centre L1, objectness costs) and sums the per-layer losses; the last layer's
losses are ``loss_*``, the auxiliary ones ``d{i}.loss_*`` (mmdet's DETR naming).

Padded tokens (``padding_mask`` True) are ignored by the cross-attention and never become queries. Queries of a
scene with fewer real tokens than Q are invalid: masked in self-attention, excluded from matching, losses and
predictions.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.utils import reduce_mean
from mmdet3d.models.layers import aligned_3d_nms
from mmdet3d.registry import MODELS, TASK_UTILS
from mmdet3d.structures import DepthInstance3DBoxes
from mmdet3d.structures.det3d_data_sample import SampleList
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from .threedetr_transformer import (
    MIN_SCENE_EXTENT,
    FourierPositionEncoding,
    PointwiseMLP,
    ThreeDETRDecoder,
    angle_to_bin,
    bin_to_angle,
    masked_furthest_point_sample,
)

__all__ = ['ThreeDETRHead']

_QUERY_SOURCES = ('fps', 'tokens')
# Entries of the forward dict that carry a leading decoder-layer dimension.
_PER_LAYER_KEYS = ('cls_logits', 'center_normalized', 'size_normalized', 'centers', 'sizes', 'angles',
                   'angle_logits', 'angle_residual_normalized')


@MODELS.register_module()
class ThreeDETRHead(BaseModule):
    """Set-prediction head of 3DETR.

    Args:
        num_classes: number of object classes (the head adds one "no object" logit).
        in_channels: channels of the backbone's last ``fp_features``.
        num_queries: Q (256 ScanNet, 128 SUN RGB-D in 3DETR).
        query_source: ``'fps'`` (3DETR) or ``'tokens'`` (SAM-MTP, see module docstring).
        num_angle_bins: heading bins. 12 on SUN RGB-D. 1 on ScanNet (axis-aligned boxes), as 3DETR: the 1-bin
            heading heads are built and trained (class loss identically 0, residual loss pulls the residual to
            0, which reaches the shared layers), but the heading is always 0. 0: no heading heads and no heading
            losses (not 3DETR; what the ScanNet configs used before, so their old checkpoints load with
            ``--cfg-options model.bbox_head.num_angle_bins=0``).
        num_memory_proj_hidden: hidden layers (width ``in_channels``) of the encoder-to-decoder projection: 2 for
            3DETR's plain encoder, 1 for its masked encoder (3DETR-m).
        embed_dims, num_decoder_layers, num_heads, feedforward_channels, dropout: decoder (256, 8, 4, 256, 0.1).
        mlp_channels, mlp_dropout: hidden widths and dropout of the prediction MLPs (256, 256), 0.3.
        pos_gauss_scale: std of the Fourier feature matrix.
        no_object_weight: weight of the "no object" class in the classification loss (3DETR's eos coef).
        loss_cls, loss_center, loss_size, loss_giou, loss_angle_cls, loss_angle_reg: loss configs. Box losses
            are normalised by the number of ground-truth boxes (averaged over ranks), the classification loss
            is a weighted mean over the valid queries. Centres and sizes are compared in scene-normalised
            units; the angle residual in units of half a bin.
        train_cfg: ``dict(assigner=...)`` built from mmdet3d's TASK_UTILS.
        test_cfg: see :meth:`predict_by_feat`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 256,
                 num_queries: int = 256,
                 query_source: str = 'fps',
                 num_angle_bins: int = 0,
                 num_memory_proj_hidden: int = 2,
                 embed_dims: int = 256,
                 num_decoder_layers: int = 8,
                 num_heads: int = 4,
                 feedforward_channels: int = 256,
                 dropout: float = 0.1,
                 mlp_channels: Sequence[int] = (256, 256),
                 mlp_dropout: float = 0.3,
                 pos_gauss_scale: float = 1.0,
                 no_object_weight: float = 0.25,
                 loss_cls: dict = dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                 loss_center: dict = dict(type='mmdet.L1Loss', loss_weight=5.0),
                 loss_size: dict = dict(type='mmdet.L1Loss', loss_weight=1.0),
                 loss_giou: dict = dict(type='GIoU3DLoss', loss_weight=1.0),
                 loss_angle_cls: dict = dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=0.1),
                 loss_angle_reg: dict = dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=0.5),
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if query_source not in _QUERY_SOURCES:
            raise ValueError(f'ThreeDETRHead: query_source must be one of {_QUERY_SOURCES}, got {query_source!r}')
        if num_classes < 1 or num_queries < 1 or num_angle_bins < 0 or num_memory_proj_hidden < 0:
            raise ValueError(f'ThreeDETRHead: need num_classes >= 1, num_queries >= 1, num_angle_bins >= 0, '
                             f'num_memory_proj_hidden >= 0, got {num_classes}, {num_queries}, {num_angle_bins}, '
                             f'{num_memory_proj_hidden}')
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.query_source = query_source
        self.num_angle_bins = num_angle_bins
        # Oriented boxes need at least 2 bins; 3DETR's ScanNet has 1 bin: heading heads and losses, heading 0.
        self.with_yaw = num_angle_bins >= 2
        self.with_angle_heads = num_angle_bins >= 1
        self.no_object_weight = no_object_weight
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

        self._warned_few_tokens = False

        # 3DETR's layers around the decoder: the encoder-to-decoder projection is conv (no bias)-BN-ReLU
        # throughout, the query projection conv-ReLU-conv-ReLU, the prediction heads conv (no bias)-BN-ReLU-
        # dropout hidden layers and a conv with bias (models/model_3detr.py, models/helpers.py GenericMLP).
        self.memory_proj = PointwiseMLP(in_channels, [in_channels] * num_memory_proj_hidden, embed_dims, norm=True,
                                        output_bias=False, output_norm=True, output_act=True)
        self.pos_encoding = FourierPositionEncoding(embed_dims, gauss_scale=pos_gauss_scale)
        self.query_pos_proj = PointwiseMLP(embed_dims, [embed_dims], embed_dims, hidden_bias=True, output_act=True)
        self.decoder = ThreeDETRDecoder(num_decoder_layers, embed_dims, num_heads, feedforward_channels, dropout)
        head = lambda out: PointwiseMLP(embed_dims, mlp_channels, out, norm=True, dropout=mlp_dropout)  # noqa: E731
        self.cls_head = head(num_classes + 1)
        self.center_head = head(3)
        self.size_head = head(3)
        if self.with_angle_heads:
            self.angle_cls_head = head(num_angle_bins)
            self.angle_reg_head = head(num_angle_bins)

        self.loss_cls = MODELS.build(loss_cls)
        self.loss_center = MODELS.build(loss_center)
        self.loss_size = MODELS.build(loss_size)
        self.loss_giou = MODELS.build(loss_giou)
        if self.with_angle_heads:
            self.loss_angle_cls = MODELS.build(loss_angle_cls)
            self.loss_angle_reg = MODELS.build(loss_angle_reg)
        self.assigner = TASK_UTILS.build(train_cfg['assigner']) if train_cfg and 'assigner' in train_cfg else None

    # ------------------------------------------------------------------------------------------------ forward
    @staticmethod
    def scene_range(points: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Per-scene bounding box of the input points: ``(B, 3)`` min and max."""
        lows = torch.stack([p[:, :3].min(dim=0).values for p in points])
        highs = torch.stack([p[:, :3].max(dim=0).values for p in points])
        return lows, highs

    def _read_backbone(self, feat_dict: dict) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        for key in ('fp_xyz', 'fp_features'):
            if key not in feat_dict:
                raise KeyError(f'ThreeDETRHead: the backbone output has no "{key}" (keys: {list(feat_dict)})')
        xyz, features = feat_dict['fp_xyz'][-1], feat_dict['fp_features'][-1]
        padding_mask = feat_dict.get('padding_mask')
        if xyz.dim() != 3 or xyz.shape[-1] != 3 or features.dim() != 3 or features.shape[-1] != xyz.shape[1]:
            raise ValueError(f'ThreeDETRHead: expected fp_xyz[-1] (B, M, 3) and fp_features[-1] (B, C, M), got '
                             f'{tuple(xyz.shape)} and {tuple(features.shape)}')
        if padding_mask is not None:
            if padding_mask.shape != xyz.shape[:2] or padding_mask.dtype != torch.bool:
                raise ValueError(f'ThreeDETRHead: padding_mask must be a bool (B, M) = {tuple(xyz.shape[:2])} '
                                 f'tensor, got {padding_mask.dtype} {tuple(padding_mask.shape)}')
            if padding_mask.all(dim=1).any():
                raise ValueError('ThreeDETRHead: a scene has only padded tokens (padding_mask all True)')
        return xyz, features, padding_mask

    def select_queries(self, xyz: Tensor, padding_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """Query token indices ``(B, Q)`` and their validity ``(B, Q)``, ``Q = min(num_queries, M)``.

        Both query sources pick spatially spread tokens by FPS over the real tokens; they differ in the
        query content (see :meth:`forward`). Fewer tokens than ``num_queries`` is a documented fallback, not an
        error (SAM token counts vary per scene): a scene with ``count < Q`` real tokens gets all of them as its
        first ``count`` queries and the rest are invalid (masked in attention, matching, losses and
        predictions); a warning is logged once.
        """
        num = min(self.num_queries, xyz.shape[1])
        valid_tokens = None if padding_mask is None else ~padding_mask
        idx = masked_furthest_point_sample(xyz, num, valid_tokens)
        counts = xyz.new_full((xyz.shape[0], ), xyz.shape[1], dtype=torch.long) if padding_mask is None \
            else valid_tokens.sum(dim=1)
        if not self._warned_few_tokens and bool((counts < self.num_queries).any()):
            self._warned_few_tokens = True
            print_log(f'ThreeDETRHead: a scene has {int(counts.min())} tokens for num_queries={self.num_queries}; '
                      'its extra queries are masked (this is logged once)', logger='current',
                      level=logging.WARNING)
        query_valid = torch.arange(num, device=xyz.device)[None] < counts[:, None]
        return idx, query_valid

    def forward(self, points: List[Tensor], feat_dict: dict) -> Dict[str, Tensor]:
        """Per-layer predictions.

        Returns a dict with ``cls_logits (L, B, Q, C+1)``, ``center_normalized``/``size_normalized``/
        ``centers``/``sizes`` ``(L, B, Q, 3)``, ``angles (L, B, Q)`` and, with heading heads (``num_angle_bins``
        >= 1), ``angle_logits``/``angle_residual_normalized`` ``(L, B, Q, bins)``; plus ``query_valid (B, Q)``,
        ``query_xyz (B, Q, 3)``, ``scene_min``/``scene_max`` ``(B, 3)``.
        """
        xyz, features, padding_mask = self._read_backbone(feat_dict)
        if len(points) != xyz.shape[0]:
            raise ValueError(f'ThreeDETRHead: {len(points)} point clouds but {xyz.shape[0]} backbone outputs')
        scene_min, scene_max = self.scene_range(points)
        scene_min, scene_max = scene_min.to(xyz.dtype), scene_max.to(xyz.dtype)

        real_tokens = None if padding_mask is None else ~padding_mask
        memory = self.memory_proj(features.transpose(1, 2), real_tokens)           # (B, M, D)
        key_pos = self.pos_encoding(xyz, scene_min, scene_max)
        idx, query_valid = self.select_queries(xyz, padding_mask)
        gather = lambda t: torch.gather(t, 1, idx[..., None].expand(-1, -1, t.shape[-1]))  # noqa: E731
        query_xyz = gather(xyz)
        query_pos = self.query_pos_proj(self.pos_encoding(query_xyz, scene_min, scene_max), query_valid)
        # 3DETR starts from empty queries; SAM-MTP uses the SAM tokens themselves as queries.
        query = gather(memory) if self.query_source == 'tokens' else torch.zeros_like(query_pos)
        hidden = self.decoder(query, memory, query_pos, key_pos, ~query_valid, padding_mask)  # (L, B, Q, D)

        # The prediction MLPs see every layer's valid queries at once (3DETR stacks layers and batch too).
        valid = query_valid[None].expand(hidden.shape[0], -1, -1)
        extent = (scene_max - scene_min).clamp(min=MIN_SCENE_EXTENT)
        # 3DETR: the offset sigmoid - 0.5 is in metres, added to the query position before normalising.
        centers = query_xyz + self.center_head(hidden, valid).sigmoid() - 0.5
        size_normalized = self.size_head(hidden, valid).sigmoid()
        preds = dict(
            cls_logits=self.cls_head(hidden, valid),
            center_normalized=(centers - scene_min[:, None]) / extent[:, None],
            size_normalized=size_normalized,
            centers=centers,
            sizes=size_normalized * extent[:, None],
            query_valid=query_valid,
            query_xyz=query_xyz,
            scene_min=scene_min,
            scene_max=scene_max)
        preds['angles'] = centers.new_zeros(centers.shape[:-1])
        if self.with_angle_heads:
            angle_logits = self.angle_cls_head(hidden, valid)
            residual = self.angle_reg_head(hidden, valid)
            preds.update(angle_logits=angle_logits, angle_residual_normalized=residual)
            # With one bin (3DETR's ScanNet) the heading stays 0 whatever the heads say.
            if self.with_yaw:
                best = angle_logits.argmax(dim=-1, keepdim=True)
                preds['angles'] = bin_to_angle(best[..., 0], torch.gather(residual, -1, best)[..., 0],
                                               self.num_angle_bins)
        return preds

    def boxes_from_preds(self, preds: Dict[str, Tensor]) -> Tensor:
        """Gravity-centre boxes ``(L, B, Q, 6)`` (axis-aligned) or ``(L, B, Q, 7)`` (with heading)."""
        parts = [preds['centers'], preds['sizes']]
        if self.with_yaw:
            parts.append(preds['angles'][..., None])
        return torch.cat(parts, dim=-1)

    # ------------------------------------------------------------------------------------------------ loss
    def loss(self, points: List[Tensor], feat_dict: dict, batch_data_samples: SampleList,
             **kwargs) -> Dict[str, Tensor]:
        preds = self(points, feat_dict)
        batch_gt_instances_3d = [sample.gt_instances_3d for sample in batch_data_samples]
        return self.loss_by_feat(preds, batch_gt_instances_3d)

    def _gt_targets(self, gt_instances_3d: InstanceData, scene_min: Tensor, scene_max: Tensor,
                    device: torch.device, dtype: torch.dtype) -> InstanceData:
        boxes = gt_instances_3d.bboxes_3d
        labels = gt_instances_3d.labels_3d.to(device).long()
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f'ThreeDETRHead: gt labels must lie in [0, {self.num_classes}), got '
                             f'[{int(labels.min())}, {int(labels.max())}]')
        centers = boxes.gravity_center.to(device=device, dtype=dtype)
        sizes = boxes.dims.to(device=device, dtype=dtype)
        yaw = boxes.yaw.to(device=device, dtype=dtype)
        if not self.with_yaw and getattr(boxes, 'with_yaw', False) and bool((yaw != 0).any()):
            raise ValueError(f'ThreeDETRHead: the gt boxes have headings (with_yaw=True, non-zero yaw) but the head '
                             f'has num_angle_bins={self.num_angle_bins} and would learn axis-aligned boxes; set '
                             'num_angle_bins (3DETR: 12 on SUN RGB-D)')
        if not self.with_yaw:  # 3DETR's axis-aligned targets: heading class 0, residual 0
            yaw = torch.zeros_like(yaw)
        extent = (scene_max - scene_min).clamp(min=MIN_SCENE_EXTENT)
        bboxes = torch.cat([centers, sizes] + ([yaw[:, None]] if self.with_yaw else []), dim=1)
        return InstanceData(
            labels=labels,
            bboxes=bboxes,
            centers_normalized=(centers - scene_min) / extent,
            sizes_normalized=sizes / extent,
            yaw=yaw)

    def _assign(self, layer_preds: Dict[str, Tensor], boxes: Tensor, gt: InstanceData,
                valid: Tensor) -> Tuple[Tensor, Tensor]:
        """Matched (query index, gt index) pairs of one scene and one layer, over valid queries only."""
        if self.assigner is None:
            raise RuntimeError('ThreeDETRHead: training needs train_cfg=dict(assigner=...)')
        valid_idx = valid.nonzero(as_tuple=True)[0]
        pred = InstanceData(
            scores=layer_preds['cls_logits'][valid_idx],
            bboxes=boxes[valid_idx],
            centers_normalized=layer_preds['center_normalized'][valid_idx])
        match_gt = InstanceData(labels=gt.labels, bboxes=gt.bboxes, centers_normalized=gt.centers_normalized)
        assigned = self.assigner.assign(pred, match_gt).gt_inds
        pos = (assigned > 0).nonzero(as_tuple=True)[0]
        return valid_idx[pos], assigned[pos] - 1

    def _layer_loss(self, preds: Dict[str, Tensor], boxes: Tensor, gts: List[InstanceData],
                    query_valid: Tensor, num_gts: float) -> Dict[str, Tensor]:
        """Losses of one decoder layer; ``preds`` entries are ``(B, Q, ...)``."""
        batch, num_q = query_valid.shape
        matches = [
            self._assign({k: v[b] for k, v in preds.items()}, boxes[b], gts[b], query_valid[b])
            for b in range(batch)
        ]
        batch_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(matches)])
        query_idx = torch.cat([q for q, _ in matches])
        gt_cat = InstanceData.cat([gt[g] for gt, (_, g) in zip(gts, matches)])

        cls_logits = preds['cls_logits']
        labels = cls_logits.new_full((batch, num_q), self.num_classes, dtype=torch.long)
        labels[batch_idx, query_idx] = gt_cat.labels
        class_weight = cls_logits.new_ones(self.num_classes + 1)
        class_weight[-1] = self.no_object_weight
        weight = class_weight[labels] * query_valid
        losses = dict(loss_cls=self.loss_cls(
            cls_logits.flatten(0, 1), labels.flatten(), weight=weight.flatten(),
            avg_factor=weight.sum().clamp(min=1e-6)))

        losses['loss_center'] = self.loss_center(
            preds['center_normalized'][batch_idx, query_idx], gt_cat.centers_normalized, avg_factor=num_gts)
        losses['loss_size'] = self.loss_size(
            preds['size_normalized'][batch_idx, query_idx], gt_cat.sizes_normalized, avg_factor=num_gts)
        if getattr(self.loss_giou, 'loss_weight', 1.0) == 0:
            losses['loss_giou'] = boxes.sum() * 0  # the rotated GIoU is not free: skip it when unweighted
        else:
            losses['loss_giou'] = self.loss_giou(boxes[batch_idx, query_idx], gt_cat.bboxes, avg_factor=num_gts)
        if self.with_angle_heads:  # one bin: target bin 0, residual 0 (_gt_targets zeroes the yaw)
            bin_idx, residual = angle_to_bin(gt_cat.yaw, self.num_angle_bins)
            losses['loss_angle_cls'] = self.loss_angle_cls(
                preds['angle_logits'][batch_idx, query_idx], bin_idx, avg_factor=num_gts)
            pred_residual = preds['angle_residual_normalized'][batch_idx, query_idx]
            losses['loss_angle_reg'] = self.loss_angle_reg(
                torch.gather(pred_residual, 1, bin_idx[:, None])[:, 0], residual, avg_factor=num_gts)
        return losses

    def loss_by_feat(self, preds: Dict[str, Tensor], batch_gt_instances_3d: List[InstanceData]) -> Dict[str, Tensor]:
        """Sum of per-layer losses with a fresh Hungarian matching for each layer."""
        cls_logits = preds['cls_logits']
        num_layers, batch = cls_logits.shape[:2]
        if len(batch_gt_instances_3d) != batch:
            raise ValueError(f'ThreeDETRHead: {len(batch_gt_instances_3d)} gt sets for a batch of {batch}')
        device, dtype = cls_logits.device, preds['centers'].dtype
        gts = [self._gt_targets(gt, preds['scene_min'][b], preds['scene_max'][b], device, dtype)
               for b, gt in enumerate(batch_gt_instances_3d)]
        num_gts = reduce_mean(cls_logits.new_tensor(float(sum(len(gt) for gt in gts)))).clamp(min=1.0).item()
        boxes = self.boxes_from_preds(preds)
        per_layer = [k for k in _PER_LAYER_KEYS if k in preds]
        losses = {}
        for layer in range(num_layers):
            layer_preds = {k: preds[k][layer] for k in per_layer}
            layer_losses = self._layer_loss(layer_preds, boxes[layer], gts, preds['query_valid'], num_gts)
            prefix = '' if layer == num_layers - 1 else f'd{layer}.'
            losses.update({prefix + k: v for k, v in layer_losses.items()})
        return losses

    # ------------------------------------------------------------------------------------------------ predict
    def predict(self, points: List[Tensor], feat_dict: dict, batch_data_samples: SampleList,
                **kwargs) -> List[InstanceData]:
        preds = self(points, feat_dict)
        batch_input_metas = [sample.metainfo for sample in batch_data_samples]
        return self.predict_by_feat(points, preds, batch_input_metas)

    def predict_by_feat(self, points: List[Tensor], preds: Dict[str, Tensor],
                        batch_input_metas: List[dict]) -> List[InstanceData]:
        """Boxes of the last decoder layer, post-processed like 3DETR's (VoteNet's) evaluation.

        ``test_cfg`` keys (defaults are 3DETR's):

        * ``empty_box_min_points`` (5): drop boxes holding fewer input points (0 disables); if that drops every
          box of a scene, its most confident box is kept.
        * ``use_nms`` (True), ``nms_thr`` (0.25): NMS of the enclosing axis-aligned boxes among boxes of the
          same most-likely class, ranked by objectness ``1 - p(no object)``.
        * ``objectness_thr`` (0.05): drop boxes whose objectness is not above this.
        * ``per_class_proposal`` (True): every kept box is emitted once per class with score
          ``p(class) * objectness``; otherwise once, for its most likely class, with that score.
        * ``score_thr`` (0.0): drop emitted boxes below this score (not in 3DETR; trims output size).
        * ``max_num`` (None): keep at most this many highest-scoring boxes per scene.
        """
        cfg = dict(empty_box_min_points=5, use_nms=True, nms_thr=0.25, objectness_thr=0.05,
                   per_class_proposal=True, score_thr=0.0, max_num=None)
        cfg.update(self.test_cfg or {})
        probs = preds['cls_logits'][-1].softmax(dim=-1)                          # (B, Q, C+1)
        objectness = 1 - probs[..., -1]
        class_probs = probs[..., :-1]
        boxes = self.boxes_from_preds(preds)[-1]
        if not self.with_yaw:
            boxes = torch.cat([boxes, boxes.new_zeros(boxes.shape[:-1] + (1, ))], dim=-1)
        results = []
        for b, meta in enumerate(batch_input_metas):
            valid = preds['query_valid'][b]
            keep = valid.clone()
            if cfg['empty_box_min_points'] > 0:
                keep &= self._points_in_boxes_count(points[b][:, :3], boxes[b]) >= cfg['empty_box_min_points']
                if not keep.any():
                    fallback = torch.where(valid, objectness[b], torch.full_like(objectness[b], -1.0)).argmax()
                    keep[fallback] = True
            keep_idx = keep.nonzero(as_tuple=True)[0]
            best_prob, best_label = class_probs[b, keep_idx].max(dim=-1)
            if cfg['use_nms'] and len(keep_idx):
                nms_keep = aligned_3d_nms(self._enclosing_minmax(boxes[b, keep_idx]), objectness[b, keep_idx],
                                          best_label, cfg['nms_thr'])
                keep_idx, best_prob, best_label = keep_idx[nms_keep], best_prob[nms_keep], best_label[nms_keep]
            confident = objectness[b, keep_idx] > cfg['objectness_thr']
            keep_idx, best_prob, best_label = keep_idx[confident], best_prob[confident], best_label[confident]
            if cfg['per_class_proposal']:
                scores = (class_probs[b, keep_idx] * objectness[b, keep_idx, None]).flatten()  # (K * C)
                box_idx = keep_idx.repeat_interleave(self.num_classes)
                labels = torch.arange(self.num_classes, device=scores.device).repeat(len(keep_idx))
            else:
                scores, box_idx, labels = best_prob * objectness[b, keep_idx], keep_idx, best_label
            above = scores >= cfg['score_thr']
            scores, box_idx, labels = scores[above], box_idx[above], labels[above]
            if cfg['max_num'] is not None and len(scores) > cfg['max_num']:
                top = scores.topk(cfg['max_num']).indices
                scores, box_idx, labels = scores[top], box_idx[top], labels[top]
            box_type = meta.get('box_type_3d', DepthInstance3DBoxes)
            result = InstanceData()
            result.bboxes_3d = box_type(boxes[b, box_idx].detach(), box_dim=7, with_yaw=self.with_yaw,
                                        origin=(0.5, 0.5, 0.5))
            result.scores_3d = scores.detach()
            result.labels_3d = labels
            results.append(result)
        return results

    @staticmethod
    def _enclosing_minmax(boxes: Tensor) -> Tensor:
        """Axis-aligned ``(x1, y1, z1, x2, y2, z2)`` enclosing boxes ``(K, 7)``."""
        half = boxes[:, 3:6] / 2
        cos, sin = boxes[:, 6].cos().abs(), boxes[:, 6].sin().abs()
        half_xy = torch.stack([half[:, 0] * cos + half[:, 1] * sin, half[:, 0] * sin + half[:, 1] * cos], dim=1)
        half = torch.cat([half_xy, half[:, 2:]], dim=1)
        return torch.cat([boxes[:, :3] - half, boxes[:, :3] + half], dim=1)

    @staticmethod
    def _points_in_boxes_count(xyz: Tensor, boxes: Tensor, chunk: int = 64) -> Tensor:
        """Number of points of ``xyz (N, 3)`` inside each box ``(K, 7)``, chunked over boxes for memory."""
        counts = []
        for start in range(0, boxes.shape[0], chunk):
            part = boxes[start:start + chunk]
            rel = xyz[None] - part[:, None, :3]                                   # (k, N, 3)
            cos, sin = part[:, 6].cos()[:, None], part[:, 6].sin()[:, None]
            local_x = rel[..., 0] * cos + rel[..., 1] * sin                      # rotate by -yaw
            local_y = -rel[..., 0] * sin + rel[..., 1] * cos
            local = torch.stack([local_x, local_y, rel[..., 2]], dim=-1)
            inside = (local.abs() <= part[:, None, 3:6] / 2).all(dim=-1)
            counts.append(inside.sum(dim=1))
        return torch.cat(counts) if counts else boxes.new_zeros(0, dtype=torch.long)
