"""Which tokenizer a pretraining checkpoint's encoder learnt on, read from the checkpoint itself.

mmengine's Runner stores the run's whole config as text in every checkpoint it saves (``meta['cfg']``, the
config's ``pretty_text``: the merged config with every ``--cfg-options`` applied). The pretraining algorithms
keep their tokenizer at ``model.tokenizer``; a fine-tuned model keeps it at ``model.backbone.tokenizer``. The
text is parsed, never executed: a checkpoint is data, and ``ast`` reads the literal ``type`` without importing
or running anything. A checkpoint without that text (saved by hand, ``torch.save(state_dict)``) says nothing:
the answer is then ``None`` ("unknown").
"""
import ast
from typing import Dict, Optional

__all__ = ['pretraining_tokenizer_type', 'tokenizer_type_from_config_text']


def _dict_items(node: Optional[ast.AST]) -> Optional[Dict[str, ast.AST]]:
    """Keyword -> value node of a ``dict(k=v, ...)`` call or a ``{'k': v}`` literal; None for anything else."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict':
        return {kw.arg: kw.value for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.Dict):
        return {key.value: value for key, value in zip(node.keys, node.values)
                if isinstance(key, ast.Constant) and isinstance(key.value, str)}
    return None


def tokenizer_type_from_config_text(text: str) -> Optional[str]:
    """Registry name of ``model.tokenizer`` (else ``model.backbone.tokenizer``) in a config's text, or None.

    A scope prefix (``mmdet3d.SAMGuidedTokenizer``) is dropped. The last top-level ``model = ...`` counts, as in
    a config file.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    model = None
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == 'model' for target in statement.targets):
            model = _dict_items(statement.value)
    if model is None:
        return None
    tokenizer = model.get('tokenizer')
    if tokenizer is None:
        tokenizer = (_dict_items(model.get('backbone')) or {}).get('tokenizer')
    type_node = (_dict_items(tokenizer) or {}).get('type')
    if isinstance(type_node, ast.Constant) and isinstance(type_node.value, str) and type_node.value:
        return type_node.value.rsplit('.', 1)[-1]
    return None


def pretraining_tokenizer_type(meta: Optional[dict]) -> Optional[str]:
    """The tokenizer named by a checkpoint's ``meta`` (its ``cfg`` text), or None when it names none."""
    text = meta.get('cfg') if isinstance(meta, dict) else None
    return tokenizer_type_from_config_text(text) if isinstance(text, str) else None
