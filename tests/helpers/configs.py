"""Config helpers shared by the config tests."""


def flatten(node, prefix=''):
    """{'a.b.0.c': value} of every leaf of a config node; list items are keyed by their index."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return {prefix: node}
    out = {}
    for key, value in items:
        out.update(flatten(value, f'{prefix}.{key}' if prefix else str(key)))
    return out
