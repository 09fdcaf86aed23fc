"""Figure notebooks under papermill (smoke scale) and proof that nbval really checks them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIG2 = ROOT / "notebooks" / "fig2.ipynb"


def outputs(nb_path: Path) -> str:
    """All printed and displayed text of a notebook's outputs."""
    nb = json.loads(nb_path.read_text())
    return "\n".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
        for c in nb["cells"]
        for o in c.get("outputs", [])
    )


NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
PAGES = ("performance", "paper_scale")  # notebooks that show what is stored, not a figure's runs: no scale


@pytest.mark.slow
def test_fig2_runs_under_papermill_at_smoke_scale(scratch_store):
    out = scratch_store / "out.ipynb"
    papermill.execute_notebook(
        str(FIG2),
        str(out),
        parameters=dict(n=2, scale="smoke", seeds=1),
        cwd=str(ROOT),
        progress_bar=False,
        kernel_name="python3",
    )
    text = outputs(out)
    assert "scale 'smoke'" in text and "persistent n=2" in text and "baseline" in text and "CBP" in text
    assert "persistent n=1" not in text
    stored = [json.loads(f.read_text()) for f in (scratch_store / "results").rglob("*.json")]
    # baseline, CBP, n=2, n=2 + CBP in each regime: the printed one and the paper's (its closing section)
    assert sorted(r["spec"]["learner"]["lr"] for r in stored) == [0.05] * 4 + [0.125] * 4


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n != "fig2" and n not in PAGES])
def test_every_notebook_runs_under_papermill_at_smoke_scale(scratch_store, name):
    out = scratch_store / "out.ipynb"
    parameters = dict(scale="smoke", compare_scale="smoke") if name == "claims" else dict(scale="smoke", seeds=1)
    papermill.execute_notebook(
        str(ROOT / "notebooks" / f"{name}.ipynb"),
        str(out),
        parameters=parameters,
        cwd=str(ROOT),
        progress_bar=False,
        kernel_name="python3",
    )
    text = outputs(out)
    assert "scale 'smoke'" in text and ("✓" in text or "✗" in text or name == "cbp_sweep"), text[-2000:]


@pytest.mark.slow
def test_the_performance_page_shows_the_saved_benchmarks_and_verdicts(scratch_store):
    out = scratch_store / "out.ipynb"
    page = str(ROOT / "notebooks" / "performance.ipynb")
    papermill.execute_notebook(page, str(out), cwd=str(ROOT), progress_bar=False, kernel_name="python3")
    assert "No benchmark is saved in this results store" in outputs(out)
    from lopcore import bench

    bench.main(["--steps", "2", "--repeats", "2", "--runs", "1", "16", "--device", "cpu", "--no-compile", "--save"])
    papermill.execute_notebook(page, str(out), cwd=str(ROOT), progress_bar=False, kernel_name="python3")
    text = outputs(out)
    assert "persistent" in text and "≥ 10× naive at R = 16" in text and "No GPU benchmark is saved yet" in text
    assert "2 interleaved repeats" in text and "vmap" in text and "roofline" in text
    assert "compile unavailable: baseline: not run (--no-compile)" in text


@pytest.mark.slow
def test_the_paper_scale_page_runs_on_an_empty_store(scratch_store):
    out = scratch_store / "out.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "paper_scale.ipynb"),
        str(out),
        cwd=str(ROOT),
        progress_bar=False,
        kernel_name="python3",
    )
    text = outputs(out)
    from lopcore.papers.iqbal.figures import paper_progress

    lines = len(paper_progress())  # every figure line in every regime, none stored in the scratch store
    assert lines == 93 and f"all 5 seeds stored: 0 of {lines}" in text
    assert "No line of Figure 2 has all five seeds stored" in text


def test_the_toc_lists_every_notebook():
    toc = (ROOT / "_toc.yml").read_text()
    assert all(f"notebooks/{name}" in toc for name in NOTEBOOKS), NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, value, message",
    [
        ("n", 0, "n=0 is not valid"),
        ("scale", "huge", "'paper', 'small', 'smoke'"),
        ("device", "tpu", "'auto', 'cpu', 'cuda'"),
        ("seeds", "three", "seeds='three'"),
    ],
)
def test_bad_parameters_fail_at_once_naming_valid_values(scratch_store, name, value, message):
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(
            str(FIG2),
            str(scratch_store / "bad.ipynb"),
            parameters={name: value},
            cwd=str(ROOT),
            progress_bar=False,
            kernel_name="python3",
        )
    assert "ParameterError" in str(err.value) and message in str(err.value)
    assert not (scratch_store / "results").exists()  # failed before any work


@pytest.mark.slow
def test_nbval_fails_when_a_checked_number_is_edited(tmp_path):
    """Edit one digit of fig2's committed summary table: nbval must report a mismatch."""
    nb = json.loads(FIG2.read_text())
    edited = False
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "".join(cell["source"]).strip() == "study.summary(df)":
            data = cell["outputs"][0]["data"]
            text = "".join(data["text/plain"])
            digit = next(i for i in range(len(text) - 1, 0, -1) if text[i].isdigit())
            data["text/plain"] = text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1 :]
            edited = True
    assert edited, "fig2 has no committed summary output to check"
    copy = tmp_path / "notebooks" / "fig2_edited.ipynb"
    copy.parent.mkdir()
    copy.write_text(json.dumps(nb))
    env = {**os.environ, "LOPCORE_NO_COMPUTE": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(copy),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert "mismatch" in result.stdout.lower() or "differ" in result.stdout.lower(), result.stdout[-2000:]
