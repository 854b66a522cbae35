"""Run the tools on the CPU also on a machine with CUDA, so that GPU machines run the CPU acceptance tests too
instead of skipping them."""
# Environment of a subprocess: torch sees no CUDA device (tools/train.py then takes its CPU / gloo path).
CPU_ENV = {'CUDA_VISIBLE_DEVICES': ''}


def force_cpu(monkeypatch) -> None:
    """For an in-process Runner: hide CUDA from torch and from mmengine, whose device is fixed when
    ``mmengine.device`` is imported."""
    import torch
    from mmengine.device import utils as device_utils
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(device_utils, 'DEVICE', 'cpu')
