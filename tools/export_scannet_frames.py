"""Export every k-th frame of ScanNet ``.sens`` recordings to per-scene frame folders.

    python tools/export_scannet_frames.py data/scannet/scans data/scannet/posed_images \\
        --split-file data/scannet/meta_data/scannetv2_train.txt --stride 25 --workers 8

Reads ``<scans_root>/<scene>/<scene>.sens`` and writes ``<out_root>/<scene>/{color,depth,pose,intrinsic}/``
with ScanNet's frame ids (see projects/sam_mtp/labels/formats/sens.py). Scenes run in parallel processes; a scene is
finished when its ``.export_done`` marker (written last) exists, and finished scenes are skipped on a rerun, so
an interrupted export is resumed by running the same command again.

Exit status: 0 when every scene was exported, 1 otherwise (failed scenes are listed).
"""
import argparse
import logging
import os
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from mmengine.logging import MMLogger, print_log  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('scans_root', help='folder with <scene>/<scene>.sens')
    parser.add_argument('out_root', help='folder to write <scene>/{color,depth,pose,intrinsic}')
    parser.add_argument('--split-file', help='scene list (one per line); default: every scene with a .sens')
    parser.add_argument('--stride', type=int, default=25, help='export frames whose index is a multiple of this')
    parser.add_argument('--workers', type=int, default=4, help='parallel processes (0: in this process)')
    parser.add_argument('--overwrite', action='store_true', help='re-export finished scenes too')
    return parser.parse_args(argv)


def export_one(job):
    """Worker: export one scene; returns (scene, summary or None, error message or None, seconds)."""
    from projects.sam_mtp.labels.formats.sens import export_sens_frames
    sens_path, scene_dir, stride = job
    scene = os.path.basename(scene_dir)
    tic = time.time()
    try:
        return scene, export_sens_frames(sens_path, scene_dir, stride), None, time.time() - tic
    except Exception as err:  # one broken recording must not stop the other 1,500
        return scene, None, f'{type(err).__name__}: {err}', time.time() - tic


def main(argv=None) -> int:
    args = parse_args(argv)
    from projects.sam_mtp.labels.fileio import worker_start_method as _start_method
    from projects.sam_mtp.labels.formats.frames import read_scene_list
    from projects.sam_mtp.labels.formats.sens import is_scene_exported
    MMLogger.get_instance('sam_mtp_export', log_level='INFO')
    if args.stride < 1:
        print_log(f'--stride must be >= 1, got {args.stride}', logger='current', level=logging.ERROR)
        return 1
    if not os.path.isdir(args.scans_root):
        print_log(f'{args.scans_root}: scans root does not exist', logger='current', level=logging.ERROR)
        return 1
    if args.split_file:
        scenes = read_scene_list(args.split_file)
    else:
        scenes = sorted(d for d in os.listdir(args.scans_root)
                        if os.path.isfile(os.path.join(args.scans_root, d, f'{d}.sens')))
    jobs, missing = [], []
    for scene in scenes:
        sens = os.path.join(args.scans_root, scene, f'{scene}.sens')
        if not os.path.isfile(sens):
            missing.append(sens)
            continue
        scene_dir = os.path.join(args.out_root, scene)
        if args.overwrite or not is_scene_exported(scene_dir):
            jobs.append((sens, scene_dir, args.stride))
    for path in missing:
        print_log(f'{path}: .sens file does not exist', logger='current', level=logging.ERROR)
    print_log(f'{len(scenes)} scenes, {len(scenes) - len(jobs) - len(missing)} already exported, '
              f'{len(jobs)} to export (stride {args.stride})', logger='current')
    from mmengine.utils import ProgressBar
    bar = ProgressBar(len(jobs), file=sys.stderr) if jobs else None
    failed = []
    if args.workers > 0 and len(jobs) > 1:
        import multiprocessing as mp
        with mp.get_context(_start_method()).Pool(args.workers) as pool:
            results = list(_track(pool.imap_unordered(export_one, jobs), bar))
    else:
        results = list(_track(map(export_one, jobs), bar))
    if bar is not None:
        sys.stderr.write('\n')
    for scene, summary, error, seconds in results:
        if error is not None:
            failed.append(scene)
            print_log(f'{scene}: export failed: {error}', logger='current', level=logging.ERROR)
    print_log(f'exported {len(results) - len(failed)} scenes, {len(failed) + len(missing)} failed or missing',
              logger='current')
    return 1 if failed or missing else 0


def _track(iterable, bar):
    for item in iterable:
        if bar is not None:
            bar.update()
        yield item


if __name__ == '__main__':
    sys.exit(main())
