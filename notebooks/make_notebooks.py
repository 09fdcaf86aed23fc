"""Writes the source cells of every figure notebook (run from the repository root).

The notebooks are the product; this script only keeps their shared structure in one place:
parameters, runs, figure, summary, collapse statistic, verdict, provenance. It writes them
*unexecuted*; execute each in place afterwards (that is what commits outputs):

    .venv/bin/python notebooks/make_notebooks.py
    for nb in notebooks/*.ipynb; do .venv/bin/papermill $nb $nb --cwd .; done
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat as nbf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lopcore.figures import page_defaults  # noqa: E402

HERE = Path(__file__).resolve().parent
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell

CURVES = """Left: online accuracy of each task (the fraction of its images classified correctly *before* the
update on their batch) as a 20-task trailing sliding mean; the faint line is the per-task seed mean and
the band spans the seeds (min to max). Right: the weight norm at the end of each task,
$\\lVert\\theta\\rVert_2 / N_\\theta$, the Euclidean norm of all parameters divided by their number (see
[Methods](../book/methods.md)); the persistent models have more parameters, which by itself lowers it."""

SUMMARY = """Per learner, means over seeds: online accuracy over the first and last 20 tasks, the lowest 20-task
sliding accuracy, end-of-task test accuracy and weight norm after the last task, and each seed's collapse
task (the first task whose 20-task sliding accuracy is below 0.5; "-" if none). Below it, the collapse
statistic: how many seeds collapsed, and the mean collapse task of those that did with a 95% confidence
interval. `pytest --nbval` re-executes this notebook and checks these tables and the verdicts."""

COMMON_PARAMS = [("scale: str = \"{scale}\"", "\"paper\", \"small\" or \"smoke\""),
                 ("seeds: int = {seeds}", "number of seeds (or a list)"),
                 ("device: str = \"auto\"", "\"auto\", \"cpu\", \"cuda\", \"cuda:N\"")]


def rerun(name: str, cli: str) -> str:
    """The page's opening instruction: the papermill command that reruns it (or a variant)."""
    return f"""Rerun it, or a variant, with

```bash
papermill notebooks/{name}.ipynb out.ipynb {cli} -p scale small
```"""


def new_notebook(cells: list) -> nbf.NotebookNode:
    """A notebook of these cells with the Python 3 kernel every page runs on."""
    return nbf.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})


def provenance_cells() -> list:
    """The closing cells of a figure page: where and when its runs were computed (from `df`)."""
    return [md("Where and when these runs were computed:"),
            code("""# NBVAL_IGNORE_OUTPUT
plotting.provenance(df)""")]


def parameters_cell(specific: str, scale: str, seeds: int) -> str:
    """The figure's own parameters, then scale, seeds and device (with these defaults), comments aligned."""
    lines = [tuple(line.split("  # ", 1)) for line in specific.splitlines() if line.strip()]
    lines = [(a.rstrip(), b) for a, b in lines] + [(a.format(scale=scale, seeds=seeds), b) for a, b in COMMON_PARAMS]
    width = max(len(a) for a, _ in lines) + 2
    return "\n".join(f"{a:<{width}}# {b}" for a, b in lines)


FIGURES = {
    "fig2": dict(
        title="Figure 2: online permuted MNIST",
        claim="""On online permuted MNIST in an aggressive setting (three ReLU layers of 100 units, SGD with
step size 0.05, batches of 8, one pass over the 60000 training images per task, 600 tasks), plain
backprop loses plasticity: its online accuracy collapses by roughly task 100–200. A persistent internal
state $h \\in \\mathbb{R}^{d_\\text{int}}$, $d_\\text{int} = 128$, with the graph through $h$ cut every $n$
steps, keeps the network trainable: with $n = 2$ there is no collapse over 600 tasks, and with $n = 1$ the
collapse comes much later. The better models show slower growth of the weight norm. Continual backprop
(CBP, {cite}`dohare2024loss`) is the hand-designed reference. Beyond the paper, we add the persistent
state *with* CBP's generate-and-test (`combined`).""",
        params='''n: list = [1, 2]        # truncation period(s), each at least 1
d_int: int = 128        # dimension of the state h
combined: bool = True   # also run persistent state + CBP at the largest n''',
        options="n=n, d_int=d_int, combined=combined", plot="accuracy_and_weight_norm(df, title=f\"Online permuted MNIST ({scale} scale)\")",
        caption=CURVES, cli="-p n 2"),
    "fig3": dict(
        title="Figure 3: online permuted Fashion-MNIST",
        claim="""The same experiment on Fashion-MNIST, a harder data set. The persistent state pushes the
collapse back but does not stop it; $n = 2$ is better than $n = 1$, and a larger state,
$d_\\text{int} = 256$, helps a little over $128$.""",
        params='''n: list = [1, 2]          # truncation period(s), each at least 1
d_int: list = [128, 256]  # dimension(s) of the state h''',
        options="n=n, d_int=d_int", plot="accuracy_and_weight_norm(df, title=f\"Online permuted Fashion-MNIST ({scale} scale)\")",
        caption=CURVES, cli="-p d_int 256"),
    "fig4": dict(
        title="Figure 4: truncation period n ∈ {1, 2, 4}",
        claim="""On permuted Fashion-MNIST with $d_\\text{int} = 256$, performance does not grow with the
truncation period: $n = 2$ is the best, and $n = 4$ is worse than $n = 2$.""",
        params='''n: list = [1, 2, 4]   # truncation periods, each at least 1
d_int: int = 256      # dimension of the state h''',
        options="n=n, d_int=d_int", plot="accuracy_and_weight_norm(df, title=f\"Permuted Fashion-MNIST, d_int = {d_int} ({scale} scale)\")",
        caption=CURVES, cli="-p n 4"),
    "fig5": dict(
        title="Figure 5: end-of-task test accuracy",
        claim="""The runs of Figures 2 and 3 measured on held-out data: after each task, the 10000 test images
(2000 at `small` scale) under that task's permutation. Test accuracy tells the same story as online
accuracy.""",
        params="",
        options="", plot="test_accuracy_by_dataset(df)",
        caption="""End-of-task test accuracy per learner, 20-task sliding mean, band over seeds. These are the same
runs as Figures 2 and 3 (the results store returns them; nothing is trained for this page).""",
        cli="-p seeds 3"),
    "fig6": dict(
        title="Figure 6: ablations of the state",
        claim="""To show that the benefit comes from the *dynamics* of the state and not from the extra inputs
of the architecture, the state is kept in the network but frozen at zero, or replaced at every step by a
random direction with the norm the learned update would have had. Both behave like the baseline.""",
        params='''n: int = 2            # truncation period of the learned and ablated states
d_int: int = 128      # dimension of the state h''',
        options="n=n, d_int=d_int", plot="accuracy_and_weight_norm(df, title=f\"State ablations, permuted MNIST ({scale} scale)\")",
        caption=CURVES, cli="-p n 1"),
    "fig7": dict(
        title="Figure 7: alternating Fashion-MNIST and MNIST",
        claim="""If the state helped by remembering the previous task, alternating data sets (each task's
predecessor comes from the *other* data set) should hurt it. The paper finds the opposite: on alternating
permuted Fashion-MNIST / MNIST, the persistent state does about as well as on Fashion-MNIST alone.""",
        params='''n: int = 2            # truncation period of the state
d_int: int = 256      # dimension of the state h''',
        options="n=n, d_int=d_int", plot="alternating(df)",
        caption="""Left: online accuracy, the sliding mean taken over the tasks of one data set at a time; solid
lines are the MNIST tasks (odd task indices), dashed lines the Fashion-MNIST tasks (even ones). Right:
the weight norm.""", cli="-p n 1"),
    "cbp_sweep": dict(
        title="Choosing continual backprop's replacement rate",
        claim="""Continual backprop has one important knob, the replacement rate ρ (the fraction of mature units
replaced per step). Dohare et al. use $10^{-4}$ for this network size; Iqbal does not state the value.
We pick it with a small sweep on permuted MNIST over the first third of the tasks, by the mean online
accuracy over the sweep's last 100 tasks; the figures use `CBP_RATE` in `lopcore/figures.py`.""",
        params='''rates: list = [1e-05, 0.0001, 0.001]  # replacement rates, each in [0, 1)''',
        options="rates=rates", plot="accuracy_and_weight_norm(df, title=f\"CBP replacement rate, permuted MNIST ({scale} scale)\")",
        caption=CURVES, cli="-p rates 0.001"),
}


def notebook(name: str, spec: dict) -> nbf.NotebookNode:
    options = spec["options"]
    comma = ", " if options else ""
    cells = [
        md(f"""# {spec['title']}

**The paper's claim** ({{cite}}`iqbal2025persistent`). {spec['claim']}

**What this page shows.** The experiment computed by `lopcore` and read from the results store; the scale
and seeds are printed below the parameters, and the verdict, computed from the results, closes the page.
{rerun(name, spec['cli'])}"""),
        code(parameters_cell(spec["params"], *page_defaults(name)), metadata={"tags": ["parameters"]}),
        code(f"""from lopcore import claims, plotting
from lopcore.figures import SCALES, figure_runs, load_figure

runs = figure_runs("{name}", scale=scale, seeds=seeds{comma}{options})  # validates every parameter
size = SCALES[scale]
print(f"scale {{scale!r}}: {{runs[0][1].n_tasks}} tasks x {{size.examples_per_task}} images, batch 8, lr 0.05; "
      f"{{len(runs)}} runs ({{len({{s.seed for _, s in runs}})}} seeds per learner)")"""),
        code(f"""# NBVAL_IGNORE_OUTPUT
# Finished runs come from the results store; only missing ones are computed (and stored).
df = load_figure("{name}", scale=scale, seeds=seeds, device=device{comma}{options})"""),
        md(spec["caption"]),
        code(f"""# NBVAL_IGNORE_OUTPUT
fig = plotting.{spec['plot']}"""),
        md(SUMMARY),
        code("plotting.summary(df)"),
        code("claims.collapse_statistic(df)"),
    ]
    if name == "fig7":
        cells += [md("""## Verdict

The alternation claim compares this figure's runs with Figure 3's runs of the same learner on
Fashion-MNIST alone (loaded from the results store):"""),
                  code("""# NBVAL_IGNORE_OUTPUT
from lopcore.figures import alone_runs, load_runs

alone = load_runs(alone_runs(scale, seeds, n, d_int), scale, device)"""),
                  code("""verdict = claims.alternation_claims(df, alone, n, d_int)
print(verdict.attrs["definition"], f"(scale {scale!r}, seeds {sorted(set(df.seed))})")
verdict.set_index("claim")""")]
    elif name != "cbp_sweep":
        cells += [md("""## Verdict

Each claim of the paper about this figure, as an explicit predicate over the results above:"""),
                  code(f"""verdict = claims.figure_claims("{name}", df)
print(verdict.attrs["definition"], f"(scale {{scale!r}}, seeds {{sorted(set(df.seed))}})")
verdict.set_index("claim")""")]
    if name == "cbp_sweep":
        cells += [md("""## The choice

The rule: the smallest rate whose mean online accuracy over the sweep's last 100
tasks is within 0.005 of the best rate's (smaller rates disturb the network less; closer than that is
within the spread of the seeds). The figures use `CBP_RATE`; the line below says whether it is the rate
the rule picks from these results."""),
                  code("""from lopcore.figures import CBP_RATE

chosen, late = claims.choose_cbp_rate(df)
print(late.round(4).to_string())
print(f"rule picks {chosen:g}; the figures use CBP_RATE = {CBP_RATE:g}:", "agree" if chosen == CBP_RATE else "DISAGREE")""")]
    return new_notebook(cells + provenance_cells())


SCOREBOARD_INTRO = """# Claims scoreboard

Every qualitative claim of the paper {cite}`iqbal2025persistent` (and CBP's, {cite}`dohare2024loss`),
written as an explicit predicate over our results (`lopcore/claims.py`) and evaluated here, live, on the
runs of the figure pages: ✓ where the results support it, ✗ where they do not, with the numbers behind
each verdict, the scale and the number of seeds. A ✗ is a finding, not a failure.

The first board judges the claims at Iqbal's full protocol (600 tasks × 60000 images, 5 seeds per
line) from the paper-scale runs in the results store and nothing else: a claim whose lines do not all
have their five seeds stored is listed as pending, with what it waits for (the *Paper scale: progress*
page shows where the runs come from). These are the verdicts that test the paper."""

SCOREBOARD_PARAMS = """scale: str = "paper"  # "paper", "small" or "smoke"
compare_scale: str = "small"  # the second board's scale ("" for none)
device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N\""""

SCOREBOARD_CODE = """import pandas as pd
from lopcore import claims
from lopcore.figures import SCALES

pd.set_option("display.max_colwidth", None)
# Paper scale is read from the store, never computed here (hours per line); `lopcore paper` computes it.
board = claims.scoreboard(scale=scale, device=device, stored_only=scale == "paper")
judged = board[board.verdict != claims.PENDING]
size = SCALES[scale]
print(f"scale {scale!r}: {size.n_tasks} tasks x {size.examples_per_task} images per task;", board.attrs["definition"])
print(f"{len(judged)} of {len(board)} claims have all their runs; {(judged.verdict == '✓').sum()} of those hold")
board.set_index(["figure", "claim"])"""


SCOREBOARD_COMPARE_MD = """## Beside it: `small` scale

The same claims on the `small`-scale runs the figure pages were first built on (the parameter
`compare_scale` picks another scale, or none). A `small` run keeps the paper's 600 tasks but gives each
task a tenth of its images, so it makes a tenth of the paper's 4.5 million SGD steps. Loss of plasticity
builds up with the number of updates, so claims about *when* a learner collapses (the paper's baseline
fails around task 100–200, after roughly a million steps) are only put to a fair test at `paper` scale;
at `small` scale they test whether the same ordering shows up earlier in training. Where the two boards
disagree, the paper-scale verdict is the one that tests the paper."""

SCOREBOARD_COMPARE = """if compare_scale:
    other = claims.scoreboard(scale=compare_scale, device=device, stored_only=compare_scale == "paper")
    print(f"scale {compare_scale!r}: {(other.verdict == '✓').sum()} of {len(other)} claims hold")
    display(other.set_index(["figure", "claim"]))"""


def scoreboard() -> nbf.NotebookNode:
    cells = [md(SCOREBOARD_INTRO), code(SCOREBOARD_PARAMS, metadata={"tags": ["parameters"]}), code(SCOREBOARD_CODE),
             md(SCOREBOARD_COMPARE_MD), code(SCOREBOARD_COMPARE)]
    return new_notebook(cells)


PERFORMANCE_INTRO = """# Performance

A paper-scale run of Iqbal's protocol is 600 tasks × 60000 images in batches of 8: 4.5 million
sequential SGD steps, each only a few MFLOP. A textbook PyTorch loop (an `nn.Module`, autograd and an
SGD update, one run at a time) spends most of each step launching small kernels. The engine instead
advances **R runs at once**: every tensor of a learner's state has a leading run axis, and one step is a
short, hand-written sequence of batched matrix products for all R runs:

* the forward pass is one `baddbmm` per layer (bias and product fused), ReLU in place;
* the backward pass computes only the deltas a weight update needs (no input gradient of the first
  layer, no autograd graph), one `bmm` per hidden layer;
* each layer's SGD update is one in-place `baddbmm_`, `W -= lr · aᵀδ`: the gradient is never
  materialised, so the weights are read and written once per step;
* nothing in a step reads a value back to the host: the loss and the count of correct predictions
  accumulate on the device and are read once per task, together with the correlates.

Seeds are the natural run axis (the runs of one figure line differ only in their seed), so 5 seeds cost
about what one costs on a GPU and a fraction of five on a CPU. The numerics are the textbook loop's:
the tests compare the engine at R = 1 with an autograd `nn.Module` over 200 steps, and R runs together
with the same runs one at a time.

## The benchmark

`python -m lopcore.bench` times, in one process, the textbook loop (one run) and the engine at
R ∈ {1, 16, 64} (and 256 on a GPU), for the no-mitigation baseline and the persistent state with n = 2,
and projects the wall time of every Iqbal figure at paper scale with 5 seeds from the engine's best
per-run speed. Both sides gather and permute their batches from the same uint8 images on the device, and
both timings include that (benchmarks saved before 2026-11-23 timed pre-made float batches instead,
which flattered both sides by the same few µs). The engine is timed as it trains (`lopcore.blocks`:
blocks of 8 steps on a CPU, whose gathered batches stay in cache; blocks replayed as CUDA graphs on a
GPU). `--save` keeps its result in the results store; this page shows every saved benchmark. On a CPU,
`peak_memory_mb` is the process's peak resident set so far; on a GPU, the peak memory allocated by that
configuration."""

PERFORMANCE_CODE = """import pandas as pd
from lopcore import bench

results = bench.saved_results()
if results.empty:
    print("No benchmark is saved in this results store; run `python -m lopcore.bench --save`.")
else:
    with pd.option_context("display.width", 200):
        print(results.drop(columns=["device_type"]).to_string(index=False))"""

PERFORMANCE_TARGETS = """## Targets

CPU (this machine's kind, 2 cores): at R = 16 the engine's per-run throughput is at least 7× the textbook
loop's, for both learners. GPU: at least 100× at R ≥ 64, and the whole paper (all Iqbal figures, paper
scale, 5 seeds) in at most 10 minutes. The verdicts below are computed from the saved benchmarks."""

PERFORMANCE_VERDICTS = """verdicts = bench.target_verdicts(results)
if not (results.device_type == "cuda").any():
    print("No GPU benchmark is saved yet: the GPU targets are not measured.")
verdicts"""

PERFORMANCE_GPU = """## On a GPU

A step of a few small runs is some sixty kernels of a few microseconds each, and on a GPU launching them
costs more than running them. The GPU path (`lopcore/blocks.py`) removes the launches:

* **data on the device, once**: each data set is copied to the GPU once as uint8 (47 MB for MNIST),
  however many run groups train on it; a block of steps gathers and permutes its own batches there;
* **CUDA graphs**: a block of K steps (64, rounded down to a whole number of truncation periods n, so
  that every block starts where the graph through h is cut) is recorded once per data set, after one
  eager warm-up block, and replayed with one launch. Between replays the host only copies the next
  block's example indices into the graph's input buffer and advances the step counter: no host sync
  inside a task. Steps outside whole blocks run eagerly through the same code;
* **who may be recorded**: a learner whose steps always run the same kernels with the same constants
  says so with `block_period()`: plain SGD (1) and the persistent state (n; learned or zero state).
  Dropout, Shrink & Perturb and the random-state ablation draw from per-run generators, Adam's bias
  correction is a host constant that changes every step, and continual backprop decides on the host
  when to replace units; these run eagerly, still without host syncs;
* **groups sharing the GPU**: runs of different learners cannot share kernels, so their groups can
  train at once, each in a thread on a CUDA stream of its own (`LOPCORE_CONCURRENT_GROUPS=8`);
  concatenation is what the engine already does with the seeds of one learner. The benchmark times
  both (`--sharing`), to choose between them with numbers.

Replays run exactly the kernels of the eager steps, in the same order. On the CPU the same blocks run
eagerly and the tests pin them to the per-batch loop bit for bit (all learners with a period,
n ∈ {1, 2, 3, 4}, tasks that start off the period, alternating data sets). On a GPU,
`tests/test_blocks.py` also checks replayed graphs against eager steps, and `python -m lopcore.bench`
reports `graphs_match_eager` for every configuration.

**Not measured yet.** No GPU has been lent to this project so far, so the GPU table and the GPU
verdicts above are empty and the GPU path has run only in its eager CPU form. On a GPU machine:

```bash
pytest tests/test_blocks.py                      # the graph tests that skip on a CPU
python -m lopcore.bench --steps 2000 --save      # GPU table, graphs vs eager, sharing
papermill notebooks/performance.ipynb notebooks/performance.ipynb --cwd .
```"""

PERFORMANCE_OUTRO = """## Regenerate

```bash
python -m lopcore.bench --steps 1000 --save        # on the machine to measure; then re-execute this page:
papermill notebooks/performance.ipynb notebooks/performance.ipynb --cwd .
```

On a CPU, give the benchmark the machine to itself: any other process on the same cores changes both
timings, and not by the same factor. Save with at least 1000 timed steps; shorter runs vary by several
percent from one run to the next."""


def performance() -> nbf.NotebookNode:
    """The Performance page: every saved benchmark and the engine-speed targets' verdicts."""
    cells = [md(PERFORMANCE_INTRO), code(PERFORMANCE_CODE), md(PERFORMANCE_TARGETS), code(PERFORMANCE_VERDICTS),
             md(PERFORMANCE_GPU), md(PERFORMANCE_OUTRO)]
    return new_notebook(cells)


PAPER_INTRO = """# Paper scale: progress

Iqbal's figures were first computed at `small` scale: the paper's 600 tasks with a tenth of the images
per task. At `paper` scale (600 tasks × 60000 images, batch 8, lr 0.05, 5 seeds per line) each run is
4.5 million SGD steps. Those runs were meant for a GPU (see *Performance*); none has been lent to this
project yet, so they ran on this project's 2-core CPU, one line (5 seeds together) per core, and each
finished line was committed to the results store with its device, wall time and commit (the table
below). A figure page switches to paper scale once all of its lines are stored, and the claims
scoreboard gives each claim its paper-scale verdict as soon as the lines it needs are; every line of
every Iqbal figure is now in. To check, or to recompute on another machine into an empty store
(finished runs are read, a group in progress resumes from its checkpoint):

```bash
python -m lopcore paper --status                                   # this page's table
python -m lopcore paper                                            # every missing run, each once
LOPCORE_CHECKPOINT_EVERY_S=60 python -m lopcore paper --device cuda --concurrent 8   # on a GPU
```"""

PAPER_PROGRESS = """import pandas as pd
from lopcore import plotting
from lopcore.figures import PAPER_PAGES, paper_progress, stored_paper_lines

progress = paper_progress()
print(f"paper-scale lines with all 5 seeds stored: {(progress.seeds_stored == '5/5').sum()} of {len(progress)} "
      f"(figure lines; fig5 and fig6 share lines with fig2 and fig3)")
print("figure pages shown at paper scale:", ", ".join(sorted(PAPER_PAGES)) or "none yet")
with pd.option_context("display.width", 200, "display.max_rows", 100):
    print(progress.to_string(index=False, na_rep=""))"""

PAPER_FIG2_MD = """## Figure 2 at paper scale

Online accuracy on permuted MNIST, sliding average over tasks with a band over the seeds, for the lines
of Figure 2 whose five seeds are stored (all of them once the figure is complete; its page then shows
them too). Compare with the same lines at `small` scale (`-p scale small` on the Figure 2 notebook).
The claims scoreboard's paper-scale board gives the verdicts these lines allow."""

PAPER_FIG2 = """# NBVAL_IGNORE_OUTPUT
df = stored_paper_lines("fig2")
if df.empty:
    print("No line of Figure 2 has all five seeds stored at paper scale yet.")
else:
    fig = plotting.accuracy_and_weight_norm(df, title="Online permuted MNIST (paper scale)")"""

PAPER_FIG2_SUMMARY = 'plotting.summary(df) if not df.empty else "no complete line yet"'

PAPER_FIG2_PROVENANCE = '# NBVAL_IGNORE_OUTPUT\nplotting.provenance(df) if not df.empty else "no complete line yet"'


PAPER_COLLAPSE_MD = """### Does the baseline collapse, and does the state help?

Iqbal reports, from one seed, that the baseline's trainability fails completely by about task 100 to 200
and that the persistent state with n = 2 never collapses in 600 tasks. The cell below applies the
scoreboard's definition of a collapse (the 20-task sliding online accuracy falls below 0.5) to every
seed stored at paper scale, and compares each line's online accuracy over the last 100 tasks with the
baseline's (mean ± standard error over seeds). Where it says no seed collapsed, our full-protocol runs
**disagree with the paper**: the baseline loses plasticity steadily (compare its first and last 20 tasks
above, and its growing weight norm), but it does not fail, and so there is no collapse for the state to
prevent. Our `small`-scale runs showed the same (Figure 2 page). The paper's single seed, and details it
does not give (its initialisation, and whether its accuracy is measured before or after each update),
may account for the difference; we have not tested which.

Each line ends with the plain L2 norm of all parameters at the end, $\\lVert\\theta\\rVert_2$, without
the paper's division by their number $N_\\theta$. The persistent state's input weights and state head
add 25% to $N_\\theta$ at $d_\\text{int} = 128$, so the paper's normalised norm is smaller for the same
weights. Here the persistent learners' plain norms end at or above the baseline's: their slower
normalised weight growth comes from the larger count, not from smaller weights."""

PAPER_COLLAPSE = """import numpy as np
from lopcore import claims
from lopcore.plotting import COLLAPSE_BELOW, WINDOW

if df.empty:
    print("no complete line yet")
else:
    for label in df.label.unique():
        tasks = np.array(claims.collapse_tasks(df, label))  # per seed; NaN: no collapse
        hit, of = int((~np.isnan(tasks)).sum()), len(tasks)
        verdict = f"collapsed in {hit} of {of} seeds" if hit else f"did not collapse in any of its {of} seeds"
        late = claims.per_seed(df, label)  # each seed's mean over the last 100 tasks
        end = df[(df.label == label) & (df.task == df.task.max())]
        print(f"{label}: {verdict} over {df.task.max() + 1} tasks ({WINDOW}-task sliding online accuracy "
              f"below {COLLAPSE_BELOW}); online accuracy over the last {claims.LATE} tasks "
              f"{late.mean():.3f} ± {late.std(ddof=1) / len(late) ** 0.5:.3f}; at the end ‖θ‖₂ = "
              f"{(end.weight_norm * end.n_params).mean():.1f} over N_θ = {end.n_params.iloc[0]:.0f} parameters")"""


def paper_scale() -> nbf.NotebookNode:
    """The paper-scale progress page: what is stored, and Figure 2's complete lines."""
    cells = [md(PAPER_INTRO), code(PAPER_PROGRESS), md(PAPER_FIG2_MD), code(PAPER_FIG2), code(PAPER_FIG2_SUMMARY),
             md(PAPER_COLLAPSE_MD), code(PAPER_COLLAPSE), code(PAPER_FIG2_PROVENANCE)]
    return new_notebook(cells)


if __name__ == "__main__":
    # python notebooks/make_notebooks.py [NAME ...]: only the named notebooks (default: all of them)
    writers = {**{name: (lambda spec=spec, name=name: notebook(name, spec)) for name, spec in FIGURES.items()},
               "claims": scoreboard, "performance": performance,
               "paper_scale": paper_scale}
    for name in sys.argv[1:] or writers:
        nbf.write(writers[name](), HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")
