"""Fixtures of the CUDA tests. dev/gpu_check/run.sh --phase test runs them on a GPU machine; without a GPU they
are skipped, visibly."""
import pytest
import torch


@pytest.fixture
def no_tf32():
    """Full float32 matmuls and convolutions, so that CUDA results compare with the CPU's at float32 tolerance
    (cuDNN would otherwise use TF32 on Ampere and newer)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
