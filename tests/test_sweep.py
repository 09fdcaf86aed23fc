"""Sweeps: grid planning and validation, units of work, the local and Ray backends (at smoke scale).

The Ray tests start a private 2-CPU Ray runtime once for the module (CPU only) and check that it
fills a results store exactly as the local backend does, and that a failing unit is retried and
then reported, never dropped.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lopcore import cli, sweep
from lopcore.backends import SweepError, ray_resources, threads_for
from lopcore.papers.iqbal.figures import LR, SCALES, figure_runs
from lopcore.params import ParameterError
from lopcore.store import Store
from lopcore.units import Unit, execute, group_runs, pack

SMOKE = {"learner": "persistent", "dataset": "mnist", "scale": "smoke", "seeds": 2}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("LOPCORE_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("LOPCORE_NO_COMPUTE", raising=False)
    return Store(tmp_path / "results")


# --- planning ------------------------------------------------------------------------------


def test_every_list_valued_option_is_a_grid_axis():
    runs = sweep.plan({**SMOKE, "seeds": 5, "n": [1, 2, 4], "d_int": [128, 256], "lr": 0.05})
    assert len(runs) == 3 * 2 * 5
    assert {(r.learner.n, r.learner.d_int) for r in runs} == {(n, d) for n in (1, 2, 4) for d in (128, 256)}
    assert {r.learner.lr for r in runs} == {0.05} and [r.seed for r in runs[:5]] == [0, 1, 2, 3, 4]
    scale = SCALES["smoke"]
    assert all(r.n_tasks == scale.n_tasks and r.stream.examples_per_task == scale.examples_per_task for r in runs)


def test_a_sweep_run_is_the_same_run_as_the_figures():
    """Same spec, same store key: a sweep reuses a figure's stored runs and vice versa."""
    [(_, from_figure)] = [(label, spec) for label, spec in figure_runs("fig4", "smoke", 1, n=2)]
    [from_sweep] = sweep.plan(
        {
            "learner": "persistent",
            "dataset": "fashion_mnist",
            "scale": "smoke",
            "seeds": 1,
            "n": 2,
            "d_int": 256,
            "lr": LR,
        }
    )
    assert from_sweep.to_dict() == from_figure.to_dict()


def test_tuple_options_take_a_list_and_are_an_axis_as_a_list_of_lists():
    assert {r.learner.hidden for r in sweep.plan({**SMOKE, "hidden": [50, 50]})} == {(50, 50)}
    assert {r.learner.hidden for r in sweep.plan({**SMOKE, "hidden": [[50], [20, 20]]})} == {(50,), (20, 20)}


def test_labels_name_the_options_that_vary():
    labels = [
        label for label, _ in sweep.labeled_plan({**SMOKE, "seeds": 1, "n": [1, 2], "lr": [0.05, 0.1], "d_int": 8})
    ]
    assert labels == ["n=1, lr=0.05", "n=1, lr=0.1", "n=2, lr=0.05", "n=2, lr=0.1"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"learner": "transformer"}, "learner='transformer' is not valid; choose one of: 'backprop', 'persistent'"),
        ({"dataset": "mnist"}, "needs 'learner'; choose one of 'backprop'"),
        ({**SMOKE, "nn": [1, 2]}, "unknown option 'nn' for learner 'persistent'; its options: lr, hidden, d_int, n"),
        (
            {**SMOKE, "learner": "backprop", "n": 2},
            "unknown option 'n' for learner 'backprop'; its options: lr, hidden",
        ),
        ({**SMOKE, "scale": "huge"}, "scale='huge' is not valid; choose one of: 'paper', 'small', 'smoke'"),
        ({**SMOKE, "dataset": "cifar"}, "dataset='cifar' is not valid; choose one of 'mnist', 'fashion_mnist'"),
        ({**SMOKE, "seeds": 0}, "seeds=0 is not valid"),
        ({**SMOKE, "n": [1, 0]}, r"learner 'persistent' with \{'n': 0\}: n \(truncation period\) must be"),
        ({**SMOKE, "state": ["learned", "bogus"]}, "state must be one of"),
        ({**SMOKE, "lr": "fast"}, "lr='fast' is not valid for learner 'persistent'; give a number"),
        ({**SMOKE, "d_int": []}, r"d_int=\[\] is not valid; a grid axis needs at least one value"),
        ({**SMOKE, "task_fraction": 2}, r"task_fraction=2 is not valid; give a number in \(0, 1\]"),
        ([1, 2], "a sweep spec is a dict"),
    ],
)
def test_bad_specs_are_errors_naming_the_key_and_the_valid_choices(spec, message):
    with pytest.raises(ParameterError, match=message):
        sweep.plan(spec)


def test_units_are_run_groups_split_by_seed():
    runs = sweep.plan({**SMOKE, "seeds": 5, "n": [1, 2]})
    assert [len(g) for g in group_runs(runs + runs[:3])] == [5, 5]  # duplicates dropped
    units = pack(runs, max_runs_per_unit=2)
    assert [[r.seed for r in u.runs] for u in units] == [[0, 1], [2, 3], [4]] * 2
    assert all(len({r.group_key() for r in u.runs}) == 1 for u in units)
    assert sorted(k for u in units for k in u.keys()) == sorted(Unit(tuple(runs)).keys())
    assert len(pack(runs, max_runs_per_unit=8)) == 2
    with pytest.raises(ParameterError, match="max_runs_per_unit=0 is not valid"):
        pack(runs, max_runs_per_unit=0)


def test_stored_runs_form_no_unit(store):
    runs = sweep.plan({**SMOKE, "seeds": 2, "n": [1, 2], "d_int": 8})
    sweep.compute(runs[:2], store=store, progress=False)  # the n=1 group
    assert [[r.learner.n for r in u.runs] for u in pack(runs, 8, store)] == [[2, 2]]
    assert sweep.compute(runs[:2], store=store, progress=False) == []


def test_ray_device_and_gpu_options():
    assert ray_resources("auto", 0, None) == ("cpu", 0.0)
    assert ray_resources("auto", 4, None) == ("cuda", 1.0)
    assert ray_resources("cuda", 0, 0.25) == ("cuda", 0.25)
    with pytest.raises(ParameterError, match="device='cuda:1' is not valid; choose one of: 'auto', 'cpu', 'cuda'"):
        ray_resources("cuda:1", 1, None)
    with pytest.raises(ParameterError, match="needs gpus_per_unit > 0"):
        ray_resources("cuda", 1, 0)
    assert threads_for(2.5) == 2 and threads_for(0.5) == 1
    with pytest.raises(ParameterError, match="cpus_per_unit=0 is not valid"):
        threads_for(0)


# --- local backend -------------------------------------------------------------------------


def flaky(fail_seed: int, attempts_dir):
    """An executor that fails every attempt at the unit holding `fail_seed`, leaving a file per attempt."""

    def execute_or_fail(unit, device, **options):
        if any(r.seed == fail_seed for r in unit.runs):
            n = len(list(attempts_dir.glob("attempt-*")))
            (attempts_dir / f"attempt-{n}").touch()
            raise RuntimeError(f"injected failure at seed {fail_seed}")
        return execute(unit, device, **options)

    return execute_or_fail


def test_local_sweep_returns_tidy_results_and_reports_failed_units(store, tmp_path):
    df = sweep.run_sweep({**SMOKE, "n": [1, 2], "d_int": 8}, store=store, progress=False)
    assert len(df) == 4 * SCALES["smoke"].n_tasks and set(df["label"]) == {"n=1", "n=2"}
    assert set(df["scale"]) == {"smoke"} and df["online_accuracy"].between(0, 1).all()
    assert store.load(sweep.plan(SMOKE | {"n": 1, "d_int": 8})[0].to_dict())["provenance"]["threads"] == 1
    spec = {**SMOKE, "seeds": [7, 8], "n": 1, "d_int": 8}
    with pytest.raises(
        SweepError,
        match=r"(?s)1 unit\(s\) failed after 2 attempt.*seeds=\[8\].*"
        r"RuntimeError: injected failure at seed 8",
    ):
        sweep.run_sweep(
            spec, store=store, progress=False, max_runs_per_unit=1, max_retries=1, execute_unit=flaky(8, tmp_path)
        )
    assert len(list(tmp_path.glob("attempt-*"))) == 2
    assert [r.seed for r in sweep.plan(spec) if r.to_dict() in store] == [7]  # the other unit is kept


def test_cli_sweep_prints_the_summary_and_exits_2_on_a_bad_spec(store, tmp_path, capsys):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({**SMOKE, "seeds": 1, "d_int": [8, 16]}))
    assert cli.main(["sweep", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "d_int=8" in out and "d_int=16" in out and "online acc" in out
    path.write_text(json.dumps({**SMOKE, "dint": 8}))
    assert cli.main(["sweep", str(path), "--quiet"]) == 2
    assert "unknown option 'dint'" in capsys.readouterr().err
    assert cli.main(["sweep", str(tmp_path / "missing.json"), "--quiet"]) == 2
    assert cli.main(["sweep", str(path), "--address", "auto"]) == 2


# --- Ray backend ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray", reason="the Ray backend's tests need `ray` (pip install ray==2.60.0)")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def stored_metrics(store: Store, runs) -> dict[str, dict[str, bytes]]:
    """Per run key, every metric column as the bytes of a numpy array (NaN-safe exact comparison)."""
    out = {}
    for run in runs:
        record = store.load(run.to_dict())
        out[record["key"]] = {c: np.asarray(v).tobytes() for c, v in record["metrics"].items()}
    return out


def test_ray_fills_the_store_exactly_as_the_local_backend(ray_runtime, tmp_path):
    spec = {**SMOKE, "n": [1, 2], "d_int": [8, 16]}  # 4 groups x 2 seeds
    runs = sweep.plan(spec)
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    units = sweep.compute(runs, "local", local, device="cpu", max_runs_per_unit=1, progress=False)
    assert len(units) == 8
    assert len(sweep.compute(runs, "ray", remote, device="cpu", max_runs_per_unit=1, progress=False)) == 8
    files = lambda s: sorted(p.relative_to(s.root) for p in s.root.rglob("*.json"))  # noqa: E731
    assert files(remote) == files(local) and len(files(local)) == 8
    assert stored_metrics(remote, runs) == stored_metrics(local, runs)
    assert sweep.compute(runs, "ray", remote, progress=False) == []  # nothing left to submit


def test_ray_retries_a_failing_unit_then_reports_it(ray_runtime, tmp_path):
    spec = {**SMOKE, "seeds": [3, 4, 5], "n": 1, "d_int": 8}
    store = Store(tmp_path / "ray")
    with pytest.raises(SweepError) as failed:
        sweep.compute(
            sweep.plan(spec),
            "ray",
            store,
            device="cpu",
            max_runs_per_unit=1,
            max_retries=2,
            progress=False,
            execute_unit=flaky(4, tmp_path),
        )
    assert len(list(tmp_path.glob("attempt-*"))) == 3  # the first attempt and two retries
    [failure] = failed.value.failures
    assert [r.seed for r in failure.unit.runs] == [4] and "injected failure at seed 4" in failure.error
    assert failure.unit.keys()[0] in str(failed.value)
    assert sorted(r.seed for r in sweep.plan(spec) if r.to_dict() in store) == [3, 5]


def test_a_figure_runs_on_ray_from_the_command_line(ray_runtime, store, capsys):
    args = ["run", "fig7", "--scale", "smoke", "--seeds", "1", "--quiet", "--device", "cpu"]
    assert cli.main([*args, "--backend", "ray", "--max-runs-per-unit", "1"]) == 0
    runs = [spec for _, spec in figure_runs("fig7", "smoke", 1)]
    assert all(r.to_dict() in store for r in runs)
    assert "persistent n=2" in capsys.readouterr().out


def _lopcore_file() -> str:
    import lopcore

    return lopcore.__file__


def test_a_two_node_cluster_runs_a_sweep_through_address_with_the_drivers_code(tmp_path, monkeypatch):
    """A cluster of two nodes on this machine (ray.cluster_utils.Cluster), reached with --address as a
    user reaches theirs: the workers import the lopcore the driver ships them (not the checkout), record
    the driver's commit, and store exactly what the local backend stores."""
    ray = pytest.importorskip("ray", reason="the Ray backend's tests need `ray` (pip install ray==2.60.0)")
    from ray.cluster_utils import Cluster

    from lopcore import data
    from lopcore.backends import code_env
    from lopcore.store import REPO_ROOT, git_commit

    if ray.is_initialized():
        ray.shutdown()  # the module's private runtime: this test connects to a cluster of its own
    monkeypatch.setenv("LOPCORE_DATA", str(data.locate("mnist").parent))  # the nodes inherit it
    monkeypatch.chdir(tmp_path)  # nodes start outside the checkout, as on another machine
    monkeypatch.setenv("LOPCORE_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("LOPCORE_NO_COMPUTE", raising=False)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        spec = {**SMOKE, "n": 1, "d_int": 8}  # one group of two seeds: two units, one per node
        path = tmp_path / "sweep.json"
        path.write_text(json.dumps(spec))
        args = ["sweep", str(path), "--backend", "ray", "--address", cluster.address, "--max-runs-per-unit", "1"]
        assert cli.main([*args, "--device", "cpu", "--quiet"]) == 0
        runs = sweep.plan(spec)
        local = Store(tmp_path / "local")
        sweep.compute(runs, "local", local, device="cpu", max_runs_per_unit=1, progress=False)
        remote = Store(tmp_path / "results")
        assert stored_metrics(remote, runs) == stored_metrics(local, runs)
        assert {remote.load(r.to_dict())["provenance"]["git_commit"] for r in runs} == {git_commit()}
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, runtime_env=code_env())
        import sys

        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
        shipped = ray.get(ray.remote(_lopcore_file).remote())
        assert not shipped.startswith(str(REPO_ROOT)), shipped
    finally:
        ray.shutdown()
        cluster.shutdown()
