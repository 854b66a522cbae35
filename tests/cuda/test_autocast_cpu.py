"""Autocast on the CPU (bfloat16), so that a dtype mix-up under --amp fails in CI and not first on a GPU. Stage 2
runs the stage-1 encoder (teacher), the student encoder and the masked-token decoder: the modules that wrote
half-precision results into float32 buffers."""
import torch
from cuda_models import build_model, make_batch


def test_stage2_training_step_under_bfloat16_autocast(tmp_path):
    model, _ = build_model('stage2', str(tmp_path))
    model.train()
    data = model.data_preprocessor(make_batch('stage2'), training=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    assert losses['loss_token'].dtype == torch.float32 and torch.isfinite(losses['loss_token'])
    (losses['loss_ins'] + losses['loss_token']).backward()
    assert model.decoder.mask_token.grad is not None and model.backbone.token_embed is not None
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
