"""The report's Tatoeba languages from the official export: sampling, manifest, verification. The
download itself is exercised on local file:// exports (this machine has no route to tatoeba.org)."""

import bz2
import json

import pytest

from lopcore import sequences, tatoeba_export
from lopcore.data import DataError, DataUnreachable
from lopcore.papers.khan.figures import figure_runs


def write_export(folder, lang, n, duplicates=0):
    """A per-language export like Tatoeba's: `id<TAB>lang<TAB>text` lines, bz2-compressed."""
    lines = [f"{i}\t{lang}\t{lang} sentence number {i}" for i in range(1, n + 1)]
    lines += [f"{n + i}\t{lang}\t{lang} sentence number {i}" for i in range(1, duplicates + 1)]  # same texts
    (folder / f"{lang}.tsv.bz2").write_bytes(bz2.compress("\n".join(lines).encode()))


@pytest.fixture
def exports(tmp_path, monkeypatch):
    source = tmp_path / "exports"
    source.mkdir()
    for lang in ("spa", "ron"):
        write_export(source, lang, 1500, duplicates=300)
    monkeypatch.setenv("LOPCORE_DATA", str(tmp_path / "data"))
    sequences.load_tatoeba.cache_clear()
    yield f"file://{source}/{{lang}}.tsv.bz2"
    sequences.load_tatoeba.cache_clear()


def fetch(url, tmp_path, **kw):
    return tatoeba_export.fetch(("spa", "ron"), dest=tmp_path / "data" / tatoeba_export.FOLDER, url=url, **kw)


def test_fetch_keeps_1000_train_and_200_test_distinct_sentences_per_language(exports, tmp_path):
    folder = fetch(exports, tmp_path)
    for lang in ("spa", "ron"):
        train = (folder / f"{lang}_1000.csv").read_text().splitlines()
        test = [line for line in (folder / "testset.csv").read_text().splitlines() if f"\t{lang}\t" in line]
        texts = [line.split("\t")[2] for line in train + test]
        assert len(train) == 1000 and len(test) == 200 and len(set(texts)) == 1200
        assert all(int(line.split("\t")[0]) <= 1500 for line in train + test)  # duplicates: the lowest id kept
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"spa_1000.csv", "ron_1000.csv", "testset.csv"}
    assert manifest["exports"]["spa"]["url"].endswith("spa.tsv.bz2") and manifest["seed"] == 0


def test_fetch_is_deterministic_in_the_seed(exports, tmp_path):
    first = fetch(exports, tmp_path)
    files = {p.name: p.read_bytes() for p in first.glob("*.csv")}
    again = fetch(exports, tmp_path)
    assert files == {p.name: p.read_bytes() for p in again.glob("*.csv")}
    other = fetch(exports, tmp_path, seed=1)
    assert (other / "spa_1000.csv").read_bytes() != files["spa_1000.csv"]


def test_the_fetched_languages_load_and_run_as_a_figure_source(exports, tmp_path):
    fetch(exports, tmp_path)
    data = sequences.load_tatoeba(20, ("spa", "ron"), source="tatoeba_report")
    assert data.n_classes == 2 and len(data.train_y) == 2000 and len(data.test_y) == 400
    assert data.train_x.shape[1] == 20 and int(data.train_len.max()) == 20
    (label, spec), *_ = figure_runs("rfig3", "smoke", 1, data="report")
    assert spec.stream.source == "tatoeba_report" and spec.n_tasks == 2


def test_an_edited_file_is_detected_and_names_the_fix(exports, tmp_path):
    folder = fetch(exports, tmp_path)
    path = folder / "ron_1000.csv"
    path.write_text(path.read_text().replace("sentence", "phrase", 1))
    with pytest.raises(DataError, match=r"sha256 mismatch for .*ron_1000.csv.*fetch it again"):
        sequences.load_tatoeba(20, ("spa", "ron"), source="tatoeba_report")


def test_missing_fetch_too_few_sentences_and_no_network_are_clear_errors(exports, tmp_path):
    with pytest.raises(DataError, match="not at .*tatoeba_report; fetch it .*--dataset tatoeba_report"):
        sequences.load_tatoeba(20, source="tatoeba_report")
    write_export(tmp_path / "exports", "ron", 900)
    with pytest.raises(DataError, match="export of 'ron' has 900 distinct sentences; 1200 are needed"):
        fetch(exports, tmp_path)
    assert not (tmp_path / "data" / tatoeba_export.FOLDER).exists()  # nothing half-written is left
    with pytest.raises(DataUnreachable, match="needs internet access"):
        fetch(f"file://{tmp_path}/nowhere/{{lang}}.tsv.bz2", tmp_path)
