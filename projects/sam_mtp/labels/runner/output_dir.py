"""The output folder of the offline tools (labels, scene segments): the writability probe, and the settings a
run records with its files so that a rerun under other settings never takes old files for finished ones.

A run's *output settings* are the config parts that change what it writes (the sources and their settings, K,
the segment settings, ...), not where things are (paths), how the work is split (shards, workers) or logged.
They are stored with the files (``tools/generate_sam_labels.py``: ``label_settings.json`` of the label root and
a fingerprint in each frame file; ``tools/make_scene_segments.py``: each segment file's sidecar). A rerun into a
folder that holds files of other settings, or of unknown settings (written before settings were recorded),
stops before loading any frame or model with one line naming the differing settings, unless ``--overwrite``.
"""
import hashlib
import inspect
import json
import os
import tempfile
from typing import Dict, Optional

# Keys of a source config that say where or how fast a source runs, not what it computes.
NON_OUTPUT_SOURCE_KEYS = ('device', 'points_per_batch')
# Keys of a source config that are file paths: only the file's name decides the output (a moved checkpoint
# gives the same labels).
PATH_SOURCE_KEYS = ('checkpoint', )


class OutputDirError(ValueError):
    """The output folder cannot be used as it is (not writable, or holds files of other settings); the
    message is one line naming the folder, the problem and the choices."""


def check_writable(folder: str) -> None:
    """Create ``folder`` if needed and create and remove a probe file in it; raise OutputDirError naming the
    folder when that fails (before any model is loaded, not after the first frame)."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.write-probe-', dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise OutputDirError(f'output folder {folder} is not writable ({reason}); fix its permissions or choose '
                             f'another one') from err


def _normalised(value):
    """JSON form (tuples -> lists, ConfigDict -> dict) so that recorded and current settings compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def source_settings(cfg) -> object:
    """The output settings of a registered source config: its class's defaults filled in (a config that
    spells out a default is the same setting), checkpoint paths reduced to the file name, and the keys of
    :data:`NON_OUTPUT_SOURCE_KEYS` dropped. A source given as an object is named by its class."""
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        return dict(type=type(cfg).__name__, settings=_normalised(getattr(cfg, 'settings', None)))
    cfg = _normalised(dict(cfg))
    settings = {}
    try:
        from mmdet3d.registry import MODELS

        from ..sources import feature_sources, mask_sources  # noqa: F401  (registers the sources)
        cls = MODELS.get(cfg.get('type'))
    except (ImportError, KeyError):
        cls = None
    if cls is not None:
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if param.default is not inspect.Parameter.empty:
                settings[name] = param.default
    settings.update(cfg)
    for key in PATH_SOURCE_KEYS:
        if isinstance(settings.get(key), str):
            settings[key] = os.path.basename(settings[key])
    return _normalised({k: v for k, v in settings.items() if k not in NON_OUTPUT_SOURCE_KEYS})


def settings_fingerprint(settings: dict) -> str:
    """A short hash of ``settings`` (key order, tuples vs lists do not matter)."""
    text = json.dumps(_normalised(settings), sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flatten_settings(settings: dict, prefix: str = '') -> Dict[str, object]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (the dotted names of ``--cfg-options``)."""
    flat = {}
    for key, value in _normalised(settings).items():
        name = f'{prefix}{key}'
        if isinstance(value, dict) and value:
            flat.update(flatten_settings(value, f'{name}.'))
        else:
            flat[name] = value
    return flat


def describe_differences(old: dict, new: dict, limit: int = 4) -> str:
    """``label_cfg.num_points 128 -> 256, ...`` (at most ``limit``, then a count)."""
    old_flat, new_flat = flatten_settings(old), flatten_settings(new)

    def shown(flat, key):
        text = json.dumps(flat[key]) if key in flat else '(unset)'
        return text if len(text) <= 40 else text[:37] + '...'

    changed = [k for k in sorted(set(old_flat) | set(new_flat)) if old_flat.get(k, ...) != new_flat.get(k, ...)]
    parts = [f'{k} {shown(old_flat, k)} -> {shown(new_flat, k)}' for k in changed[:limit]]
    if len(changed) > limit:
        parts.append(f'and {len(changed) - limit} more')
    return ', '.join(parts) or 'same settings, other fingerprint'


def stale_output_message(folder: str, what: str, old: Optional[dict], new: dict, option: str) -> str:
    """The one-line refusal: ``<folder> holds <what> made with other settings (a 1 -> 2); ...``; ``old`` None:
    files written before settings were recorded (their settings are unknown)."""
    if old is None:
        made = 'of unknown settings (written before settings were recorded)'
    else:
        made = f'made with other settings ({describe_differences(old, new)})'
    return (f'{folder} holds {what} {made}; rerun with --overwrite to redo them with these settings, or choose '
            f'another {option}')
