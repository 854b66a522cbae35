"""The masked-token decoder of the pretraining algorithms written out for one sample, shared by the loop-based
reference losses of Point-MAE (tests/models/test_point_mae.py) and SAM-MTP stage 2
(tests/models/test_pretraining_algorithms.py)."""
import torch


def reference_decode(decoder, student, hidden, centers):
    """One sample's decoder output at each of its real tokens, (M, C): the decoder's input holds the student's
    features of the visible tokens (``student``, (V, C)) in their slots and the mask token where ``hidden`` (M,)
    is set, with the centre embedding of every real token (``centers``, (1, M, 3))."""
    slots = decoder.mask_token[0].expand(len(hidden), -1).clone()
    slots[~hidden] = decoder.input_proj(student)
    return decoder.decoder(slots[None], decoder.pos_embed(centers), torch.zeros(1, len(hidden), dtype=torch.bool))[0]
