"""Tokenizers, backbone, heads and losses on CUDA tensors give the CPU's results: the losses of every shipped
model (stage 1 and 2, 3DETR, GroupFree3D, the segmentor) on one batch, in eval mode (no dropout, no drop-path,
deterministic token sampling), and the 3D GIoU."""
import copy

import pytest
import torch
from cuda_models import MODEL_NAMES, build_model, make_batch

from projects.sam_mtp.models.algorithms import masked_token_predictor
from projects.sam_mtp.models.algorithms.token_utils import random_token_mask
from projects.sam_mtp.models.heads.box3d_giou import giou_3d

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


def losses_of(model, data) -> dict:
    batch = model.data_preprocessor(data, training=True)
    with torch.no_grad():
        return {k: v.detach().float().cpu() for k, v in model(**batch, mode='loss').items() if torch.is_tensor(v)}


@pytest.mark.parametrize('name', [n for n in MODEL_NAMES if n != 'stage2'])
def test_losses_on_cuda_match_cpu(name, tmp_path, no_tf32):
    model, _ = build_model(name, str(tmp_path))
    model.eval()
    data = make_batch(name)
    cpu = losses_of(model, data)
    gpu_model = copy.deepcopy(model).cuda()
    assert next(gpu_model.parameters()).is_cuda
    gpu = losses_of(gpu_model, data)
    assert gpu.keys() == cpu.keys() and cpu
    for key in cpu:
        torch.testing.assert_close(gpu[key], cpu[key], rtol=2e-3, atol=2e-4, msg=f'{name}: {key}')
    assert any(v.abs().sum() > 0 for k, v in cpu.items() if 'loss' in k)


def test_stage2_losses_on_cuda_match_cpu_for_one_mask(tmp_path, no_tf32, monkeypatch):
    """The masking is random per device; with one fixed mask the student, decoder, frozen teacher and both MSE
    terms agree across devices."""
    model, _ = build_model('stage2', str(tmp_path))
    model.eval()
    data = make_batch('stage2')
    fixed = {}

    def one_mask(padding_mask, ratio):
        if 'mask' not in fixed:
            generator_state = torch.random.get_rng_state()
            torch.manual_seed(3)
            fixed['mask'] = random_token_mask(padding_mask.cpu(), ratio)
            torch.random.set_rng_state(generator_state)
        return fixed['mask'].to(padding_mask.device)

    monkeypatch.setattr(masked_token_predictor, 'random_token_mask', one_mask)
    cpu = losses_of(model, data)
    gpu_model = copy.deepcopy(model).cuda()
    assert all(p.is_cuda for p in gpu_model.teacher.parameters())
    gpu = losses_of(gpu_model, data)
    assert cpu['loss_ins'] > 0 and cpu['loss_token'] > 0
    for key in cpu:
        torch.testing.assert_close(gpu[key], cpu[key], rtol=2e-3, atol=2e-4, msg=key)


@pytest.mark.parametrize('rotated', [False, True])
def test_giou_3d_on_cuda_matches_cpu(rotated):
    g = torch.Generator().manual_seed(0)
    boxes = torch.cat([torch.rand(40, 3, generator=g) * 3, torch.rand(40, 3, generator=g) + 0.2,
                       (torch.rand(40, 1, generator=g) - 0.5) * 6 * rotated], 1)
    cpu = giou_3d(boxes[:25], boxes[15:], rotated=rotated)
    gpu = giou_3d(boxes[:25].cuda(), boxes[15:].cuda(), rotated=rotated)
    assert gpu.is_cuda and ((cpu > -1) & (cpu <= 1)).all()
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)
