"""Autocast on the CPU (bfloat16) for every shipped model, so that a dtype mix-up under --amp fails in CI and not
first on a GPU. Stage 2 runs the stage-1 encoder (teacher), the student encoder and the masked-token decoder;
3DETR's heads write the MLP output of the valid rows into a zero tensor (that tensor must take the MLP's
half-precision dtype: the GPU check found ``Index put requires the source and destination dtypes match`` there)."""
import math

import pytest
import torch
from cuda_models import MODEL_NAMES, build_model, make_batch


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_training_step_under_bfloat16_autocast(name, tmp_path):
    model, _ = build_model(name, str(tmp_path))
    model.train()
    linear = next(m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and 'teacher' not in n)
    seen = []
    linear.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    data = model.data_preprocessor(make_batch(name), training=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    assert seen and seen[0] == torch.bfloat16, f'autocast did not run {linear} in bfloat16'
    total = sum(v if v.dim() == 0 else v.sum() for k, v in losses.items() if 'loss' in k)
    assert math.isfinite(float(total)), losses
    total.backward()
    grads = [p.grad for n, p in model.named_parameters() if p.grad is not None]
    assert len(grads) > len([p for p in model.parameters() if p.requires_grad]) // 2
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    if name == 'stage2':
        assert model.decoder.mask_token.grad is not None
        assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
