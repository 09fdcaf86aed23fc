"""The command line: help texts, option validation (exit 2, a message, no traceback, no work), the
errors that exit 1, and `book`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from lopcore import bench, cli
from lopcore.papers.iqbal import figures
from lopcore.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv",
    [[], ["data"], ["data", "fetch"], ["run"], ["sweep"], ["export"], ["paper"], ["figures"], ["book"]],
    ids=lambda a: " ".join(a) or "lopcore",
)
def test_help_describes_the_command_with_examples(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lopcore {' '.join(argv)}".rstrip())
    assert re.search(r"^examples?:\n  python -m lopcore ", out, re.M), out
    description = out.split("\n\n")[1]
    assert len(description) > 30 and not description.lstrip().startswith(("usage", "positional", "options"))


def test_regime_applies_to_iqbals_figures_only(scratch, capsys):
    assert cli.main(["run", "cbp_sweep", "--scale", "smoke", "--quiet", "--regime", "collapse"]) == 2
    err = capsys.readouterr().err
    assert "--regime does not apply to figure 'cbp_sweep'; it applies to fig2, fig3" in err and not scratch.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0"], "seeds=0 is not valid; it must be an integer >= 1"),
        (["--seeds", "-2"], "seeds=-2 is not valid"),
        (["--n", "0"], r"--n 0 is not valid; give an integer >= 1"),  # the option as typed
        (["--n", "1", "0"], r"--n 1 0 is not valid"),
        (["--d-int", "0"], "--d-int 0 is not valid; it must be an integer >= 1"),
        (["--max-runs-per-unit", "0"], "--max-runs-per-unit 0 is not valid; it must be an integer >= 1"),  # as sweep
        (["--cpus-per-unit", "0"], "--cpus-per-unit 0 is not valid; give a number > 0"),
        (["--device", "tpu"], "device: .*'tpu'.*valid: 'auto', 'cpu', 'cuda', 'cuda:N'"),
        (["--device", ""], "device: .*valid: 'auto', 'cpu', 'cuda'"),
    ]
    + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "CUDA is not available here")]),
)
def test_bad_run_options_exit_2_before_any_work(scratch, capsys, args, message):
    assert cli.main(["run", "fig2", "--scale", "smoke", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lopcore: error: ") and re.search(message, err), err
    assert "Traceback" not in err and not scratch.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "fig99"], "argument figure: invalid choice: 'fig99' \\(choose from .*'?fig2'?, '?fig3'?"),
        (["run", "fig2", "--scale", "huge"], "--scale: invalid choice: 'huge' \\(choose from '?paper'?, '?small'?"),
        (["run", "fig2", "--seeds", "three"], "--seeds: invalid int value: 'three'"),
        (["data", "fetch", "--route", "carrier-pigeon"], "invalid choice: 'carrier-pigeon'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (
            ["run", "fig2", "--regime", "fast"],
            "--regime: invalid choice: 'fast' \\(choose from '?printed'?, '?collapse'?",
        ),
    ],
)
def test_malformed_command_lines_exit_2_naming_the_valid_choices(scratch, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_bad_option_from_a_real_shell_has_no_traceback(scratch):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "lopcore", "run", "fig2", "--seeds", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "lopcore: error: seeds=0 is not valid; it must be an integer >= 1"


def test_an_option_the_figure_lacks_is_a_usage_error(monkeypatch):
    def figx(d_int: int = 128):
        """A figure without a truncation period."""
        return {}

    monkeypatch.setitem(figures.FIGURES, "figx", figx)
    with pytest.raises(cli.UsageError, match="--n does not apply to figure 'figx'; its options: --d-int"):
        cli.figure_options("figx", Namespace(n=[2], d_int=None))
    assert cli.figure_options("figx", Namespace(n=None, d_int=[4])) == {"d_int": 4}
    assert cli.figure_options("fig2", Namespace(n=[1, 2], d_int=None)) == {"n": [1, 2]}


def test_recurrent_figure_options_map_to_their_parameters():
    assert cli.figure_options("rfig3", Namespace(seq_len=[25])) == {"seq_len": 25}
    assert cli.figure_options("rfig3", Namespace(data=["report"])) == {"data": "report"}
    assert cli.figure_options("rfig6", Namespace(seq_len=[15], hidden=[32, 64])) == {"seq_lens": 15, "hidden": [32, 64]}
    with pytest.raises(cli.UsageError, match="--hidden does not apply to figure 'rfig5'; its options: --seq-len"):
        cli.figure_options("rfig5", Namespace(hidden=[32]))
    with pytest.raises(cli.UsageError, match="--data does not apply to figure 'rfig6'"):
        cli.figure_options("rfig6", Namespace(data=["report"]))
    with pytest.raises(cli.UsageError, match="--n does not apply to figure 'rfig1'; its options: none"):
        cli.figure_options("rfig1", Namespace(n=[2]))


def test_run_of_a_recurrent_figure_prints_delta_accuracy(scratch, capsys):
    assert (
        cli.main(["run", "rfig6", "--scale", "smoke", "--seeds", "1", "--seq-len", "15", "--hidden", "32", "--quiet"])
        == 0
    )
    out = capsys.readouterr().out
    assert "T=15, H=32" in out and "delta_accuracy_robust" in out
    assert cli.main(["run", "rfig3", "--scale", "smoke", "--seq-len", "15", "25", "--quiet"]) == 2
    assert (
        "--seq-len 15 25 is not valid; it must be an integer >= 1 (figure 'rfig3' takes one value)"
        in capsys.readouterr().err
    )


def test_missing_and_corrupt_results_exit_1_with_the_fix(scratch, monkeypatch, capsys):
    monkeypatch.setenv("LOPCORE_NO_COMPUTE", "1")
    assert cli.main(["run", "fig2", "--scale", "smoke", "--seeds", "1", "--n", "2", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "not in the results store" in err and "Traceback" not in err
    for _, spec in figures.figure_runs("fig2", "smoke", 1, n=2):
        path = Store(scratch).save(spec.to_dict(), {"task": [0]}, {})
    path.write_text(path.read_text()[:-20])  # truncated
    assert cli.main(["run", "fig2", "--scale", "smoke", "--seeds", "1", "--n", "2", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"result file {path}" in err and f"rm {path}" in err


def test_run_prints_the_summary(scratch, capsys):
    assert cli.main(["run", "fig2", "--scale", "smoke", "--seeds", "1", "--n", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "persistent n=2" in out and "diverged" not in out


# --- book ------------------------------------------------------------------------------------


def test_book_runs_the_same_build_as_make_book():
    recipe = re.search(r"^book:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    assert recipe[0] == "$(VENV)/bin/jupyter-book"
    command = cli.book_command(ROOT)
    assert Path(command[0]).name == "jupyter-book"
    assert command[1:] == [recipe[1], str(ROOT), *recipe[3:]] and recipe[2] == "."


def test_book_without_mathjax_says_to_run_make_book_once(tmp_path, monkeypatch, capsys):
    (tmp_path / "_toc.yml").write_text("root: book/intro\n")
    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(cli.subprocess, "call", lambda *a, **k: pytest.fail("built without MathJax"))
    assert cli.main(["book"]) == 1
    err = capsys.readouterr().err
    assert "book/_static/mathjax is missing" in err and "run `make book` once" in err


def test_book_builds_with_jupyter_book(tmp_path, monkeypatch):
    (tmp_path / "_toc.yml").write_text("root: book/intro\n")
    mathjax = tmp_path / "book" / "_static" / "mathjax" / "tex-chtml.js"
    mathjax.parent.mkdir(parents=True)
    mathjax.write_text("")
    calls = []
    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(cli.subprocess, "call", lambda command, cwd: calls.append((command, cwd)) or 7)
    assert cli.main(["book"]) == 7  # jupyter-book's exit status
    assert calls == [(cli.book_command(tmp_path), tmp_path)]


def test_paper_shards_deal_out_whole_lines_that_together_are_every_run(scratch, monkeypatch, capsys):
    from lopcore.papers.iqbal.figures import paper_runs

    everything = paper_runs(5, "collapse")
    asked = []
    monkeypatch.setattr("lopcore.engine.run", lambda specs, **kw: asked.append(specs))
    for k in (1, 2, 3):
        assert cli.main(["paper", "--regime", "collapse", "--shard", f"{k}/3", "--quiet", "--device", "cpu"]) == 0
    keys = [[repr(s.to_dict()) for s in specs] for specs in asked]
    assert sorted(sum(keys, [])) == sorted(repr(s.to_dict()) for s in everything)  # every run, once
    groups = [{s.group_key() for s in specs} for specs in asked]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])  # whole lines
    assert all(len(s) % 5 == 0 for s in asked) and max(map(len, groups)) - min(map(len, groups)) <= 1
    assert "shard 2/3:" in capsys.readouterr().out
    for bad in ("0/2", "3/2", "two"):
        with pytest.raises(SystemExit) as exit:
            cli.main(["paper", "--shard", bad])
        assert exit.value.code == 2 and "give K/N with 1 <= K <= N" in capsys.readouterr().err


def test_paper_computes_every_iqbal_run_once_and_shows_progress(scratch, monkeypatch, capsys):
    asked = {}
    monkeypatch.setattr("lopcore.engine.run", lambda specs, **kw: asked.update(specs=specs, **kw))
    assert cli.main(["paper", "--device", "cpu", "--concurrent", "3", "--quiet"]) == 0
    # 19 lines (fig5 repeats fig2 and fig3; fig4, fig6, fig7 share some), 5 seeds each
    assert len(asked["specs"]) == 95 == len({repr(s.to_dict()) for s in asked["specs"]})
    assert asked["concurrent"] == 3 and asked["device"] == "cpu"
    assert {s.n_tasks for s in asked["specs"]} == {600, 200} and {
        s.stream.examples_per_task for s in asked["specs"]
    } == {60000}
    out = capsys.readouterr().out
    assert "seeds_stored" in out and "0/5" in out
    asked.clear()
    assert cli.main(["paper", "--status"]) == 0 and not asked  # --status computes nothing
    assert cli.main(["paper", "--seeds", "0"]) == 2
    assert "--seeds and --concurrent must be at least 1" in capsys.readouterr().err


def test_every_command_the_docs_show_parses():
    """Every `python -m lopcore ...` in the README, the book and the pages, as written (up to a
    comment, a pipe or a `&`), is a valid command line (options and values checked by the parser)."""
    import shlex

    docs = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md")), *sorted((ROOT / "notebooks").glob("*.md"))]
    shown = [
        (doc.name, m.group(1).strip())
        for doc in docs
        for line in doc.read_text().splitlines()
        for m in re.finditer(r"python -m lopcore (?!\.)([^#`&|;]*)", line)
    ]
    assert len(shown) > 30 and any("--shard 1/2" in args for _, args in shown)
    for doc, args in shown:
        try:
            cli.parser().parse_args(shlex.split(args))
        except SystemExit:
            pytest.fail(f"{doc}: `python -m lopcore {args}` does not parse")
    benchmarks = [
        (doc.name, m.group(1).strip())
        for doc in docs
        for line in doc.read_text().splitlines()
        for m in re.finditer(r"python -m lopcore\.bench ([^#`&|;>]*)", line)
        if "<" not in m.group(1)  # a placeholder (results/bench/<key>.json) stands for a file
    ]
    assert len(benchmarks) >= 4 and any("--burst" in args for _, args in benchmarks)
    for doc, args in benchmarks:
        try:
            bench.parser().parse_args(shlex.split(args))
        except SystemExit:
            pytest.fail(f"{doc}: `python -m lopcore.bench {args}` does not parse")
