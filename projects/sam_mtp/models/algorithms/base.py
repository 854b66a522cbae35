"""Shared front end of the pretraining algorithms: mmengine's mode dispatch, tokenization, encoding."""
from typing import Dict, List, Mapping, Optional, Tuple, Union

from mmengine.model import BaseModel
from torch import Tensor

from ..tokenizers.point_tokens import PointTokens
from .token_utils import unpack_point_inputs


class BaseTokenAlgorithm(BaseModel):
    """An algorithm with ``self.tokenizer`` and ``self.backbone``; subclasses define ``loss`` (and may override
    ``predict``)."""

    def forward(self, inputs: Mapping, data_samples: Optional[Mapping] = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], List[dict], Tuple[Tensor, PointTokens]]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_feat(inputs)
        raise RuntimeError(f'{type(self).__name__}: invalid mode {mode!r}, expected loss, predict or tensor')

    def tokenize(self, inputs: Mapping) -> PointTokens:
        points, point_region = unpack_point_inputs(inputs, type(self).__name__)
        return self.tokenizer(points, point_region)

    def extract_feat(self, inputs: Mapping) -> Tuple[Tensor, PointTokens]:
        """Encoder token features (B, M, C), zero at padding, and the tokens they belong to."""
        tokens = self.tokenize(inputs)
        return self.backbone(tokens), tokens

    def predict(self, inputs: Mapping, data_samples: Optional[Mapping] = None) -> List[dict]:
        """Per-sample encoder features of every real token (no masking), for probes and pictures: ``token_feats``
        (M_i, C), ``centers``, ``region_index``, ``point_token``."""
        features, tokens = self.extract_feat(inputs)
        results = []
        for b in range(features.shape[0]):
            real = ~tokens.padding_mask[b]
            results.append(
                dict(token_feats=features[b, real], centers=tokens.centers[b, real],
                     region_index=tokens.region_index[b, real], point_token=tokens.point_token[b]))
        return results
