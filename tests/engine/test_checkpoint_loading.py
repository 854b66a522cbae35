"""mmengine checkpoints load under torch's safe loading (weights_only=True) once our package is imported."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from projects.sam_mtp.engine import allow_mmengine_checkpoint_types


def _mmengine_like_checkpoint():
    hub = MessageHub.get_instance('test_checkpoint_loading')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/lr', np.float64(0.1))
    return {
        'meta': {'epoch': 2, 'iter': 10, 'seed': np.int64(3),
                 'dataset_meta': {'classes': ('chair', 'table'), 'palette': np.zeros((2, 3), np.uint8)}},
        'message_hub': hub.state_dict(),
        'state_dict': {'w': torch.arange(4.)},
    }


def test_mmengine_checkpoint_needs_allow_list_and_loads_with_it(tmp_path):
    path = tmp_path / 'epoch_2.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    allow_mmengine_checkpoint_types()
    loaded = torch.load(path, weights_only=True)
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.mean() == pytest.approx(1.5)
    assert loaded['meta']['seed'] == 3
    assert torch.equal(loaded['state_dict']['w'], torch.arange(4.))


class _ReachesOtherAttribute:
    """Pickles as getattr(HistoryBuffer, '__init__'): an attribute outside the statistics methods."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


class _ReachesOtherClass:
    """Pickles as getattr(numpy.ndarray, 'tofile'): getattr on a class that is allow-listed for arrays."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


@pytest.mark.parametrize('payload', [_ReachesOtherAttribute(), _ReachesOtherClass()])
def test_safe_loading_stays_on_for_other_getattr_uses(tmp_path, payload):
    allow_mmengine_checkpoint_types()
    path = tmp_path / 'crafted.pth'
    torch.save({'x': payload}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
