"""Does the demo's "random-ViT" control carry class? Its features averaged per object, and the objects' mean
colour alone, classify the validation scenes' objects (projects/sam_mtp/demo/controls.py explains the protocol).

    python benchmarks/demo_colour_control.py [--data-root data/demo/scannet] \
        [--out docs/bench_runs/demo_colour_control.json]

Reads the demo's frames (``make demo`` or ``tools/demo.py`` writes them) and builds the feature source of
configs/sam_mtp/labels/demo_stand_in.py, the random-ViT targets of ``tools/demo.py --targets random-vit``.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STAND_IN = osp.join(ROOT, 'configs', 'sam_mtp', 'labels', 'demo_stand_in.py')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default=osp.join('data', 'demo', 'scannet'))
    parser.add_argument('--out', default=osp.join('docs', 'bench_runs', 'demo_colour_control.json'))
    args = parser.parse_args(argv)
    frames_root = osp.join(args.data_root, 'posed_images')
    splits = {s: osp.join(args.data_root, 'meta_data', f'scannetv2_{s}.txt') for s in ('train', 'val')}
    for path in [frames_root] + list(splits.values()):
        if not osp.exists(path):
            sys.exit(f'error: {path} does not exist; run the demo (make demo) to generate its data first')

    from mmdet3d.registry import MODELS
    from mmengine.config import Config

    import projects.sam_mtp  # noqa: F401  (registers the feature sources)
    from projects.sam_mtp.demo.controls import classify_objects, object_features, rgb_grid
    from projects.sam_mtp.engine.provenance import cpu_model, git_commit
    from projects.sam_mtp.labels.formats.frames import list_frames
    records = {}
    for split, path in splits.items():
        with open(path) as f:
            scenes = [line.strip() for line in f if line.strip()]
        records[split] = list_frames(frames_root, scenes, frame_stride=1)
    sources = {'random-vit': MODELS.build(Config.fromfile(STAND_IN).feature_source), 'mean RGB': rgb_grid}
    results = {}
    for name, source in sources.items():
        start = time.time()
        train, val = (object_features(records[s], source) for s in ('train', 'val'))
        results[name] = dict(classify_objects(train, val), seconds=round(time.time() - start, 1))
        print(f'{name}: {results[name]}', flush=True)
    commit, dirty = git_commit(where=ROOT)
    out = dict(command=' '.join(['python benchmarks/demo_colour_control.py'] + list(argv or sys.argv[1:])),
               data_root=args.data_root, frames=dict(train=len(records['train']), val=len(records['val'])),
               cpu=cpu_model(), commit=commit, dirty=dirty, results=results)
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
