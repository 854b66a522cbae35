"""3DETR detector: a point backbone (any mmdet3d backbone returning ``fp_xyz``/``fp_features``) and a
:class:`~projects.sam_mtp.models.heads.ThreeDETRHead`."""
from typing import Dict, List, Optional, Union

import torch
from mmdet3d.models.detectors import Base3DDetector
from mmdet3d.registry import MODELS
from mmdet3d.structures.det3d_data_sample import SampleList
from torch import Tensor

__all__ = ['ThreeDETR']


@MODELS.register_module()
class ThreeDETR(Base3DDetector):
    """Point backbone -> (optional neck) -> set-prediction head.

    The backbone receives the batch as one ``(B, N, 3 + C)`` tensor (every scene must have the same number of
    points, as after mmdet3d's ``PointSample``) and returns a dict with at least ``fp_xyz`` (list, last
    ``(B, M, 3)``), ``fp_features`` (list, last ``(B, C, M)``) and optionally ``padding_mask`` ``(B, M)`` bool.

    Args:
        backbone, bbox_head, neck: module configs.
        train_cfg: passed to the head (``dict(assigner=...)``).
        test_cfg: passed to the head (post-processing, see ``ThreeDETRHead.predict_by_feat``).
        data_preprocessor: usually ``dict(type='Det3DDataPreprocessor')``.
    """

    def __init__(self,
                 backbone: dict,
                 bbox_head: dict,
                 neck: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        bbox_head = dict(bbox_head)
        bbox_head.update(train_cfg=train_cfg, test_cfg=test_cfg)
        self.bbox_head = MODELS.build(bbox_head)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def extract_feat(self, batch_inputs_dict: Dict[str, Union[List[Tensor], Tensor]]) -> dict:
        points = batch_inputs_dict.get('points')
        if not points:
            raise KeyError('ThreeDETR: batch_inputs_dict has no "points"')
        sizes = {p.shape for p in points}
        if len(sizes) != 1:
            raise ValueError(f'ThreeDETR: every scene of a batch needs the same number of points and channels '
                             f'(add PointSample to the pipeline), got shapes {sorted(tuple(s) for s in sizes)}')
        feats = self.backbone(torch.stack(points))
        if self.with_neck:
            feats = self.neck(feats)
        return feats

    @staticmethod
    def _check_not_empty(batch_inputs_dict: dict, batch_data_samples: SampleList) -> None:
        """A scene without points has no extent to normalise boxes by: refuse it, naming the sample."""
        for points, sample in zip(batch_inputs_dict.get('points') or [], batch_data_samples):
            if points.shape[0] == 0:
                name = sample.metainfo.get('lidar_path', sample.metainfo.get('sample_idx', '?'))
                raise ValueError(f'ThreeDETR: sample {name} has no points left (empty points file, or a range '
                                 'filter / crop removed them all)')

    def loss(self, batch_inputs_dict: dict, batch_data_samples: SampleList, **kwargs) -> Dict[str, Tensor]:
        self._check_not_empty(batch_inputs_dict, batch_data_samples)
        feats = self.extract_feat(batch_inputs_dict)
        return self.bbox_head.loss(batch_inputs_dict['points'], feats, batch_data_samples, **kwargs)

    def predict(self, batch_inputs_dict: dict, batch_data_samples: SampleList, **kwargs) -> SampleList:
        """Returns the data samples with ``pred_instances_3d`` (``bboxes_3d``, ``scores_3d``, ``labels_3d``)."""
        self._check_not_empty(batch_inputs_dict, batch_data_samples)
        feats = self.extract_feat(batch_inputs_dict)
        results = self.bbox_head.predict(batch_inputs_dict['points'], feats, batch_data_samples, **kwargs)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs_dict: dict, data_samples: Optional[SampleList] = None, **kwargs) -> dict:
        """Raw per-layer head outputs (no matching, no post-processing)."""
        feats = self.extract_feat(batch_inputs_dict)
        return self.bbox_head(batch_inputs_dict['points'], feats)
