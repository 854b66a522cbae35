"""Bridge3D's text targets: CLIP's BPE tokenizer on hand-built vocabularies, the CLIP text tower built from
mmpretrain's modules against CLIP's encode_text written out here (tiny random weights in a checkpoint with
OpenAI's key names), checkpoint errors, prompt ensembling, the seeded stand-in, and the offline step that adds
region classes and caption features to a label split (resume, refusals, the tool's one-line error)."""
import gzip
import json
import os
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch
from helpers.labels import make_frame_arrays, write_label_split

from projects.sam_mtp.labels import CheckpointMismatchError, build_label_source
from projects.sam_mtp.labels.formats.frame_labels import load_frame_labels, load_label_info
from projects.sam_mtp.labels.frame_labels.text_labels import add_text_labels, class_list_caption, region_classes
from projects.sam_mtp.labels.sources.text_features import CLIPBPETokenizer, CLIPTextTower, resolve_templates

TINY_ARCH = dict(width=32, layers=2, heads=4, embed_dims=16, context_length=12)


def write_merges(path, merges):
    with gzip.open(path, 'wt', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + ''.join(f'{a} {b}\n' for a, b in merges))


def test_tokenizer_byte_ids_follow_openai_order():
    tok = CLIPBPETokenizer(None, context_length=8)
    assert tok.vocab_size == 514
    # OpenAI's vocabulary starts with the printable bytes: '!' is 0, 'a' is 64; their end-of-word forms follow
    # at 256 + the same index (clip.tokenize('a') is [49406, 320, 49407] with the full vocabulary).
    assert tok.encode('a') == [320] and tok.encode('!') == [256]
    assert tok.encode('ab') == [64, 321]
    assert tok.encode('a  B') == [320, 321]  # whitespace collapsed, lower-cased, one word per letter run
    rows = tok(['a', 'ab cd'])
    assert rows.tolist() == [[512, 320, 513, 0, 0, 0, 0, 0], [512, 64, 321, 66, 323, 513, 0, 0]]
    long = tok('a ' * 20)
    assert long[0, -1] == 513 and (long[0, 1:-1] == 320).all()  # cut to the context, end token kept


def test_tokenizer_merges_by_rank(tmp_path):
    path = str(tmp_path / 'merges.txt.gz')
    write_merges(path, [('c', 'h'), ('ch', 'a'), ('i', 'r</w>'), ('cha', 'ir</w>'), ('a', 'a')])
    tok = CLIPBPETokenizer(path, num_merges=None, context_length=6)
    assert tok.vocab_size == 512 + 5 + 2
    assert tok.encode('chair') == [512 + 3]       # c h a i r</w> -> ch -> cha -> ir</w> -> chair</w>
    # 'chairs': c h a i r s</w> -> ch a ... -> cha i r s</w>; no rank for (i, r) or (r, s</w>).
    assert tok.encode('chairs') == [513, ord('i') - 33, ord('r') - 33, 256 + ord('s') - 33]
    # 'aaa': (a, a) merges left to right once per pass: aa a</w>.
    assert tok.encode('aaa') == [516, 256 + ord('a') - 33]
    assert tok('chair').tolist() == [[517, 515, 518, 0, 0, 0]]
    capped = CLIPBPETokenizer(path, num_merges=2, context_length=6)
    assert capped.encode('chair') == [513, ord('i') - 33, 256 + ord('r') - 33]
    with pytest.raises(FileNotFoundError, match='nowhere.gz: CLIP BPE vocabulary checkpoint does not exist'):
        CLIPBPETokenizer(str(tmp_path / 'nowhere.gz'))


def clip_encode_text_reference(state, token_ids, heads):
    """OpenAI CLIP's ``encode_text`` written out from the state dict: token + position embeddings, causal
    pre-norm blocks (QuickGELU MLP), final LayerNorm, the end-token feature, the projection."""
    x = state['token_embedding.weight'][token_ids] + state['positional_embedding']
    length, width = x.shape[1], x.shape[2]
    causal = torch.full((length, length), float('-inf')).triu(1)
    layers = len({k.split('.')[2] for k in state if k.startswith('transformer.resblocks.')})

    def ln(v, name):
        return torch.nn.functional.layer_norm(v, (width, ), state[f'{name}.weight'], state[f'{name}.bias'])

    for i in range(layers):
        p = f'transformer.resblocks.{i}.'
        h = ln(x, p + 'ln_1')
        qkv = h @ state[p + 'attn.in_proj_weight'].T + state[p + 'attn.in_proj_bias']
        q, k, v = qkv.split(width, dim=-1)
        head = width // heads
        outs = []
        for j in range(heads):
            s = slice(j * head, (j + 1) * head)
            w = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / head**0.5 + causal, dim=-1)
            outs.append(w @ v[..., s])
        x = x + torch.cat(outs, -1) @ state[p + 'attn.out_proj.weight'].T + state[p + 'attn.out_proj.bias']
        h = ln(x, p + 'ln_2') @ state[p + 'mlp.c_fc.weight'].T + state[p + 'mlp.c_fc.bias']
        h = h * torch.sigmoid(1.702 * h)
        x = x + h @ state[p + 'mlp.c_proj.weight'].T + state[p + 'mlp.c_proj.bias']
    x = ln(x, 'ln_final')
    return x[torch.arange(x.shape[0]), token_ids.argmax(-1)] @ state['text_projection']


@pytest.fixture
def clip_checkpoint(tmp_path):
    """A whole-CLIP state dict with OpenAI's key names: the tiny text tower (random, biases too) plus image
    keys and logit_scale that the text source must ignore. Returns (path, bpe path, state)."""
    torch.manual_seed(0)
    tower = CLIPTextTower(vocab_size=512 + 5 + 2, **TINY_ARCH)
    state = {k: torch.randn_like(v) * 0.2 if 'bias' in k else v for k, v in tower.state_dict().items()}
    whole = dict(state, **{'visual.conv1.weight': torch.zeros(4, 3, 2, 2), 'visual.proj': torch.zeros(4, 16),
                           'logit_scale': torch.tensor(4.6)})
    path = str(tmp_path / 'clip_tiny.pth')
    torch.save(whole, path)
    bpe = str(tmp_path / 'merges.txt.gz')
    write_merges(bpe, [('c', 'h'), ('ch', 'a'), ('i', 'r</w>'), ('cha', 'ir</w>'), ('t', 'a')])
    return path, bpe, state


def source_cfg(path, bpe, **arch):
    return dict(type='CLIPTextFeatureSource', checkpoint=path, bpe_path=bpe, device='cpu',
                arch=dict(TINY_ARCH, vocab_size=519, **arch))


def test_clip_text_source_equals_encode_text(clip_checkpoint):
    path, bpe, state = clip_checkpoint
    source = build_label_source(dict(source_cfg(path, bpe), batch_size=2))
    texts = ['a chair', 'chair', 'a table in a room', 'sofa!']
    feats = source(texts)
    assert feats.shape == (4, 16) and feats.dtype == torch.float32
    expected = clip_encode_text_reference(state, source.tokenizer(texts), heads=4)
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in source.tower.parameters())
    # Prompt ensembling: per class the normalised mean of the normalised template features.
    classes = source.class_features(['chair', 'table'], ['a {}.', 'the {} here'])
    for row, name in zip(classes, ['chair', 'table']):
        f = clip_encode_text_reference(state, source.tokenizer([f'a {name}.', f'the {name} here']), heads=4)
        f = (f / f.norm(dim=-1, keepdim=True)).mean(0)
        torch.testing.assert_close(row, f / f.norm(), atol=1e-5, rtol=1e-5)


def test_clip_text_checkpoint_errors(clip_checkpoint, tmp_path):
    path, bpe, _ = clip_checkpoint
    with pytest.raises(FileNotFoundError, match=r'missing\.pth: CLIP text checkpoint does not exist'):
        build_label_source(source_cfg(str(tmp_path / 'missing.pth'), bpe))
    with pytest.raises(CheckpointMismatchError, match=r'12 missing keys\), first transformer\.resblocks\.2\.'):
        build_label_source(source_cfg(path, bpe, layers=3))
    with pytest.raises(CheckpointMismatchError, match=r'text_projection: checkpoint \(32, 16\) vs model \(32, 8\)'):
        build_label_source(source_cfg(path, bpe, embed_dims=8))


def test_random_stand_in_is_seeded_and_leaves_the_global_rng():
    state = torch.get_rng_state()
    a = build_label_source(dict(type='RandomCLIPTextFeatureSource', seed=3))
    assert torch.equal(state, torch.get_rng_state())
    b = build_label_source(dict(type='RandomCLIPTextFeatureSource', seed=3))
    c = build_label_source(dict(type='RandomCLIPTextFeatureSource', seed=4))
    texts = ['chair', 'table']
    torch.testing.assert_close(a(texts), b(texts))
    assert not torch.allclose(a(texts), c(texts)) and not torch.allclose(a(texts)[0], a(texts)[1])
    assert a.feature_dim == 32


def test_maskclip_templates_are_openai_imagenet_plus_scene():
    templates = resolve_templates('maskclip')
    assert len(templates) == 85 and templates[0] == 'a bad photo of a {}.'
    assert templates[-1] == 'this is one {} in the scene.'
    with pytest.raises(ValueError, match='templates must be'):
        resolve_templates(['no placeholder'])


# ------------------------------------------------------------------------------------------ offline step
def test_region_classes_take_the_majority_class():
    region_map = np.array([[1, 1, 1, 2],
                           [1, 1, 2, 2],
                           [3, 3, 0, 0]])
    class_map = np.array([[5, 5, 9, 7],
                          [5, 0, 7, 0],
                          [9, 0, 5, 5]])
    # class ids 5 -> 1, 7 -> 2; 9 and 0 are not listed (background).
    out = region_classes(region_map, class_map, [5, 7], num_regions=4)
    assert out.tolist() == [1, 2, 0, 0]  # r1: 5,5,9,5,0 -> class 1; r2: 7,7,0 -> 2; r3: tie bg/bg -> 0; r4 empty
    # A class map at another resolution is resized (nearest) to the region map.
    big = np.kron(class_map, np.ones((2, 2), dtype=class_map.dtype))
    assert region_classes(region_map, big, [5, 7], 4).tolist() == [1, 2, 0, 0]
    with pytest.raises(ValueError, match='region map has id 3 but the frame has 2 regions'):
        region_classes(region_map, class_map, [5, 7], num_regions=2)
    assert class_list_caption(np.array([2, 0, 1, 2]), ['chair', 'table']) == 'a room with chair and table.'
    assert class_list_caption(np.array([0]), ['chair']) == 'an empty room.'


def make_text_split(root, frames_root):
    """Two frames with 3 regions each, their region maps (as label generation writes them) and class maps."""
    rng = np.random.default_rng(0)
    frames = [make_frame_arrays(rng, (20, 15, 10), 5, feature_dim=4) for _ in range(2)]
    info = write_label_split(root, frames, with_groups=False)
    region_map = np.zeros((6, 8), np.uint16)
    region_map[:, :3], region_map[:, 3:6], region_map[:, 6:] = 1, 2, 3
    class_map = np.zeros((6, 8), np.uint16)
    class_map[:, :3] = 5   # region 1: class 5 -> 'chair'
    class_map[:, 6:] = 7   # region 3: class 7 -> 'table'
    for i in range(2):
        scene = f'scene{i:04d}_00'
        os.makedirs(osp.join(root, 'region_maps', scene), exist_ok=True)
        cv2.imwrite(osp.join(root, 'region_maps', scene, '000000.png'), region_map)
        os.makedirs(osp.join(frames_root, scene, 'label'), exist_ok=True)
        cv2.imwrite(osp.join(frames_root, scene, 'label', '0.png'), class_map if i == 0 else class_map * 0)
    return info


TEXT_SOURCE = dict(type='RandomCLIPTextFeatureSource', seed=0, device='cpu')
LABEL_CFG = dict(class_names=['chair', 'table'], class_ids=[5, 7], templates='plain',
                 class_maps=dict(folder='label', suffix='.png'), captions=dict(type='class_list'))


def test_add_text_labels_writes_resumes_and_refuses_other_settings(tmp_path):
    root, frames_root = str(tmp_path / 'labels'), str(tmp_path / 'frames')
    info_path = make_text_split(root, frames_root)
    source = build_label_source(TEXT_SOURCE)
    assert add_text_labels(root, 'train', frames_root, source, TEXT_SOURCE, **LABEL_CFG) == dict(written=2, skipped=0)
    first = load_frame_labels(osp.join(root, 'scene0000_00', '000000.npz'))
    second = load_frame_labels(osp.join(root, 'scene0001_00', '000000.npz'))
    assert first['region_class'].tolist() == [1, 0, 2] and second['region_class'].tolist() == [0, 0, 0]
    torch.testing.assert_close(torch.from_numpy(first['caption_feat'].astype(np.float32)),
                               source(['a room with chair and table.'])[0].half().float())
    torch.testing.assert_close(torch.from_numpy(second['caption_feat'].astype(np.float32)),
                               source(['an empty room.'])[0].half().float())
    meta = load_label_info(info_path)['metainfo']
    assert meta['class_names'] == ['chair', 'table'] and meta['text_feature_dim'] == 32
    feats = source(['a photo of a chair.', 'a photo of a table.'])
    np.testing.assert_allclose(meta['class_text_feat'], (feats / feats.norm(dim=-1, keepdim=True)).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert not osp.exists(osp.join(root, '_work', 'train', 'text_labels.json'))
    # Same settings: nothing to do. Other settings: refused, named, unless overwrite.
    assert add_text_labels(root, 'train', frames_root, source, TEXT_SOURCE, **LABEL_CFG)['written'] == 0
    other = dict(LABEL_CFG, class_names=['chair', 'desk'])
    with pytest.raises(ValueError, match=r'train_labels\.pkl: text labels were made with other settings '
                                         r'\(class_names\); pass --overwrite'):
        add_text_labels(root, 'train', frames_root, source, TEXT_SOURCE, **other)
    assert add_text_labels(root, 'train', frames_root, source, TEXT_SOURCE, overwrite=True, **other)['written'] == 2
    assert load_label_info(info_path)['metainfo']['class_names'] == ['chair', 'desk']


def test_add_text_labels_resumes_an_interrupted_run(tmp_path, monkeypatch):
    root, frames_root = str(tmp_path / 'labels'), str(tmp_path / 'frames')
    info_path = make_text_split(root, frames_root)
    source = build_label_source(TEXT_SOURCE)
    original = source.__class__.__call__

    def failing(self, texts):
        if 'an empty room.' in texts:  # the second frame's caption: killed after the first frame was saved
            raise KeyboardInterrupt
        return original(self, texts)

    monkeypatch.setattr(source.__class__, '__call__', failing)
    with pytest.raises(KeyboardInterrupt):
        add_text_labels(root, 'train', frames_root, source, TEXT_SOURCE, flush_every=1, **LABEL_CFG)
    assert 'class_names' not in load_label_info(info_path)['metainfo']  # not usable half made
    with open(osp.join(root, '_work', 'train', 'text_labels.json')) as f:
        assert json.load(f)['done'] == ['scene0000_00/000000.npz']
    monkeypatch.setattr(source.__class__, '__call__', original)
    assert add_text_labels(root, 'train', frames_root, source, TEXT_SOURCE, **LABEL_CFG) == dict(written=1, skipped=1)
    assert 'class_text_feat' in load_label_info(info_path)['metainfo']


def test_tool_reports_a_missing_class_map_in_one_line(tmp_path):
    import subprocess
    import sys
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    root, frames_root = str(tmp_path / 'labels'), str(tmp_path / 'frames')
    make_text_split(root, frames_root)
    os.remove(osp.join(frames_root, 'scene0001_00', 'label', '0.png'))
    cmd = [sys.executable, osp.join(repo, 'tools', 'add_text_labels.py'),
           osp.join(repo, 'configs/sam_mtp/labels/bridge3d_text_demo.py'), '--labels-root', root,
           '--frames-root', frames_root, '--cfg-options',
           'text_label_cfg.class_ids=[5,7,9,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]']
    env = dict(os.environ, PYTHONPATH=repo, CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if 'error:' in line]
    assert len(lines) == 1 and lines[0].endswith(
        f'error: {frames_root}/scene0001_00/label/0.png: class map does not exist'), lines
    with open(osp.join(root, 'train_labels.pkl'), 'rb') as f:
        assert 'class_names' not in pickle.load(f)['metainfo']
