"""Point-MAE's prediction head: decoder feature of a masked token -> the local coordinates of its point group."""
from typing import Optional

from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn


@MODELS.register_module()
class PointGroupReconstructionHead(BaseModule):
    """One linear layer from the decoder width to ``3 * num_points`` coordinates, read as (num_points, 3).

    Point-MAE's ``increase_dim`` (``nn.Conv1d(trans_dim, 3 * group_size, 1)``, a per-token linear layer, with
    PyTorch's default initialisation: ``Point_MAE.__init__`` applies no custom init to it), followed by the
    reconstruction loss between the predicted and the true groups.

    Args:
        in_channels (int): decoder width.
        num_points (int): points per predicted group; must equal the tokenizer's ``num_points_per_token``
            (``PointMAE`` fills and checks it).
        loss (dict): Default ``ChamferL2Loss`` (Point-MAE's ``cdl2``).
    """

    def __init__(self, in_channels: int, num_points: int, loss: dict = dict(type='ChamferL2Loss'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if num_points < 1:
            raise ValueError(f'{type(self).__name__}: num_points must be >= 1, got {num_points}')
        self.in_channels = in_channels
        self.num_points = num_points
        self.increase_dim = nn.Linear(in_channels, 3 * num_points)
        self.loss_recon = MODELS.build(loss)

    def forward(self, x: Tensor) -> Tensor:
        """(T, C) decoder features -> (T, num_points, 3) predicted local coordinates."""
        return self.increase_dim(x).reshape(*x.shape[:-1], self.num_points, 3)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Reconstruction loss of (T, num_points, 3) predictions against (T, S, 3) true groups."""
        return self.loss_recon(pred, target)
