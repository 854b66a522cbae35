"""Write docs/demo_results.md from the report.json files of `make demo` runs (never by hand).

    python tools/demo_report_to_docs.py work_dirs/demo_methods/report.json work_dirs/demo/report.json \
        [--stand-in work_dirs/demo_random_vit/report.json] [--make-time "real 15m12s"] \
        [--cross-machine OTHER_CPU_PAGE_OR_REPORT] [--stage2-study docs/bench_runs/demo_stage2_study.json] \
        [--colour-control docs/bench_runs/demo_colour_control.json] [--out docs/demo_results.md] \
        [--images-dir docs/images]

The first report gives the tables; every further one is a rerun of the same settings (it may have fewer methods,
or come from another commit), and the page states the largest difference of any value they share (0 when the
runs are deterministic and the code changed no number). README.md names the reports of the documented page.
--stand-in adds the same comparison with the random-ViT targets (tools/demo.py --targets random-vit) beside the
default one.
--cross-machine compares the documented numbers with the same command's run on another CPU type (its page or
report.json) and marks the calls that such a change could flip. --stage2-study and --colour-control add the
measurements of benchmarks/demo_stage2_study.py and benchmarks/demo_colour_control.py.
The label-efficiency picture is copied next to the page. Dates, machine, commit and timings come from the
reports; the reading says only what each confidence interval supports (projects/sam_mtp/demo/results_page.py).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('reports', nargs='+', help='report.json of the demo runs (the first gives the tables)')
    parser.add_argument('--stand-in', help='report.json of tools/demo.py --targets random-vit')
    parser.add_argument('--make-time', help='the `time make demo` output line of the first run, quoted as given')
    parser.add_argument('--cross-machine',
                        help='docs page (.md) or report.json of the same command on another CPU type')
    parser.add_argument('--stage2-study', help='JSON of benchmarks/demo_stage2_study.py')
    parser.add_argument('--colour-control', help='JSON of benchmarks/demo_colour_control.py')
    parser.add_argument('--out', default=osp.join('docs', 'demo_results.md'))
    parser.add_argument('--images-dir', default=osp.join('docs', 'images'))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from projects.sam_mtp.demo.results_page import ResultsPageError, write_results_page
    try:
        write_results_page(args.reports, args.out, args.images_dir, args.stand_in, args.make_time, args.cross_machine,
                           args.stage2_study, args.colour_control)
    except ResultsPageError as err:
        sys.exit(f'error: {err}')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
