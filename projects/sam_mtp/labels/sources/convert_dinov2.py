"""Convert official DINOv2 weights (facebookresearch/dinov2, e.g. ``dinov2_vitb14_pretrain.pth``) to the key
layout of mmpretrain's ``VisionTransformer`` used by :class:`~.feature_sources.DINOv2FeatureSource`.

mmpretrain 1.2 ships converted DINOv2 checkpoints (see its ``configs/dinov2/metafile.yml``) but no converter
script; this module is one::

    python -m projects.sam_mtp.labels.sources.convert_dinov2 dinov2_vitb14_pretrain.pth \\
        checkpoints/dinov2_vitb14_mmpretrain.pth

Only the plain variants (no register tokens) are supported; ``mask_token`` (used only in DINOv2 training) is
dropped.
"""
import argparse
import os
import re
from typing import Dict

import torch

_BLOCK_RENAMES = (
    ('norm1.', 'ln1.'), ('norm2.', 'ln2.'), ('attn.qkv.', 'attn.qkv.'), ('attn.proj.', 'attn.proj.'),
    ('ls1.gamma', 'attn.gamma1.weight'), ('ls2.gamma', 'ffn.gamma2.weight'), ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'))
_TOP_RENAMES = (('patch_embed.proj.', 'patch_embed.projection.'), ('norm.', 'ln1.'), ('cls_token', 'cls_token'),
                ('pos_embed', 'pos_embed'))
# Official block keys are blocks.<i>.<...>, or blocks.<chunk>.<i>.<...> for checkpoints saved with block chunks.
_BLOCK_KEY = re.compile(r'^blocks\.(?:\d+\.)?(\d+)\.(.+)$')


def convert_dinov2_state_dict(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename official DINOv2 keys to mmpretrain VisionTransformer keys; unknown keys raise a KeyError."""
    out = {}
    for key, value in state.items():
        if key == 'mask_token':
            continue
        if key == 'register_tokens':
            raise KeyError('DINOv2 checkpoints with register tokens are not supported by VisionTransformer')
        match = _BLOCK_KEY.match(key)
        if match:
            index, rest = match.groups()
            for old, new in _BLOCK_RENAMES:
                if rest.startswith(old):
                    out[f'layers.{index}.{new}{rest[len(old):]}'] = value
                    break
            else:
                raise KeyError(f'unexpected DINOv2 block key {key!r}')
            continue
        for old, new in _TOP_RENAMES:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            raise KeyError(f'unexpected DINOv2 key {key!r}')
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='convert official DINOv2 weights to mmpretrain keys')
    parser.add_argument('src', help='official DINOv2 .pth')
    parser.add_argument('dst', help='output .pth (a state dict with "state_dict" and "meta")')
    args = parser.parse_args(argv)
    from ..fileio import atomic_write
    from .checkpoints import read_state_dict
    state = convert_dinov2_state_dict(read_state_dict(args.src, 'official DINOv2'))
    checkpoint = dict(state_dict=state, meta=dict(converted_from=os.path.basename(args.src)))
    atomic_write(args.dst, lambda f: torch.save(checkpoint, f))


if __name__ == '__main__':
    main()
