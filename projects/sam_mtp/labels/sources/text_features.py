"""Text feature sources: CLIP's text tower, for Bridge3D's class-name and caption targets (offline assets).

The tower is built from mmpretrain's CLIP modules (``mmpretrain.models.utils.clip_generator_helper``:
``Transformer`` of ``ResidualAttentionBlock`` s with the causal mask, and its fp16-safe ``LayerNorm``) with the
attribute names of mmpretrain's ``CLIP`` and of OpenAI's CLIP (``token_embedding``, ``positional_embedding``,
``transformer.resblocks.*``, ``ln_final``, ``text_projection``), so the text part of either checkpoint loads
strictly; the image tower's keys (``visual.*``, ``visual_proj.*``) and ``logit_scale`` are ignored. The forward is
CLIP's ``encode_text``: token + position embeddings, the causal transformer, the final LayerNorm, the feature at
the end-of-text token, the text projection. mmpretrain's own ``CLIP`` class cannot be used here: it needs the
HuggingFace ``transformers`` tokenizer (not installed, and it would fetch its vocabulary from the hub) and builds
the image tower too.

Tokenization is CLIP's byte-level BPE (:class:`CLIPBPETokenizer`) read from OpenAI's merges file
(``bpe_simple_vocab_16e6.txt.gz``, shipped with OpenAI's CLIP and with Bridge3D's ``Pretrain/clip/``).
"""
import gzip
import html
import re
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmdet3d.registry import MODELS
from torch import Tensor, nn

from ..runner.sharding import resolve_device
from .checkpoints import load_state_dict_strict, require_checkpoint

SOT, EOT = '<|startoftext|>', '<|endoftext|>'
# OpenAI's CLIP keeps the first 48,894 merges of its file: 256 byte tokens, their 256 end-of-word forms, the
# merges and the two special tokens make the 49,408-token vocabulary.
CLIP_NUM_MERGES = 49152 - 256 - 2
CLIP_TEXT_ARCH = dict(width=512, layers=12, heads=8, embed_dims=512, vocab_size=49408, context_length=77)
# Text-tower keys of a CLIP checkpoint (mmpretrain's and OpenAI's names agree).
TEXT_KEY_PREFIXES = ('token_embedding.', 'positional_embedding', 'transformer.', 'ln_final.', 'text_projection')
# MaskCLIP's scene templates, appended to OpenAI's 80 ImageNet templates by its prompt_engineering.py (shipped in
# Bridge3D's Preprocess/).
SCENE_TEMPLATES = ('there is a {} in the scene.', 'there is the {} in the scene.', 'this is a {} in the scene.',
                   'this is the {} in the scene.', 'this is one {} in the scene.')


@lru_cache()
def bytes_to_unicode() -> Dict[int, str]:
    """CLIP's (GPT-2's) reversible map of the 256 byte values to printable characters: the printable Latin-1
    bytes map to themselves, the others, in byte order, to the characters from U+0100 on. The order of the
    entries is the order of the first 256 vocabulary ids: printable bytes first (so ``a`` is id 64 and ``a</w>``
    id 320, as in OpenAI's vocabulary), then the others."""
    printable = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + \
        list(range(ord('®'), ord('ÿ') + 1))
    mapping = {byte: chr(byte) for byte in printable}
    others = [byte for byte in range(256) if byte not in mapping]
    mapping.update({byte: chr(256 + n) for n, byte in enumerate(others)})
    return mapping


def _word_pattern():
    """CLIP's pre-tokenisation: special tokens, English contractions, letter runs, single digits, and runs of
    other non-space characters. Uses ``regex``'s Unicode classes when installed; otherwise ``re`` with the
    equivalent classes (letters ``[^\\W\\d_]``, digits ``\\d``)."""
    try:
        import regex
        return regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
                             r"""[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
    except ImportError:
        return re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|"""
                          r"""(?:[^\s\w]|_)+""", re.IGNORECASE)


class CLIPBPETokenizer:
    """CLIP's tokenizer: lower-cased, whitespace-collapsed text, split into words, each word's UTF-8 bytes
    merged by byte-pair encoding (lowest merge rank first), the last symbol of a word marked ``</w>``.

    Args:
        bpe_path (str, optional): OpenAI's merges file (``.txt`` or ``.txt.gz``, first line a ``#version``
            header). None: no merges, every byte is a token (the stand-in of :class:`RandomCLIPTextFeatureSource`).
        num_merges (int, optional): merges kept from the file; default ``CLIP_NUM_MERGES`` (OpenAI's).
        context_length (int): length of the token rows. Default 77.
    """

    def __init__(self, bpe_path: Optional[str] = None, num_merges: Optional[int] = CLIP_NUM_MERGES,
                 context_length: int = 77):
        merges: List[Tuple[str, str]] = []
        if bpe_path is not None:
            require_checkpoint(bpe_path, 'CLIP BPE vocabulary')
            opener = gzip.open if bpe_path.endswith('.gz') else open
            with opener(bpe_path, 'rt', encoding='utf-8') as f:
                lines = [line.rstrip('\n') for line in f]
            lines = lines[1:] if lines and lines[0].startswith('#version') else lines
            if num_merges is not None:
                lines = lines[:num_merges]
            for i, line in enumerate(lines):
                pair = tuple(line.split())
                if len(pair) != 2:
                    raise ValueError(f'{bpe_path}: line {i + 2} is not a merge of two symbols: {line!r}')
                merges.append(pair)
        self.byte_encoder = bytes_to_unicode()
        symbols = list(self.byte_encoder.values())
        vocab = symbols + [s + '</w>' for s in symbols] + [''.join(pair) for pair in merges] + [SOT, EOT]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.context_length = context_length
        self.pattern = _word_pattern()
        self._cache = {SOT: [SOT], EOT: [EOT]}

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def bpe(self, word: str) -> List[str]:
        """The BPE symbols of one pre-tokenised word (already mapped to byte characters): the pair of adjacent
        symbols with the lowest merge rank is merged everywhere (left to right), until no pair has a rank."""
        if word in self._cache:
            return self._cache[word]
        parts = list(word[:-1]) + [word[-1] + '</w>']
        while len(parts) > 1:
            best = min(zip(parts, parts[1:]), key=lambda pair: self.ranks.get(pair, float('inf')))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = parts
        return parts

    @staticmethod
    def clean(text: str) -> str:
        """HTML entities unescaped, whitespace collapsed, lower case (CLIP's ``basic_clean`` and
        ``whitespace_clean``; OpenAI's ftfy repair of broken unicode is not applied)."""
        text = html.unescape(html.unescape(text))
        return re.sub(r'\s+', ' ', text).strip().lower()

    def encode(self, text: str) -> List[int]:
        ids = []
        for word in self.pattern.findall(self.clean(text)):
            mapped = ''.join(self.byte_encoder[b] for b in word.encode('utf-8'))
            ids.extend(self.encoder[symbol] for symbol in self.bpe(mapped))
        return ids

    def __call__(self, texts: Union[str, Sequence[str]]) -> Tensor:
        """(N, context_length) long: start token, at most ``context_length - 2`` text tokens (longer texts are
        cut), end token, zeros."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.encoder[SOT]] + self.encode(text)[:self.context_length - 2] + [self.encoder[EOT]]
            out[row, :len(ids)] = torch.tensor(ids)
        return out


class CLIPTextTower(nn.Module):
    """CLIP's text encoder, from mmpretrain's CLIP modules (module docstring). ``forward(token_ids)`` with
    ``token_ids`` (N, context_length) long -> (N, embed_dims) float, CLIP's ``encode_text``."""

    def __init__(self, width: int = 512, layers: int = 12, heads: int = 8, embed_dims: int = 512,
                 vocab_size: int = 49408, context_length: int = 77):
        super().__init__()
        from mmpretrain.models.utils.clip_generator_helper import LayerNorm, Transformer
        self.context_length = context_length
        causal = torch.full((context_length, context_length), float('-inf')).triu_(1)
        self.transformer = Transformer(width=width, layers=layers, heads=heads, attn_mask=causal)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dims))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """CLIP's initialisation (``CLIP.initialize_parameters``, text part); a checkpoint overwrites it."""
        width, layers = self.transformer.width, self.transformer.layers
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=width**-0.5 * (2 * layers)**-0.5)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width)**-0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=width**-0.5 * (2 * layers)**-0.5)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    def forward(self, token_ids: Tensor) -> Tensor:
        x = self.token_embedding(token_ids) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2))[0].permute(1, 0, 2)  # the blocks take (L, N, D)
        x = self.ln_final(x)
        # The end-of-text token has the largest id of every row.
        return x[torch.arange(x.shape[0], device=x.device), token_ids.argmax(dim=-1)] @ self.text_projection


class TextFeatureSource:
    """A frozen CLIP text tower with its tokenizer: ``source(texts)`` -> (N, D) float32 CPU features, as CLIP's
    ``encode_text`` returns them (not normalised; Bridge3D stores caption features so), and
    :meth:`class_features` for a list of class names."""

    def __init__(self, tower: CLIPTextTower, tokenizer: CLIPBPETokenizer, device: str, batch_size: int = 256):
        if tokenizer.vocab_size > tower.token_embedding.num_embeddings:
            raise ValueError(f'the tokenizer has {tokenizer.vocab_size} tokens, the text tower embeds '
                             f'{tower.token_embedding.num_embeddings}')
        if tokenizer.context_length != tower.context_length:
            raise ValueError(f'tokenizer context_length {tokenizer.context_length} != the tower\'s '
                             f'{tower.context_length}')
        self.device = resolve_device(device)
        self.tower = tower.to(self.device).eval()
        self.tower.requires_grad_(False)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.feature_dim = tower.text_projection.shape[1]

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> Tensor:
        tokens = self.tokenizer(texts)
        out = [self.tower(chunk.to(self.device)).float().cpu() for chunk in tokens.split(self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.feature_dim)

    def class_features(self, class_names: Sequence[str], templates: Union[str, Sequence[str]] = 'maskclip') -> Tensor:
        """(C, D): per class, the mean of the L2-normalised features of its name in every template, normalised
        again (CLIP's prompt ensembling, as MaskCLIP's prompt_engineering.py and mmpretrain's
        ``CLIPZeroShot.prepare_text_prototype`` compute it)."""
        templates = resolve_templates(templates)
        rows = []
        for name in class_names:
            feats = self([template.format(name) for template in templates])
            mean = (feats / feats.norm(dim=-1, keepdim=True)).mean(dim=0)
            rows.append(mean / mean.norm())
        return torch.stack(rows) if rows else torch.zeros(0, self.feature_dim)


def _openai_imagenet_prompts() -> list:
    """mmpretrain's ``OPENAI_IMAGENET_PROMPT`` (80 templates). Its module is read by file: importing the package
    ``mmpretrain.models.multimodal.clip`` fails without ``transformers`` (mmpretrain then registers a placeholder
    under the name its ``CLIPZeroShot`` registers again)."""
    import importlib.util
    import os.path as osp

    import mmpretrain
    path = osp.join(osp.dirname(mmpretrain.__file__), 'models', 'multimodal', 'clip', 'utils.py')
    spec = importlib.util.spec_from_file_location('_mmpretrain_clip_prompts', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OPENAI_IMAGENET_PROMPT


def resolve_templates(templates: Union[str, Sequence[str]]) -> List[str]:
    """Prompt templates with one ``{}``: a list, or ``'maskclip'`` (OpenAI's 80 ImageNet templates from
    mmpretrain's CLIP utilities + MaskCLIP's 5 scene templates) or ``'plain'`` (``a photo of a {}.``)."""
    if templates == 'maskclip':
        return [prompt('{}') for prompt in _openai_imagenet_prompts()] + list(SCENE_TEMPLATES)
    if templates == 'plain':
        return ['a photo of a {}.']
    if isinstance(templates, str) or not templates or any(t.count('{}') != 1 for t in templates):
        raise ValueError(f"templates must be 'maskclip', 'plain' or a list of strings with one '{{}}', got "
                         f'{templates!r}')
    return list(templates)


@MODELS.register_module()
class CLIPTextFeatureSource(TextFeatureSource):
    """CLIP's text tower with weights from ``checkpoint`` and OpenAI's BPE merges from ``bpe_path``.

    Args:
        checkpoint (str): a CLIP state dict with the text keys of OpenAI's release (``model.state_dict()`` of
            ``clip.load('ViT-B/16', jit=False)``, saved with ``torch.save``) or of mmpretrain's CLIP; other keys
            are ignored, the text keys must match exactly.
        bpe_path (str): ``bpe_simple_vocab_16e6.txt.gz``.
        arch (dict): ``width``, ``layers``, ``heads``, ``embed_dims``, ``vocab_size``, ``context_length``;
            default CLIP ViT-B/16's (and ViT-B/32's) text tower, 512-d.
        device (str): ``cuda`` (``cuda:$LOCAL_RANK`` under a launcher) or ``cpu``.
    """

    def __init__(self, checkpoint: str, bpe_path: str, arch: Optional[dict] = None, device: str = 'cuda',
                 batch_size: int = 256):
        require_checkpoint(checkpoint, 'CLIP text')
        arch = dict(CLIP_TEXT_ARCH, **(arch or {}))
        tower = CLIPTextTower(**arch)
        load_state_dict_strict(tower, checkpoint, 'CLIP text', keep=lambda k: k.startswith(TEXT_KEY_PREFIXES))
        super().__init__(tower, CLIPBPETokenizer(bpe_path, context_length=arch['context_length']), device,
                         batch_size)


@MODELS.register_module()
class RandomCLIPTextFeatureSource(TextFeatureSource):
    """Stand-in for demos and tests: a small CLIP text tower with seeded random weights and a byte-level
    tokenizer (CLIP's BPE with no merges, 514 tokens); no checkpoint, no vocabulary file.

    Different texts get different features and the same text always the same, but the features carry no
    language semantics (e.g. "chair" and "armchair" are not closer than "chair" and "sink"). Never use it for
    real labels.
    """

    def __init__(self, arch: Optional[dict] = None, device: str = 'cpu', seed: int = 0, batch_size: int = 256):
        tokenizer = CLIPBPETokenizer(None, context_length=(arch or {}).get('context_length', 32))
        arch = dict(dict(width=64, layers=2, heads=4, embed_dims=32, vocab_size=tokenizer.vocab_size,
                         context_length=tokenizer.context_length), **(arch or {}))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tower = CLIPTextTower(**arch)
        super().__init__(tower, tokenizer, device, batch_size)
