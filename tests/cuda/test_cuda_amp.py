"""Mixed-precision training steps on CUDA (what ``tools/train.py --amp`` runs) for every shipped model: stage 1,
stage 2, 3DETR, GroupFree3D and the segmentor, under fp16 (dynamic loss scale) and bf16 autocast."""
import math

import pytest
import torch
from cuda_models import MODEL_NAMES, build_model, make_batch
from mmengine.optim import build_optim_wrapper

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
@pytest.mark.parametrize('name', MODEL_NAMES)
def test_amp_training_steps(name, dtype, tmp_path):
    if dtype == 'bfloat16' and not torch.cuda.is_bf16_supported():
        pytest.skip('this GPU has no bfloat16')
    model, cfg = build_model(name, str(tmp_path))
    model.cuda().train()
    # As tools/train.py --amp: the config's optimizer wrapper, made an AmpOptimWrapper with a dynamic loss scale.
    optim_cfg = cfg.optim_wrapper.copy()
    optim_cfg.update(type='AmpOptimWrapper', dtype=dtype, loss_scale='dynamic')
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    linear = next(m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and 'teacher' not in n)
    seen = []
    linear.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    data = make_batch(name)
    changed = []
    # fp16's dynamic scale starts at 2**16 and may skip the first steps on overflow; 8 steps are plenty.
    for _ in range(8):
        log_vars = model.train_step(data, optim_wrapper)
        assert all(math.isfinite(float(v)) for v in log_vars.values()), log_vars
        changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, trainable[n])]
        if len(changed) > len(trainable) // 2:
            break
    assert seen and seen[0] == getattr(torch, dtype), f'autocast did not run {linear} in {dtype}: {seen[:1]}'
    assert len(changed) > len(trainable) // 2, f'only {len(changed)} of {len(trainable)} parameters were updated'
    for n, p in model.named_parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all(), n
    if name == 'stage2':  # the frozen teacher stays out of the update
        assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
