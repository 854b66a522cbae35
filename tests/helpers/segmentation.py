"""One training step of a point segmentor on random labels, for the tests that check a segmentation config runs."""
import torch

from projects.sam_mtp.testing import det3d_sample


def segmentation_loss_backward(model, points, num_classes, generator):
    """The segmentor's loss on a batch of ``points`` and a copy (random labels below ``num_classes``, the same for
    both), checked finite and backpropagated; returns the losses."""
    sample = det3d_sample(semantic_mask=torch.randint(0, num_classes, (len(points), ), generator=generator))
    data = dict(inputs=dict(points=[points, points.clone()]), data_samples=[sample, sample])
    losses = model(**model.data_preprocessor(data, training=True), mode='loss')
    assert torch.isfinite(losses['decode.loss_sem_seg'])
    losses['decode.loss_sem_seg'].backward()
    return losses
