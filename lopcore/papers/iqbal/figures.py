"""Figure specs: the single source of truth for which runs a figure needs at each scale.

Notebooks, the CLI and the tests all go through `figure_runs` / `load_figure`, so a figure's
runs are defined once. Scales:
    paper  Iqbal's protocol: 600 tasks x one pass over 60000 images (4.5M steps at batch 8)
    small  CPU-sized: the same 600 tasks, 6000 images each (a tenth of the steps)
    smoke  seconds: a few tiny tasks, for tests
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import pandas as pd

from ... import params
from ...learners import Backprop, ContinualBackprop, PersistentState, PersistentStateCBP
from ...spec import RunSpec
from ...store import Store, spec_key
from ...study import Scale, figure_loader, page_lines, stored_lines
from ...study import summary as summary  # the table `lopcore run` prints for these figures
from ...tasks import PermutedStream

SCALES = {
    "paper": Scale(n_tasks=600, examples_per_task=60000, test_examples=10000, probe_examples=2000),
    "small": Scale(n_tasks=600, examples_per_task=6000, test_examples=2000, probe_examples=2000),
    "smoke": Scale(n_tasks=4, examples_per_task=480, test_examples=500, probe_examples=200),
}
BATCH_SIZE, LR = 8, 0.05  # Iqbal's
CBP_RATES = (1e-5, 1e-4, 1e-3)  # the sweep (cbp_sweep) that picks CBP_RATE
CBP_RATE = 1e-4  # continual backprop's replacement rate in the figures: see notebooks/cbp_sweep.ipynb


MNIST, FASHION, ALTERNATING = ("mnist",), ("fashion_mnist",), ("fashion_mnist", "mnist")

# The step size every learner of an Iqbal figure takes, per regime. At the printed protocol our baseline
# never collapses (Fig. 2), so the paper's claims about what the state prevents have no premise there.
# "collapse" is the paper's regime: the grid step size at which the baseline behaves as the paper reports,
# a good start and a median collapse between tasks 100 and 200 on MNIST (`boundary.paper_regime` picks
# it from the sensitivity map; tests/test_boundary.py checks the stored map still picks this value).
# "standardized" is the other reading under which the baseline behaves so: the printed step size with
# inputs standardized as in PyTorch's MNIST example (REGIME_INPUTS; tasks.INPUT_SCALINGS), the one
# reading in which the boundary page finds the persistent state keeping the network trainable.
REGIMES = {"printed": LR, "collapse": 0.125, "standardized": LR}
REGIME_INPUTS = {"standardized": "standardized"}  # the input scaling per regime; "unit" where not named
REGIME_FIGURES = ("fig2", "fig3", "fig4", "fig5", "fig6", "fig7")  # Iqbal's figures: the regimes apply


def _spec(learner, datasets, scale: Scale, seed: int, task_fraction: float = 1.0, inputs: str = "unit") -> RunSpec:
    stream = PermutedStream(
        datasets=datasets, examples_per_task=scale.examples_per_task, batch_size=BATCH_SIZE, inputs=inputs
    )
    return RunSpec(
        learner=learner,
        stream=stream,
        n_tasks=max(1, round(scale.n_tasks * task_fraction)),
        test_examples=scale.test_examples,
        probe_examples=scale.probe_examples,
        seed=seed,
    )


def _persistent(n, d_int, label_d: bool = False, **options) -> dict[str, PersistentState]:
    """One persistent-state learner per (n, d_int); the label names d only when it varies."""
    n = params.int_list("n", n, 1)
    d_ints = params.int_list("d_int", d_int, 1)
    return {
        f"persistent n={k}" + (f", d={d}" if label_d or len(d_ints) > 1 else ""): PersistentState(
            lr=LR, d_int=d, n=k, **options
        )
        for d in d_ints
        for k in n
    }


def _cbp() -> ContinualBackprop:
    return ContinualBackprop(lr=LR, replacement_rate=CBP_RATE)


def fig2(n=(1, 2), d_int: int = 128, combined: bool = True) -> dict[str, tuple]:
    """Iqbal Fig. 2: online permuted MNIST; baseline, CBP, persistent state (n), and (beyond the
    paper) the persistent state with CBP's generate-and-test at the largest n."""
    d_int = params.int_at_least("d_int", d_int, 1)
    params.boolean("combined", combined)
    learners = {"baseline": Backprop(lr=LR), "CBP": _cbp(), **_persistent(n, d_int)}
    if combined:
        k = max(params.int_list("n", n, 1))
        learners[f"persistent n={k} + CBP"] = PersistentStateCBP(lr=LR, d_int=d_int, n=k, replacement_rate=CBP_RATE)
    return {label: (MNIST, learner) for label, learner in learners.items()}


def fig3(n=(1, 2), d_int=(128, 256)) -> dict[str, tuple]:
    """Iqbal Fig. 3: online permuted Fashion-MNIST, d_int in {128, 256}; baseline and CBP beside."""
    learners = {"baseline": Backprop(lr=LR), "CBP": _cbp(), **_persistent(n, d_int, label_d=True)}
    return {label: (FASHION, learner) for label, learner in learners.items()}


def fig4(n=(1, 2, 4), d_int: int = 256) -> dict[str, tuple]:
    """Iqbal Fig. 4: permuted Fashion-MNIST, d_int = 256, n in {1, 2, 4}."""
    d_int = params.int_at_least("d_int", d_int, 1)
    return {label: (FASHION, learner) for label, learner in _persistent(n, d_int).items()}


def fig5() -> dict[str, tuple]:
    """Iqbal Fig. 5: end-of-task test accuracy of the runs of Figs. 2 and 3 (no runs of its own)."""
    return {
        **{f"MNIST · {k}": v for k, v in fig2(combined=False).items()},
        **{f"Fashion-MNIST · {k}": v for k, v in fig3().items()},
    }


def fig6(n: int = 2, d_int: int = 128) -> dict[str, tuple]:
    """Iqbal Fig. 6: state ablations (frozen at zero; random with the learned norm) on permuted MNIST."""
    n = params.int_at_least("n", n, 1)
    d_int = params.int_at_least("d_int", d_int, 1)
    learners = {
        "baseline": Backprop(lr=LR),
        f"persistent n={n}": PersistentState(lr=LR, d_int=d_int, n=n),
        f"zero state n={n}": PersistentState(lr=LR, d_int=d_int, n=n, state="zero"),
        f"random state n={n}": PersistentState(lr=LR, d_int=d_int, n=n, state="random"),
    }
    return {label: (MNIST, learner) for label, learner in learners.items()}


def fig7(n: int = 2, d_int: int = 256) -> dict[str, tuple]:
    """Iqbal Fig. 7: alternating permuted Fashion-MNIST (even tasks) and MNIST (odd tasks)."""
    n = params.int_at_least("n", n, 1)
    d_int = params.int_at_least("d_int", d_int, 1)
    learners = {"baseline": Backprop(lr=LR), f"persistent n={n}": PersistentState(lr=LR, d_int=d_int, n=n)}
    return {label: (ALTERNATING, learner) for label, learner in learners.items()}


def cbp_sweep(rates=CBP_RATES) -> dict[str, tuple]:
    """Choosing CBP's replacement rate: permuted MNIST, the first third of the scale's tasks."""
    rates = params.float_list("rates", rates, 0.0, 1.0)
    return {f"CBP rate={r:g}": (MNIST, ContinualBackprop(lr=LR, replacement_rate=r)) for r in rates}


FIGURES: dict[str, Callable[..., dict[str, tuple]]] = {
    "fig2": fig2,
    "fig3": fig3,
    "fig4": fig4,
    "fig5": fig5,
    "fig6": fig6,
    "fig7": fig7,
    "cbp_sweep": cbp_sweep,
}
TASK_FRACTION = {"cbp_sweep": 1 / 3}  # figures that run only a prefix of the scale's tasks
# Seeds of the committed `small`-scale results (a page's default at that scale): 5 where the paper's
# main claims are, 3 for the secondary figures, 2 for the sweep; at `paper` scale every line has PAPER_SEEDS.
DEFAULT_SEEDS = {"fig2": 5, "fig3": 5, "fig4": 3, "fig5": 5, "fig6": 3, "fig7": 3, "cbp_sweep": 2}


def regime_lr(figure: str, regime: str) -> float:
    """The step size of `figure`'s learners in `regime` (one of REGIMES; only Iqbal's figures,
    REGIME_FIGURES, have a regime other than "printed")."""
    params.choice("regime", regime, REGIMES)
    if regime != "printed" and figure not in REGIME_FIGURES:
        raise ValueError(f"regime={regime!r} is not valid for {figure}; it has only 'printed'")
    return REGIMES[regime]


def regime_text(regime: str) -> str:
    """How a page names `regime`'s protocol: "lr 0.125", "lr 0.05, standardized inputs"."""
    params.choice("regime", regime, REGIMES)
    inputs = REGIME_INPUTS.get(regime, "unit")
    return f"lr {REGIMES[regime]:g}" + ("" if inputs == "unit" else f", {inputs} inputs")


def figure_runs(
    figure: str, scale: str = "small", seeds=3, regime: str = "printed", **options
) -> list[tuple[str, RunSpec]]:
    """(label, run spec) for every run the figure needs at this scale and regime (REGIMES: every
    learner at that step size, with that regime's input scaling, REGIME_INPUTS; all else as
    printed), all parameters validated."""
    params.choice("figure", figure, FIGURES)
    params.choice("scale", scale, SCALES)
    seeds = params.seed_list(seeds)
    lr = regime_lr(figure, regime)
    fraction = TASK_FRACTION.get(figure, 1.0)
    return [
        (
            label,
            _spec(
                learner if regime == "printed" else replace(learner, lr=lr),
                datasets,
                SCALES[scale],
                seed,
                fraction,
                REGIME_INPUTS.get(regime, "unit"),
            ),
        )
        for label, (datasets, learner) in FIGURES[figure](**options).items()
        for seed in seeds
    ]


def alone_runs(
    scale: str = "small", seeds=3, n: int = 2, d_int: int = 256, regime: str = "printed"
) -> list[tuple[str, RunSpec]]:
    """Fig. 7's comparison line: Fig. 3's persistent state (same n, d_int and regime) on Fashion-MNIST alone."""
    label = f"persistent n={n}, d={d_int}"
    runs = figure_runs("fig3", scale, seeds, regime, n=n, d_int=d_int)
    return [(line, spec) for line, spec in runs if line == label]


def page_runs(
    figure: str, scale: str = "small", seeds=3, regime: str = "printed", **options
) -> list[tuple[str, RunSpec]]:
    """Every run a figure's page reads: the figure's own and, for Fig. 7, its comparison line."""
    runs = figure_runs(figure, scale, seeds, regime, **options)
    return runs + alone_runs(scale, seeds, regime=regime, **options) if figure == "fig7" else runs


load_figure = figure_loader(
    figure_runs,
    doc="""The figure's tidy results; options as `figure_runs` takes them (e.g. `regime`, one of REGIMES).""",
)


PAPER_SEEDS = 5  # the paper-scale results have five seeds per line (issue: paper-scale results)
# Figure pages shown at `paper` scale by default: those whose page runs (`page_runs`) all have PAPER_SEEDS
# seeds in the committed store (a test keeps this equal to the store); the rest show `small` scale.
PAPER_PAGES = frozenset({"cbp_sweep", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7"})  # all of them


def page_defaults(figure: str) -> tuple[str, int]:
    """The scale and number of seeds a figure's page (its notebook) shows by default."""
    params.choice("figure", figure, FIGURES)
    return ("paper", PAPER_SEEDS) if figure in PAPER_PAGES else ("small", DEFAULT_SEEDS[figure])


def paper_runs(seeds: int = PAPER_SEEDS, regime: str = "printed") -> list[RunSpec]:
    """Every run of every Iqbal figure at `paper` scale in `regime`, each once (figures share lines)."""
    figures = [f for f in FIGURES if regime == "printed" or f in REGIME_FIGURES]
    unique = {spec_key(s.to_dict()): s for f in figures for _, s in figure_runs(f, "paper", seeds, regime)}
    return list(unique.values())


def shard(runs: list[RunSpec], index: int, count: int) -> list[RunSpec]:
    """The runs of shard `index` (1-based) of `count`: whole run groups (a line's seeds), dealt out
    round-robin in the order of `runs`. The deal is over every group, stored or not, so a shard
    restarted after others finished groups still takes the same ones, and two shards never train (and
    checkpoint) the same group at once."""
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count} is not valid; give K/N with 1 <= K <= N")
    keys = list(dict.fromkeys(s.group_key() for s in runs))
    mine = set(keys[index - 1 :: count])
    return [s for s in runs if s.group_key() in mine]


def paper_progress(store: Store | None = None, seeds: int = PAPER_SEEDS, regimes=tuple(REGIMES)) -> pd.DataFrame:
    """Every line of every Iqbal figure at `paper` scale, per regime: how many of its seeds are stored,
    and where, how long and at which commit they were computed. A line shared by several figures
    (e.g. the baseline) is listed under each."""
    store = store or Store()
    rows = []
    for regime in params.choice_list("regimes", regimes, REGIMES):
        for figure in FIGURES:
            if regime != "printed" and figure not in REGIME_FIGURES:
                continue
            lines: dict[str, list[RunSpec]] = {}
            for label, spec in figure_runs(figure, "paper", seeds, regime):
                lines.setdefault(label, []).append(spec)
            for label, specs in lines.items():
                records = [store.load(s.to_dict()) for s in specs if s.to_dict() in store]
                prov = [r["provenance"] for r in records]
                rows.append(
                    {
                        "regime": regime,
                        "figure": figure,
                        "label": label,
                        "seeds_stored": f"{len(records)}/{len(specs)}",
                        "device": ", ".join(sorted({p["device_name"] for p in prov})),
                        "wall_time_h": round(max(p["wall_time_s"] for p in prov) / 3600, 2) if prov else None,
                        "git_commit": ", ".join(sorted({p["git_commit"][:12] for p in prov})),
                        "date": max((p["date"][:10] for p in prov), default=""),
                    }
                )
    return pd.DataFrame(rows)


def regime_lines(
    figure: str,
    scale: str = "paper",
    seeds=PAPER_SEEDS,
    regime: str = "collapse",
    device: str = "auto",
    labels: str | Sequence[str] | None = None,
    **options,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A figure page's lines in another regime (`page_lines`: at paper scale the stored ones only);
    with `labels`, only those lines (the others are neither loaded nor computed)."""
    runs = page_runs(figure, scale, seeds, regime, **options)
    if labels is not None:
        labels = params.choice_list("labels", labels, dict.fromkeys(label for label, _ in runs))
        runs = [(label, spec) for label, spec in runs if label in labels]
    return page_lines(runs, scale, device)


def stored_paper_lines(
    figure: str, store: Store | None = None, seeds: int = PAPER_SEEDS, progress: bool = False, regime: str = "printed"
) -> pd.DataFrame:
    """The tidy paper-scale results of the figure's lines (in `regime`) whose seeds are all stored
    (nothing is computed); empty if none is complete yet."""
    return stored_lines(figure_runs(figure, "paper", seeds, regime), "paper", store, progress)
