"""Per-token (or per-sample) projection heads: the stage-1 projector and the stage-2 prediction heads."""
from typing import Optional

from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn


@MODELS.register_module()
class TokenProjector(BaseModule):
    """A linear layer (``num_layers=1``, Bridge3D's 1x1 conv) or an MLP with GELU, applied on the last dim.

    Args:
        in_channels (int): input feature size.
        out_channels (int): output size, e.g. 768 for DINOv2 ViT-B targets.
        num_layers (int): 1 = Linear; n > 1 = n Linear layers with GELU between. Default 1.
        hidden_channels (int, optional): hidden size of the MLP; None uses ``in_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_layers: int = 1,
                 hidden_channels: Optional[int] = None, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'{type(self).__name__}: num_layers must be >= 1, got {num_layers}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        hidden = hidden_channels or in_channels
        dims = [in_channels] + [hidden] * (num_layers - 1) + [out_channels]
        layers = []
        for i in range(num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                layers.append(nn.GELU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
