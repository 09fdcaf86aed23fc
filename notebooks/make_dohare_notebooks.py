"""Writes the source cells of the Dohare figure notebooks (dfig_*; run from the repository root).

The same structure as make_notebooks.py (Iqbal's figures), whose parameters cell it reuses: the
thesis's claim, parameters, runs, figure, summary, verdict, provenance. It writes them
*unexecuted*; compute the results first, then execute each in place from the store:

    .venv/bin/python notebooks/make_dohare_notebooks.py
    for nb in notebooks/dfig_*.ipynb; do LOPCORE_NO_COMPUTE=1 .venv/bin/papermill $nb $nb --cwd .; done
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat as nbf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from lopcore.dohare_figures import DEFAULT_SEEDS  # noqa: E402
from make_notebooks import new_notebook, parameters_cell, provenance_cells, rerun  # noqa: E402

HERE = Path(__file__).resolve().parent
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell

SMALL = """**Scale.** The committed outputs are at `small` scale, computed on a 2-core CPU, and they are *not*
the thesis's protocol: the hidden layers have **100 units instead of 2000** (the thesis's own
narrowest network, the one that loses plasticity fastest; a 2000-wide network at batch 1 costs about
10 ms per step on one core), a task is **2500 images instead of 60000**, and a run is **100 tasks
instead of 800** (250 thousand SGD steps instead of 48 million). Batch size 1, plain SGD, Kaiming
initialisation and the step sizes are the thesis's. `scale="paper"` is the protocol exactly (a GPU job;
see `lopcore/dohare_figures.py`)."""

SCALE_LINE = {
    "size": """print(f"scale {{scale!r}}: {{size.n_tasks}} tasks x {{size.examples_per_task}} images, batch 1, "
      f"3 hidden layers of {{size.width}} ReLU units (paper: 2000), {{len(runs)}} runs "
      f"({{len({{s.seed for _, s in runs}})}} seeds per curve)")""",
    "width": """print(f"scale {{scale!r}}: {{size.width_tasks}} tasks x {{size.examples_per_task}} images, batch 1, step size 0.003, "
      f"widths {{sorted({{s.learner.hidden[0] for _, s in runs}})}} (paper: 100, 1000, 10000 for 150 tasks), "
      f"{{len(runs)}} runs ({{len({{s.seed for _, s in runs}})}} seeds per curve)")""",
    "rate": """print(f"scale {{scale!r}}: {{size.change_examples:,}} examples per run, batch 1, step size 0.003, width {{size.width}}; "
      f"permutation switched every {{sorted({{s.stream.examples_per_task for _, s in runs}})}} examples "
      f"(paper: 10k, 100k, 1M of 48M); {{len(runs)}} runs ({{len({{s.seed for _, s in runs}})}} seeds per curve)")""",
}

FIGURES = {
    "dfig_stepsize": dict(
        title="Dohare Fig. 4.2: backprop loses plasticity at every step size",
        claim="""On online permuted MNIST (800 tasks, each the 60000 training images under a fresh pixel
permutation, shown once, one image per SGD step) a network of three hidden layers of 2000 ReLU units
trained by plain backprop first gets *better* over the early tasks (features near the output transfer
between permutations), then its online accuracy falls steadily for the rest of the run: the network
slowly loses its ability to learn. This happens at every step size tried, 0.01, 0.003 and 0.001; 0.003
does best, which is why the later comparisons use it.""",
        params="step_sizes: list = [0.01, 0.003, 0.001]  # SGD step sizes, each in (0, 1)",
        options="step_sizes=step_sizes", scale_line="size",
        plot='dohare_plotting.online_accuracy(df, title=f"Online permuted MNIST, backprop ({scale} scale)")',
        caption="""Online accuracy of each task (the fraction of its images classified correctly *before* the update
on that image), the seed mean in bold with the seeds' range as a band.""",
        cli="-p step_sizes 0.01"),
    "dfig_width": dict(
        title="Dohare Fig. 4.3: narrower networks lose plasticity faster",
        claim="""With step size 0.003 and three hidden layers of 100, 1000 or 10000 units (about 100 thousand,
3 million and 200 million parameters), run for 150 tasks only because of the largest network's cost: the
narrowest network loses plasticity the most, and even the widest loses some.""",
        params="widths: list = None  # hidden widths, each at least 1 (None: the scale's)",
        options="widths=widths", scale_line="width",
        plot='dohare_plotting.online_accuracy(df, title=f"Width study, step size 0.003 ({scale} scale)")',
        caption="""Online accuracy of each task per width. At `small` scale the widths are 25, 100 and 400 around the
small scale's 100 (factors of 4, not the thesis's 10, so that the widest stays affordable at batch 1), and
they run the small scale's 100 tasks, not a shorter study.""",
        cli="-p widths '[100, 400]'"),
    "dfig_changerate": dict(
        title="Dohare Fig. 4.4: the faster the task changes, the more plasticity is lost",
        claim="""With the 2000-unit network and step size 0.003, the permutation is switched every 10 thousand,
100 thousand or 1 million examples instead of every 60 thousand, for 48 million examples in all (a task of
more than 60000 examples is several shuffled passes under one permutation). Performance drops over
successive tasks in all three settings, and drops faster the more often the permutation changes.""",
        params="change_every: list = None  # examples per permutation, each at least 1 (None: the scale's)",
        options="change_every=change_every", scale_line="rate",
        plot='dohare_plotting.accuracy_by_examples(df, title=f"Change rate, step size 0.003 ({scale} scale)")',
        caption="""Online accuracy of each task, placed at the number of examples seen by the task's end, one curve per
switching interval. At `small` scale the study keeps the thesis's ratios between intervals (factors of 10) with
the small scale's task length, 2500, in the middle: 250, 2500 and 25000 examples per permutation, 250
thousand in all (1000, 100 and 10 tasks).""",
        cli="-p change_every '[250, 25000]'",
        reading="""**Reading the verdict at `small` scale.** Every interval sees the same 250 thousand examples, so the
slowest (25000 per permutation) has only 10 tasks: its peak and late windows are single tasks, and a drop
of about one point is at the edge of the 0.01 threshold. The ordering of the drops compares like with like
(the same examples, the same network)."""),
    "dfig_correlates": dict(
        title="Dohare Figs. 4.5–4.7: what goes with the loss of plasticity",
        claim="""Alongside the falling accuracy of Fig. 4.2 three things change in the backprop networks, measured at
the start of each task on 2000 images of the new task: (4.5) the share of *dead* units (zero on every one of
those images) grows, reaching a quarter of all units after 800 tasks at step size 0.01; (4.6) the mean
weight magnitude $\\sum|W| / \\#W$ grows; (4.7) the effective rank of the hidden representations falls. We
also record two related measures the thesis does not plot: srank ($\\delta = 0.01$) and the share of
$\\tau$-dormant units ($\\tau = 0.1$: a unit whose mean $|a|$ is at most a tenth of its layer's mean).""",
        params="step_sizes: list = [0.01, 0.003, 0.001]  # SGD step sizes, each in (0, 1)\niqbal_seeds: int = 5  # seeds of Iqbal's fig2 runs compared below",
        options="step_sizes=step_sizes", scale_line="size",
        plot='dohare_plotting.correlate_panels(df, title=f"Correlates of plasticity loss, backprop ({scale} scale)")',
        caption="""Online accuracy and the correlates over tasks (seed mean, band over seeds). How each is normalised:
dead and $\\tau$-dormant units are a percentage of all hidden units (the three layers have equal widths, so it
is the mean of the layers' shares); the weight magnitude is $\\sum|W| / \\#W$ over every weight matrix, the
head's included, biases excluded, after each task (= at the next task's start); the effective rank and srank
are the means over the three layers of each layer's value on the (probe images × units) activation matrix,
at most $\\min(\\text{images}, \\text{width})$ = 100 at `small` scale (2000 at `paper`). At `small` scale the
probe is 2000 images, as in the thesis.""",
        cli="-p step_sizes 0.01"),
    "dfig_methods": dict(
        title="Dohare Figs. 4.8–4.9: the classic mitigations and their correlates",
        claim="""At step size 0.003 on the same problem and network (thesis §4.3; the Nature paper's Extended Data
Fig. 4 adds continual backprop): L2 regularisation and Shrink & Perturb have higher online accuracy than
backprop throughout, and Shrink & Perturb barely drops at all, ending best of the five existing methods;
Dropout, online normalisation and Adam lose *more* plasticity than backprop (online normalisation is better
early and worse late). The weights grow for every method except L2 and Shrink & Perturb (and CBP); dead
units rise for every existing method, least for Shrink & Perturb; the last layer's effective rank falls for
all. CBP keeps almost no dead units, small weights and the highest effective rank, and loses no plasticity.
Settings (the thesis prints only the step size and Dropout's $p$; the rest is the middle of the authors'
three-value grid, see `lopcore/dohare_figures.py`): L2 $\\lambda = 10^{-4}$; Shrink & Perturb
$\\lambda = 10^{-4}$, noise $\\sigma = 10^{-5}$; Dropout $p = 0.1$; online normalisation
$\\alpha_f = 0.999$, $\\alpha_b = 0.99$; Adam step size $10^{-4}$, $\\beta = (0.9, 0.999)$; CBP replacement
rate $10^{-4}$, decay 0.99, maturity 100.""",
        params='methods: list = ["backprop", "L2", "Shrink & Perturb", "Dropout", "online norm", "Adam", "CBP"]  # any of these',
        options="methods=methods", scale_line="size",
        plot='dohare_plotting.correlate_panels(df, title=f"Mitigations, step size 0.003 ({scale} scale)", rank="effective_rank_l3")',
        caption="""Online accuracy and the correlates per method (normalisations as on the
[correlates page](dfig_correlates.ipynb); the effective rank here is the last hidden layer's, as in Fig. 4.9).""",
        cli="-p methods '[\"backprop\", \"CBP\"]'",
        reading="""**Reading the verdict at `small` scale.** L2 and Shrink & Perturb act through a decay of every weight
by $1 - \\alpha\\lambda = 1 - 3\\cdot 10^{-7}$ per step. Over the `small` scale's 250 thousand steps that
compounds to a factor $e^{-0.075} \\approx 0.93$; over the thesis's 48 million steps to $e^{-14}$. At this
scale the two methods have had little time to act, so claims that they beat backprop throughout, or stop the
weights and dead units from growing, are not yet a fair test here; likewise the claims that online
normalisation and Adam fall behind backprop concern the later part of an 800-task run. CBP replaces the same
fraction of a layer's mature units per step as in the thesis ($10^{-4}$: one unit per layer every 100 steps
at width 100), so in 250 thousand steps each layer is renewed about 25 times over (in the thesis's 48 million,
about 4800 times)."""),
}

SUMMARY = """Per curve, seed means: online accuracy on the first task, at its peak (the best trailing mean over a
tenth of the run) and late (the mean over the last tenth), the drop from peak to late, and the correlates
late in the run. `pytest --nbval` re-executes this notebook and checks this table and the verdict."""

IQBAL = """## Iqbal's learners through the same lens

The engine records the same task-start correlates on Iqbal's runs ([Figure 2](fig2.ipynb): permuted
MNIST, three hidden layers of 100, batch 8, step size 0.05, PyTorch's default initialisation), so the
thesis's correlates can be read on the baseline, CBP and the persistent internal state ($n = 2$) too. Same
measures and windows as above, read from the results store ($\\tau$-dormant units are not recorded
there); the [book page](../book/dohare_correlates.md) discusses them."""


def notebook(name: str, spec: dict) -> nbf.NotebookNode:
    options = spec["options"]
    cells = [
        md(f"""# {spec['title']}

**The thesis's claim** ({{cite}}`dohare2025thesis`, ch. 4). {spec['claim']}

{SMALL}

{rerun(name, spec['cli'])}"""),
        code(parameters_cell(spec["params"], "small", DEFAULT_SEEDS[name]), metadata={"tags": ["parameters"]}),
        code(f"""import pandas as pd
from lopcore import dohare_claims, dohare_plotting, plotting
from lopcore.dohare_figures import SCALES, figure_runs, load_figure

pd.set_option("display.max_colwidth", None)  # the verdicts' evidence in full

runs = figure_runs("{name}", scale=scale, seeds=seeds, {options})  # validates every parameter
size = SCALES[scale]
{SCALE_LINE[spec['scale_line']].format()}"""),
        code(f"""# NBVAL_IGNORE_OUTPUT
# Finished runs come from the results store; only missing ones are computed (and stored).
df = load_figure("{name}", scale=scale, seeds=seeds, device=device, {options})"""),
        md(spec["caption"]),
        code(f"""# NBVAL_IGNORE_OUTPUT
fig = {spec['plot']}"""),
        md(SUMMARY),
        code("dohare_claims.summary(df)"),
        md("""## Verdict

Each claim of the thesis about this figure, as an explicit predicate over the results above (✗: our
results disagree at this scale):"""),
        code(f"""verdict = dohare_claims.figure_claims("{name}", df)
print(verdict.attrs["definition"])
held = (verdict.verdict == "✓").sum()
print(f"scale {{scale!r}}, seeds {{sorted(set(df.seed))}}: {{held}} of {{len(verdict)}} claims hold; "
      f"{{len(verdict) - held}} disagree with the thesis at this scale")
verdict.set_index("claim")"""),
    ]
    if "reading" in spec:
        cells.append(md(spec["reading"]))
    if name == "dfig_correlates":
        cells += [md(IQBAL), code("""# NBVAL_IGNORE_OUTPUT
from lopcore import figures
from lopcore.dohare_figures import network_correlates

iqbal = network_correlates(figures.load_figure("fig2", scale=scale, seeds=iqbal_seeds, device=device, n=2,
                                               combined=False, progress=False))"""),
                  code("""print(f"Iqbal's fig2 at scale {scale!r}, seeds {sorted(set(iqbal.seed))}; early / late = first / last tenth of the tasks")
dohare_claims.correlate_changes(iqbal)""")]
    return new_notebook(cells + provenance_cells())


if __name__ == "__main__":
    for name, spec in FIGURES.items():
        nbf.write(notebook(name, spec), HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")
