"""Add Bridge3D's text targets (region classes, CLIP features of class names and captions) to a label split.

    python tools/add_text_labels.py configs/sam_mtp/labels/bridge3d_text_clip.py \\
        --labels-root data/scannet/sam_mtp_labels --split train --frames-root data/scannet/posed_images

The split must have been made by ``tools/generate_sam_labels.py`` with ``save_region_maps=True``; the config
names the text source, the class list and where the per-pixel class maps and captions are. Rerunning resumes;
other settings are refused unless ``--overwrite``. Exit status 0 on success, 1 on bad input (one line).
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import MMLogger, print_log  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='text label config (text_source, text_label_cfg)')
    parser.add_argument('--labels-root', required=True, help='label root written by tools/generate_sam_labels.py')
    parser.add_argument('--split', default='train')
    parser.add_argument('--frames-root', required=True, help='folder of per-scene frame folders (class maps, '
                        'captions)')
    parser.add_argument('--overwrite', action='store_true', help='remake text labels made with other settings')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from projects.sam_mtp.labels import CheckpointMismatchError, LabelFormatError, build_label_source
    from projects.sam_mtp.labels.frame_labels.text_labels import add_text_labels

    MMLogger.get_instance('sam_mtp_labels', log_level='INFO')
    try:
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        source_cfg = cfg.text_source.to_dict()
        label_cfg = cfg.text_label_cfg.to_dict()
        add_text_labels(args.labels_root, args.split, args.frames_root, build_label_source(source_cfg), source_cfg,
                        overwrite=args.overwrite, **label_cfg)
        return 0
    except (FileNotFoundError, LabelFormatError, CheckpointMismatchError, ValueError, KeyError) as err:
        print_log(f'error: {err}', logger='current', level=logging.ERROR)
        return 1


if __name__ == '__main__':
    sys.exit(main())
