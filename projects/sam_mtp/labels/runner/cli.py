"""What the label tools' command lines share (tools/generate_sam_labels.py, tools/make_scene_segments.py): the
parser with its config argument, the shard options, the config with ``--cfg-options``, and the one-line
``error: ...`` for bad input."""
import argparse
import sys
from typing import Callable, Optional, Tuple

from .sharding import parse_shard, shard_from_env

# Bad input (missing or malformed files, settings, checkpoints, shards): one line naming the problem, exit 1.
BAD_INPUT_ERRORS = (OSError, ValueError, KeyError, RuntimeError)


def error_line(err: BaseException) -> str:
    """The offline tools' bad-input line: ``error: <message>`` on one line (a KeyError's message unquoted)."""
    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return 'error: ' + ' '.join(str(message).split())


def tool_parser(doc: str, config_help: str) -> argparse.ArgumentParser:
    """A label tool's parser: described by the first paragraph of its docstring ``doc``, the config first."""
    parser = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    parser.add_argument('config', help=config_help)
    return parser


def run_tool(run: Callable[[], int]) -> int:
    """``run()``'s exit status, or 1 after one ``error: ...`` line on stderr (the tool's output, hence no logger)
    when it stops on bad input."""
    try:
        return run()
    except BAD_INPUT_ERRORS as err:  # bad input: a one-line message naming the file beats a traceback
        print(error_line(err), file=sys.stderr)
        return 1


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--shard', help='I/N: process shard I of N (0-based)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='take the shard from RANK/WORLD_SIZE (pytorch) or SLURM_PROCID/SLURM_NTASKS (slurm)')


def add_run_arguments(parser: argparse.ArgumentParser, failure_budget: str) -> None:
    """``--max-failure-fraction`` (``failure_budget``: what it overrides), ``--no-progress``, ``--cfg-options``."""
    from mmengine.config import DictAction
    parser.add_argument('--max-failure-fraction', type=float, help=f'overrides {failure_budget}')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')


def shard_from_args(args: argparse.Namespace) -> Tuple[int, int]:
    """(I, N) from ``--shard`` or the launcher's environment."""
    if args.shard and args.launcher != 'none':
        raise ValueError('use either --shard or --launcher, not both')
    return parse_shard(args.shard) if args.shard else shard_from_env(args.launcher)


def load_config(path: str, cfg_options: Optional[dict] = None, logger: str = 'sam_mtp_labels'):
    """The tool's config with ``--cfg-options`` merged; the tool logs to ``logger`` from here on."""
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    MMLogger.get_instance(logger, log_level='INFO')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
