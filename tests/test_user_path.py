"""The user's own path: papermill's list parameters, an installed (non-editable) package and its default
results store, `lopcore export`, the online data route through pooch, and bad input on the command line."""

from __future__ import annotations

import functools
import gzip
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import zipfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lopcore import cli, data, export, params, store
from lopcore.papers.iqbal import figures
from lopcore.params import ParameterError

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


# --- 1. list parameters as papermill's -p writes them -----------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("[1, 2]", (1, 2)),
        ("1,2", (1, 2)),
        (" 1, 2 ", (1, 2)),
        ("2", (2,)),
        ("(4, 1)", (4, 1)),
        ("[2, 2]", (2,)),
        (2, (2,)),
        ([1, 2], (1, 2)),
    ],
)
def test_int_list_takes_papermill_text(value, expected):
    assert params.int_list("n", value, 1) == expected


def test_float_choice_and_seed_lists_take_papermill_text():
    assert params.float_list("lrs", "0.1,0.2", 1e-6, 10.0) == (0.1, 0.2)
    assert params.float_list("lrs", "[1e-4, 1]", 1e-6, 10.0) == (1e-4, 1.0)
    assert params.float_list("lrs", "0.05", 1e-6, 10.0) == (0.05,)
    choices = ("backprop", "CBP", "Shrink & Perturb")
    assert params.choice_list("methods", "['backprop', 'CBP']", choices) == ("backprop", "CBP")
    assert params.choice_list("methods", '["CBP"]', choices) == ("CBP",)
    assert params.choice_list("methods", "backprop,CBP", choices) == ("backprop", "CBP")
    assert params.choice_list("methods", "Shrink & Perturb", choices) == ("Shrink & Perturb",)
    assert params.seed_list("3") == (0, 1, 2)  # a count, as the int 3
    assert params.seed_list("[0, 4]") == params.seed_list("0,4") == (0, 4)  # explicit seeds


@pytest.mark.parametrize(
    "check",
    [
        lambda v: params.int_list("n", v, 1),
        lambda v: params.float_list("lrs", v, 1e-6, 10.0),
        lambda v: params.choice_list("methods", v, ("CBP",)),
        params.seed_list,
    ],
    ids=["int_list", "float_list", "choice_list", "seed_list"],
)
@pytest.mark.parametrize(
    "value", ["[print('evaluated')]", "__import__('os').getcwd()", "[[1]]", "{1: 2}", "[1,", "", "two", "[True]", "[0]"]
)
def test_bad_text_is_one_line_error_naming_the_parameter_and_never_evaluated(check, value, capsys):
    if check is params.seed_list and value == "[0]":
        assert check(value) == (0,)  # seed 0 is a seed
        return
    with pytest.raises(ParameterError) as err:
        check(value)
    message = str(err.value)
    assert "\n" not in message and re.match(r"^(n|lrs|methods|seeds)=", message)
    assert f"={value!r} is not valid; " in message  # names the value as given
    assert "evaluated" not in capsys.readouterr().out


def test_int_list_rejects_floats_and_bools_in_text():
    for value in ("[1.5]", "1.5", "1,2.5", "[1, True]"):
        with pytest.raises(ParameterError, match=r"^n=.* is not valid; give an integer >= 1"):
            params.int_list("n", value, 1)


def test_a_figure_takes_papermill_text_for_its_lists():
    as_text = figures.figure_runs("fig2", "smoke", "1", n="[1, 2]")
    as_lists = figures.figure_runs("fig2", "smoke", 1, n=[1, 2])
    assert [(label, spec.to_dict()) for label, spec in as_text] == [(label, spec.to_dict()) for label, spec in as_lists]
    assert {label for label, _ in figures.figure_runs("fig2", "smoke", 1, n="2")} == {
        "baseline",
        "CBP",
        "persistent n=2",
        "persistent n=2 + CBP",
    }


@pytest.fixture(scope="module")
def papermill_store(tmp_path_factory):
    return tmp_path_factory.mktemp("papermill") / "results"


@pytest.mark.slow
@pytest.mark.parametrize("n", ["2", "[1, 2]"])
def test_papermill_cli_runs_fig2_with_list_parameters(papermill_store, tmp_path, n):
    """`papermill -p n '[1, 2]'` injects the string "[1, 2]"; the page must still run and plot."""
    out = tmp_path / "fig2-out.ipynb"
    env = {k: v for k, v in os.environ.items() if k != "LOPCORE_NO_COMPUTE"}
    env.update(LOPCORE_RESULTS=str(papermill_store), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [
            str(VENV_BIN / "papermill"),
            str(ROOT / "notebooks" / "fig2.ipynb"),
            str(out),
            "-p",
            "n",
            n,
            "-p",
            "scale",
            "smoke",
            "-p",
            "seeds",
            "1",
            "--cwd",
            str(ROOT),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'scale = "smoke"' in injected[0].source
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure"
    text = "".join(json.dumps(o.get("data", {}), ensure_ascii=False) + o.get("text", "") for o in outputs)
    assert "✓" in text or "✗" in text, "no verdicts"
    assert "persistent n=2" in text and ("persistent n=1" in text) == (n == "[1, 2]")


# --- 2. an installed package: wheel contents and the default results store --------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """lopcore's wheel, built from a copy of the sources beside a results/ folder holding a run (so
    the build never writes into this checkout, and results/ visibly stays out)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copytree(ROOT / "lopcore", src / "lopcore", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (src / "results" / "backprop").mkdir(parents=True)
    (src / "results" / "backprop" / "0123456789abcdef0123.json").write_text("{}")
    out = tmp_path_factory.mktemp("wheels")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    [whl] = out.glob("lopcore-*.whl")
    return whl


def test_the_wheel_holds_the_package_and_no_results(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert not [n for n in names if n.startswith("results/") or "/results/" in n]
    assert not [n for n in names if n.endswith(".json")]
    assert {"lopcore/cli.py", "lopcore/export.py", "lopcore/store.py"} <= set(names)
    assert any(n.startswith("lopcore/vendored/tatoeba/") and n.endswith(".csv") for n in names)
    assert "lopcore = lopcore.cli:main" in entry_points
    requires = re.findall(r"^Requires-Dist: (.+)$", meta, re.M)
    runtime = {r.split(";")[0].replace(" ", "") for r in requires if "extra ==" not in r}
    for dep in ("torch>=2.1", "pandas>=2.2", "seaborn>=0.13", "pooch>=1.8"):
        assert dep in runtime, runtime
    assert all(re.search(r"[<>=]=", r) for r in runtime), f"a dependency without a minimum version: {runtime}"
    extras = set(re.findall(r"^Provides-Extra: (.+)$", meta, re.M))
    assert {"online", "ray", "test", "docs", "parquet"} <= extras
    assert any(r.startswith("jupyter-book") and "<2" in r and 'extra == "docs"' in r for r in requires)


@pytest.fixture
def no_store_env(monkeypatch, tmp_path):
    for var in ("LOPCORE_RESULTS", "LOPCORE_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def fake_package(folder: Path, pyproject: str | None, results: bool) -> Path:
    """`folder`/lopcore/store.py (for store.__file__), with a pyproject.toml and results/ beside it if asked."""
    (folder / "lopcore").mkdir(parents=True)
    (folder / "lopcore" / "store.py").write_text("")
    if pyproject is not None:
        (folder / "pyproject.toml").write_text(pyproject)
    if results:
        (folder / "results").mkdir()
    return folder / "lopcore" / "store.py"


def test_default_root_is_lopcore_results_first(no_store_env, monkeypatch):
    monkeypatch.setenv("LOPCORE_RESULTS", str(no_store_env / "mine"))
    assert store.default_root() == no_store_env / "mine"
    assert store.Store().root == no_store_env / "mine"


def test_default_root_is_the_checkouts_results_from_a_checkout(no_store_env, monkeypatch):
    assert store.default_root() == ROOT / "results"  # this checkout (an editable install)
    checkout = no_store_env / "clone"
    monkeypatch.setattr(store, "__file__", str(fake_package(checkout, '[project]\nname = "lopcore"\n', True)))
    assert store.default_root() == checkout / "results"


@pytest.mark.parametrize(
    "pyproject, results",
    [(None, False), ('[project]\nname = "other"\n', True), ('[project]\nname = "lopcore"\n', False)],
    ids=["site-packages", "another project", "checkout without results"],
)
def test_default_root_is_the_user_cache_otherwise(no_store_env, monkeypatch, pyproject, results):
    monkeypatch.setattr(store, "__file__", str(fake_package(no_store_env / "site-packages", pyproject, results)))
    assert store.default_root() == no_store_env / "home" / ".cache" / "lopcore" / "results"
    monkeypatch.setenv("XDG_CACHE_HOME", str(no_store_env / "xdg"))
    assert store.default_root() == no_store_env / "xdg" / "lopcore" / "results"


@pytest.mark.slow
def test_pip_install_then_lopcore_run_from_another_folder(wheel, tmp_path):
    """A non-editable install in a scratch venv (dependencies seen through this venv's site-packages):
    `lopcore run` works from any folder and stores its runs in the per-user cache, not site-packages."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    # then the dependencies, as a plain path entry to this venv's site-packages (added after the install,
    # so pip never sees this venv's editable lopcore; its .pth files are not processed from there)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LOPCORE_RESULTS", "LOPCORE_CACHE", "LOPCORE_NO_COMPUTE", "PYTHONPATH")
    }
    env.update(
        XDG_CACHE_HOME=str(tmp_path / "xdg"), OMP_NUM_THREADS="1", LOPCORE_DATA=str(data.locate("mnist").parent)
    )  # no download in a test
    where = subprocess.run(
        [str(python), "-c", "import lopcore, lopcore.store as s; print(lopcore.__file__); print(s.default_root())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(site) and Path(where[1]) == tmp_path / "xdg" / "lopcore" / "results"
    result = subprocess.run(
        [str(venv / "bin" / "lopcore"), "run", "fig2", "--scale", "smoke", "--seeds", "1", "--n", "2", "--quiet"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "persistent n=2" in result.stdout
    stored = [
        p for p in (tmp_path / "xdg" / "lopcore" / "results").glob("*/*.json") if not p.parent.name.startswith(".")
    ]
    assert len(stored) == 4
    assert not (site / "results").exists() and not list((site / "lopcore").rglob("*.json"))  # nothing stored there
    missing = subprocess.run(
        [str(venv / "bin" / "lopcore"), "run", "fig4", "--scale", "smoke", "--seeds", "1", "--quiet"],
        cwd=elsewhere,
        env={**env, "LOPCORE_NO_COMPUTE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 1 and str(tmp_path / "xdg" / "lopcore" / "results") in missing.stderr


# --- 3. export ----------------------------------------------------------------------------------

EXPORT = ["export", "fig2", "--scale", "smoke", "--seeds", "1", "--n", "2", "--quiet"]


def test_export_writes_the_tidy_frame_as_csv(scratch, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(EXPORT) == 0
    path = tmp_path / "fig2-smoke.csv"  # the default: FIGURE-SCALE.csv here
    assert f"to {Path('fig2-smoke.csv')}" in capsys.readouterr().out
    df = pd.read_csv(path)
    n_tasks = figures.SCALES["smoke"].n_tasks
    assert len(df) == 4 * n_tasks and df["run"].nunique() == 4  # one row per run x task
    assert list(df.columns[:5]) == ["figure", "scale", "label", "seed", "task"]
    assert set(df["label"]) == {"baseline", "CBP", "persistent n=2", "persistent n=2 + CBP"}
    assert (df["figure"] == "fig2").all() and (df["scale"] == "smoke").all()
    for column in (
        "online_accuracy",
        "weight_norm",
        "kind",
        "lr",
        "d_int",
        "n",
        "replacement_rate",  # learner
        "batch_size",
        "examples_per_task",  # stream
        "git_commit",
        "date",
        "device_name",
        "wall_time_s",
        "lopcore",
        "torch",
        "python",
        "device",
    ):
        assert column in df, column
    assert df.groupby("run")["task"].apply(list).map(lambda t: t == list(range(n_tasks))).all()
    # the same frame `lopcore run` summarises
    direct = figures.load_figure("fig2", "smoke", 1, n=2, progress=False)
    assert sorted(df["run"].unique()) == sorted(direct["run"].unique())
    assert df.sort_values(["run", "task"])["online_accuracy"].tolist() == pytest.approx(
        direct.sort_values(["run", "task"])["online_accuracy"].tolist()
    )


def test_export_parquet_by_flag_or_suffix(scratch, tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    monkeypatch.chdir(tmp_path)
    assert cli.main([*EXPORT, "-o", "out/fig2.parquet"]) == 0
    assert cli.main([*EXPORT, "--format", "parquet"]) == 0
    assert cli.main([*EXPORT, "--format", "csv", "-o", "fig2.csv"]) == 0
    a, b = pd.read_parquet(tmp_path / "out" / "fig2.parquet"), pd.read_parquet(tmp_path / "fig2-smoke.parquet")
    csv = pd.read_csv(tmp_path / "fig2.csv")
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == list(csv.columns) and len(a) == len(csv)
    assert a["online_accuracy"].tolist() == pytest.approx(csv["online_accuracy"].tolist())


def test_export_parquet_without_pyarrow_exits_2_before_any_work(scratch, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    for argv in ([*EXPORT, "--format", "parquet"], [*EXPORT, "-o", "x.parquet"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("lopcore: error: ")
        assert "pip install pyarrow" in err and "--format csv" in err
    assert not scratch.exists() and not list(tmp_path.glob("*.parquet"))


def test_export_of_missing_runs_names_the_store(scratch, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOPCORE_NO_COMPUTE", "1")
    assert cli.main(EXPORT) == 1
    err = capsys.readouterr().err
    assert "not in the results store" in err and str(scratch) in err
    assert not list(tmp_path.glob("*.csv"))


def test_export_knows_every_figure_run_knows():
    def choices(command):
        return next(a for a in command._actions if a.dest == "figure").choices

    sub = next(a for a in cli.parser()._actions if a.dest == "command").choices
    assert choices(sub["export"]) == choices(sub["run"]) == sorted(cli.all_figures())
    assert export.default_path("rfig6", "small") == Path("rfig6-small.csv")
    assert export.choose_format(None, None) == export.choose_format(None, "x.txt") == "csv"
    assert export.choose_format("csv", "x.parquet") == "csv"  # --format wins over the suffix
    if importlib.util.find_spec("pyarrow") is not None:
        assert export.choose_format(None, "a/b.PARQUET") == export.choose_format(None, "b.pq") == "parquet"


def test_the_book_documents_export():
    text = (ROOT / "book" / "reproducing.md").read_text()
    assert "python -m lopcore export" in text and "pd.read_csv(" in text


# --- 4. the online data route, through pooch ------------------------------------------------------


def fake_retrieve(source: Path, calls: list, fail: dict | None = None):
    """pooch.retrieve's stand-in: records each call and copies the file from `source` (a real folder
    of gzipped IDX files); `fail` maps a URL to the exceptions its first calls raise."""

    def retrieve(url, known_hash=None, fname=None, path=None, processor=None, downloader=None, progressbar=False):
        calls.append(dict(url=url, known_hash=known_hash, fname=fname, path=Path(path), downloader=downloader))
        if fail and fail.get(url):
            raise fail[url].pop(0)
        dest = Path(path) / fname
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / url.rsplit("/", 1)[1], dest)
        return str(dest)

    return retrieve


def test_online_route_calls_pooch_with_https_urls_and_md5s(isolated, mnist_source, monkeypatch):
    import pooch

    calls = []
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve(mnist_source, calls))
    folder = data.fetch("mnist", route="online")
    assert folder == isolated / "LOPCORE_CACHE" / "data" / "MNIST"
    assert [c["url"] for c in calls] == [f"https://ossci-datasets.s3.amazonaws.com/mnist/{b}.gz" for b in data.FILES]
    assert [c["known_hash"] for c in calls] == [f"md5:{data.GZ_MD5['mnist'][b]}" for b in data.FILES]
    assert calls[0]["known_hash"] == "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"  # torchvision's, of the .gz
    assert all(c["path"] == isolated / "LOPCORE_CACHE" / "downloads" for c in calls)
    assert all(isinstance(c["downloader"], pooch.HTTPDownloader) and c["downloader"].progressbar for c in calls)
    ds = data.load("mnist")
    assert int(ds.train_y[0]) == 5 and int(ds.train_x[0].sum()) == 27525


def test_every_mirror_is_https_where_it_offers_it():
    for name in data.DATASETS:
        assert data.mirrors(name)[0].startswith("https://"), name
        assert all(m.startswith("https://") or "s3-website" in m for m in data.mirrors(name))  # S3 websites: http only
    assert set(data.GZ_MD5) == set(data.DATASETS) and all(len(set(h.values())) == 4 for h in data.GZ_MD5.values())


def test_online_route_retries_network_errors(isolated, mnist_source, monkeypatch):
    import pooch
    import requests

    first = f"{data.mirrors('mnist')[0]}{data.FILES[0]}.gz"
    calls = []
    fail = {first: [requests.ConnectionError("reset"), requests.Timeout("slow")]}
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve(mnist_source, calls, fail))
    data.fetch("mnist", route="online")
    assert [c["url"] for c in calls[:3]] == [first] * 3 and len(calls) == 6  # two retries, then the rest


def test_online_route_unreachable_after_retries(isolated, mnist_source, monkeypatch):
    import pooch
    import requests

    first = f"{data.mirrors('mnist')[0]}{data.FILES[0]}.gz"
    calls = []
    fail = {first: [requests.ConnectionError("no route") for _ in range(data.RETRIES + 1)]}
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve(mnist_source, calls, fail))
    with pytest.raises(data.DataUnreachable, match=r"cannot download .*no route.*--route registry"):
        data.fetch("mnist", route="online")
    assert len(calls) == data.RETRIES + 1
    assert list((isolated / "LOPCORE_CACHE" / "data").iterdir()) == []


def test_a_bad_hash_is_an_error_on_every_mirror(isolated, mnist_source, monkeypatch):
    import pooch

    calls = []

    def bad(url, known_hash=None, **kw):
        calls.append(url)
        raise ValueError(
            f"MD5 hash of downloaded file (x.gz) does not match the known hash: expected {known_hash}, got 0123."
        )

    monkeypatch.setattr(pooch, "retrieve", bad)
    with pytest.raises(data.DataError) as err:
        data.fetch("fashion_mnist", route="online")
    assert not isinstance(err.value, data.DataUnreachable)  # a wrong file is not a network problem
    assert len(calls) == len(data.mirrors("fashion_mnist")) == 2  # each mirror once: no retries of a bad file
    message = str(err.value)
    assert "is not the original file" in message and data.GZ_MD5["fashion_mnist"][data.FILES[0]] in message
    assert all(m in message for m in data.mirrors("fashion_mnist"))
    assert list((isolated / "LOPCORE_CACHE" / "data").iterdir()) == []


def test_real_pooch_rejects_a_file_with_the_wrong_md5(isolated, monkeypatch):
    """pooch itself (no mock), against a local HTTP server serving a file that is not MNIST."""
    served = isolated / "served"
    served.mkdir()
    for base in data.FILES:
        (served / f"{base}.gz").write_bytes(gzip.compress(b"not mnist"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setitem(data.URLS, "mnist", f"http://127.0.0.1:{server.server_address[1]}/")
        with pytest.raises(data.DataError, match="is not the original file: its md5 is not f68b3c2d"):
            data.fetch("mnist", route="online")
    finally:
        server.shutdown()
    assert not list((isolated / "LOPCORE_CACHE" / "downloads").glob("*.gz"))  # pooch deleted the bad file
    assert list((isolated / "LOPCORE_CACHE" / "data").iterdir()) == []


def test_pooch_is_pinned_like_every_requirement():
    reqs = (ROOT / "requirements.txt").read_text()
    pin = re.search(r"^pooch==(\S+)", reqs, re.M)
    assert pin and "jupytext==1.19.6" in reqs
    assert f"- pooch=={pin.group(1)}" in (ROOT / "environment.yml").read_text()
    assert re.search(r'"pooch>=[\d.]+"', (ROOT / "pyproject.toml").read_text())


# --- 5. bad input ----------------------------------------------------------------------------------


def test_lopcore_data_naming_no_folder_is_an_error(isolated, mnist_source, monkeypatch, capsys):
    copy = isolated / "LOPCORE_CACHE" / "data" / "MNIST"  # a good copy further down the lookup order
    copy.mkdir(parents=True)
    for f in mnist_source.iterdir():
        shutil.copyfile(f, copy / f.name)
    assert data.locate("mnist") == copy
    for missing in (isolated / "no-such-folder", isolated / "a-file"):
        if missing.name == "a-file":
            missing.write_text("")
        monkeypatch.setenv("LOPCORE_DATA", str(missing))
        data.load.cache_clear()
        monkeypatch.setattr(data, "fetch", lambda *a, **k: pytest.fail("fetched instead of reporting LOPCORE_DATA"))
        for call in (data.locate, data.load, data.search_paths):
            with pytest.raises(data.DataPathError, match=f"LOPCORE_DATA='{re.escape(str(missing))}' is not a folder"):
                call("mnist")
        assert cli.main(["data", "fetch", "--dataset", "mnist"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("lopcore: error: LOPCORE_DATA=") and err.count("\n") == 1
    monkeypatch.setenv("LOPCORE_DATA", str(isolated / "LOPCORE_DATA"))  # an existing folder without MNIST/: next
    assert data.locate("mnist") == copy


SPEC = {"learner": "backprop", "scale": "smoke", "seeds": 1}
RUN = ["run", "fig2", "--scale", "smoke", "--quiet"]
SWEEP = ["sweep", "SPEC", "--quiet"]
BAD_NUMBERS = [  # (argv, what the message must say): every numeric option, with a value of its type that is bad
    ([*RUN, "--seeds", "0"], "seeds=0 is not valid"),
    ([*RUN, "--n", "0"], "--n 0 is not valid; give an integer >= 1"),
    ([*RUN, "--n", "1", "-2"], "--n 1 -2 is not valid"),
    ([*RUN, "--d-int", "0"], "--d-int 0 is not valid; it must be an integer >= 1"),
    ([*RUN, "--max-runs-per-unit", "0"], "--max-runs-per-unit 0 is not valid; it must be an integer >= 1"),
    ([*RUN, "--max-retries", "-1"], "--max-retries -1 is not valid; it must be an integer >= 0"),
    ([*RUN, "--cpus-per-unit", "0"], "--cpus-per-unit 0 is not valid; give a number > 0"),
    ([*RUN, "--cpus-per-unit", "nan"], "--cpus-per-unit nan is not valid"),
    ([*RUN, "--gpus-per-unit", "-1"], "--gpus-per-unit -1 is not valid; give a number >= 0"),
    (["run", "fig3", "--scale", "smoke", "--d-int", "128", "0"], "--d-int 128 0 is not valid"),
    (["run", "rfig3", "--scale", "smoke", "--seq-len", "0"], "--seq-len 0 is not valid"),
    (["run", "rfig3", "--scale", "smoke", "--seq-len", "15", "25"], "--seq-len 15 25 is not valid; .*takes one value"),
    (["run", "rfig6", "--scale", "smoke", "--seq-len", "0"], "--seq-len 0 is not valid"),
    (["run", "rfig6", "--scale", "smoke", "--hidden", "32", "0"], "--hidden 32 0 is not valid"),
    (["run", "dfig_width", "--scale", "smoke", "--hidden", "0"], "--hidden 0 is not valid; give an integer >= 1"),
    (["run", "dfig_stepsize", "--scale", "smoke", "--step-sizes", "0"], "--step-sizes 0.0 is not valid"),
    (["run", "dfig_correlates", "--scale", "smoke", "--step-sizes", "1.5"], "--step-sizes 1.5 is not valid"),
    (["run", "dfig_changerate", "--scale", "smoke", "--change-every", "0"], "--change-every 0 is not valid"),
    (
        ["run", "dfig_changerate", "--scale", "smoke", "--change-every", "10000000"],
        "--change-every 10000000 is not valid",
    ),
    (["run", "boundary", "--scale", "smoke", "--lrs", "0"], "--lrs 0.0 is not valid"),
    (["run", "sensitivity", "--scale", "smoke", "--lrs", "0.1", "-1"], "--lrs 0.1 -1.0 is not valid"),
    ([*SWEEP, "--max-runs-per-unit", "0"], "--max-runs-per-unit 0 is not valid"),
    ([*SWEEP, "--max-retries", "-3"], "--max-retries -3 is not valid"),
    ([*SWEEP, "--cpus-per-unit", "0"], "--cpus-per-unit 0 is not valid"),
    ([*SWEEP, "--gpus-per-unit", "-0.5"], "--gpus-per-unit -0.5 is not valid"),
    (["paper", "--seeds", "0"], "--seeds and --concurrent must be at least 1"),
    (["paper", "--concurrent", "0", "--status"], "--seeds and --concurrent must be at least 1"),
    (["export", "fig2", "--scale", "smoke", "--seeds", "0"], "seeds=0 is not valid"),
    (["export", "fig2", "--scale", "smoke", "--d-int", "0"], "--d-int 0 is not valid"),
    (["export", "dfig_width", "--scale", "smoke", "--hidden", "0"], "--hidden 0 is not valid"),
    (["export", "fig2", "--scale", "smoke", "--n", "0"], "--n 0 is not valid"),
    (["export", "rfig6", "--scale", "smoke", "--seq-len", "0"], "--seq-len 0 is not valid"),
    (["export", "dfig_stepsize", "--scale", "smoke", "--step-sizes", "-1"], "--step-sizes -1.0 is not valid"),
    (["export", "dfig_changerate", "--scale", "smoke", "--change-every", "0"], "--change-every 0 is not valid"),
    (["export", "boundary", "--scale", "smoke", "--lrs", "100"], "--lrs 100.0 is not valid"),
]


@pytest.mark.parametrize("argv, message", BAD_NUMBERS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_bad_number_exits_2_with_one_line_before_any_work(scratch, tmp_path, monkeypatch, capsys, argv, message):
    spec = tmp_path / "sweep.json"
    spec.write_text(json.dumps(SPEC))
    monkeypatch.chdir(tmp_path)
    assert cli.main([str(spec) if a == "SPEC" else a for a in argv]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("lopcore: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert "Traceback" not in err and not scratch.exists() and not list(tmp_path.glob("*.csv"))


def test_every_numeric_option_is_walked():
    """BAD_NUMBERS covers every int / float option of run, sweep, paper and export."""
    walked = {(argv[0], a) for argv, _ in BAD_NUMBERS for a in argv if a.startswith("--")}
    sub = next(a for a in cli.parser()._actions if a.dest == "command").choices
    for command in ("run", "sweep", "paper", "export"):
        numeric = {
            o for a in sub[command]._actions if a.type in (int, float) for o in a.option_strings if o.startswith("--")
        }
        assert numeric and numeric <= {a for c, a in walked if c == command}, (command, numeric)


def test_figure_option_errors_name_the_flag_not_the_parameter(scratch, capsys):
    assert cli.main(["run", "dfig_width", "--scale", "smoke", "--hidden", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--hidden 0" in err and "widths" not in err
    assert cli.main(["run", "rfig6", "--scale", "smoke", "--seq-len", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--seq-len 0" in err and "seq_lens" not in err
