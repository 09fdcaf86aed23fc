"""The steadiness check (`python -m lopcore.bench --steadiness`): its statistics on made-up calls, a
short real check end to end (table, verdict, JSON, saved record), and its bad inputs."""

import json
import math

import pandas as pd
import pytest

from lopcore import bench, steadiness
from lopcore.store import CorruptResultError, Store


def calls(times_by_second: dict[tuple[int, int], list[float]], per_second: int = 4) -> pd.DataFrame:
    """Made-up calls: per configuration, `per_second` calls a second at each second's time."""
    rows = [
        {"elapsed_s": s + k / per_second, "threads": t, "runs": r, "us_per_run_step": us}
        for (t, r), seconds in times_by_second.items()
        for s, us in enumerate(seconds)
        for k in range(per_second)
    ]
    return pd.DataFrame(rows)


def test_window_medians_and_the_verdict_follow_the_machines_speed_per_configuration():
    made = calls({(1, 1): [100] * 4 + [104] * 4, (2, 1): [100] * 4 + [150] * 4})  # a slow stretch on 2 threads
    windows = steadiness.window_medians(made, window_s=4)
    assert windows.start_s.tolist() == [0, 4, 0, 4]
    assert windows.us_per_run_step.tolist() == [100, 104, 100, 150]
    table = steadiness.summary(made, tolerance=0.15, window_s=4).set_index("threads")
    assert table.loc[1, "window_range"] == pytest.approx(4 / 102, abs=1e-3) and table.loc[1, "steady"]
    assert table.loc[2, "window_range"] == pytest.approx(50 / 125, abs=1e-3) and not table.loc[2, "steady"]
    assert table.loc[2, "calls"] == 32 and table.loc[2, "windows"] == 2


def test_a_window_cut_short_by_the_end_has_no_median_and_one_window_has_no_range():
    made = calls({(1, 16): [50, 50, 50, 90]}, per_second=1)  # 3 calls in [0, 3), 1 in [3, 6)
    assert steadiness.window_medians(made, window_s=3).us_per_run_step.tolist() == [50]
    (row,) = steadiness.summary(made, tolerance=0.15, window_s=3).to_dict("records")
    assert row["windows"] == 1 and math.isnan(row["window_range"]) and not row["steady"]


def test_a_short_check_prints_its_table_and_verdict_and_saves_a_verified_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOPCORE_RESULTS", str(tmp_path))
    monkeypatch.setattr(steadiness, "WINDOW_S", 0.1)
    monkeypatch.setattr(steadiness, "PROBES", {1: 2, 16: 1})
    result = bench.main(["--steadiness", "0.6", "--threads", "2", "--no-pin", "--save"])
    out = capsys.readouterr().out
    assert "steady" in out and "saved to" in out and json.loads(out.strip().splitlines()[-1]) == result
    table = pd.DataFrame(result["configurations"])
    assert sorted(zip(table.threads, table.runs)) == [(1, 1), (1, 16), (2, 1), (2, 16)]
    assert (table["median"] > 0).all() and (table.calls > 0).all()
    assert result["steady"] == bool(table.steady.all()) and result["tolerance"] == bench.REPEATABLE
    (check,) = steadiness.saved(Store(tmp_path))
    assert check.device == "cpu (2 threads)" and check.seconds == 0.6 and check.window_s == 0.1
    pd.testing.assert_frame_equal(check.summary, table, check_dtype=False)
    assert len(check.windows) == len(result["window_medians"])
    steadiness.plot_windows(check)
    (path,) = (tmp_path / steadiness.KIND).glob("*.json")
    path.write_text(path.read_text().replace('"seconds": 0.6', '"seconds": 0.7'))  # edited by hand
    with pytest.raises(CorruptResultError):
        steadiness.saved(Store(tmp_path))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steadiness", "0"], "--steadiness 0 is not valid; give the seconds to check for, above 0"),
        (["--steadiness", "-3"], "--steadiness -3 is not valid"),
        (["--steadiness", "5", "--device", "cuda"], "--steadiness checks the CPU; give --device cpu"),
        (["--steadiness", "soon"], "argument --steadiness: invalid float value: 'soon'"),
    ],
)
def test_bad_steadiness_arguments_are_named_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        bench.main(argv)
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_no_saved_check_is_an_empty_list(tmp_path):
    assert steadiness.saved(Store(tmp_path)) == []


def test_the_verdict_names_each_unsteady_configuration_and_by_how_much():
    table = pd.DataFrame(
        [
            {"threads": 1, "runs": 1, "window_range": 0.06, "steady": True},
            {"threads": 2, "runs": 1, "window_range": 1.25, "steady": False},
            {"threads": 2, "runs": 16, "window_range": float("nan"), "steady": False},
        ]
    )
    line = steadiness.verdict(table, 0.15)
    assert line.startswith("NOT steady: the window medians of 2 threads R=1 (125%), 2 threads R=16 (too short to tell)")
    steady = steadiness.verdict(table.iloc[:1], 0.15)
    assert steady.startswith("steady: every configuration's window medians stay within 15%")


def test_the_performance_pages_account_of_the_saved_checks_holds():
    """notebooks/performance.md's words around its glued steadiness numbers: two threads never within
    the tolerance and always less steady than one thread at the same R; the bare products at R = 1
    slower on two threads than on one; one check before and one after the latest one-thread pair, and
    the one after it saw one thread at R = 16 move by more than the tolerance too; steal near zero."""
    checks = steadiness.saved()
    assert len(checks) >= 2
    for check in checks:
        t = check.summary.set_index(["threads", "runs"])
        assert not t.loc[2].steady.any()  # "never within 15 %"
        for r in (1, 16):
            assert t.loc[(1, r), "window_range"] < t.loc[(2, r), "window_range"]
        assert t.loc[(2, 1), "median"] > t.loc[(1, 1), "median"]
        assert check.host_steal_share < 0.01
    pair = bench.latest_pair(bench.of_kind(bench.saved_results(), "one_thread"), "cpu")
    first, second = sorted(pair.attrs["benchmarks"])
    assert checks[-2].saved_at < first and second < checks[-1].saved_at
    assert not checks[-1].summary.set_index(["threads", "runs"]).loc[(1, 16), "steady"]
