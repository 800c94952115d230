from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from optmpp.data import DATASETS, DataError, fetch_datasets, find_data_file, load_numeric_table, split_indices
from optmpp.storage import redact_text, redact_url, resolve_storage_url


def test_redaction() -> None:
    url = "postgresql+psycopg://alice:pa55w0rd@db.example:5432/optmpp"
    assert redact_url(url) == "postgresql+psycopg://alice:***@db.example:5432/optmpp"
    assert "pa55w0rd" not in redact_text(f"could not connect to {url}: password pa55w0rd rejected", url)
    assert redact_url("sqlite:///runs/optmpp.db") == "sqlite:///runs/optmpp.db"


def test_storage_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPTMPP_STORAGE", raising=False)
    assert resolve_storage_url(None, None) == "sqlite:///runs/optmpp.db"
    assert resolve_storage_url(None, "sqlite:///f.db") == "sqlite:///f.db"
    monkeypatch.setenv("OPTMPP_STORAGE", "sqlite:///env.db")
    assert resolve_storage_url(None, "sqlite:///f.db") == "sqlite:///env.db"
    assert resolve_storage_url("sqlite:///cli.db", "sqlite:///f.db") == "sqlite:///cli.db"


def test_sqlite_storage_uses_wal(tmp_path: Path) -> None:
    import sqlite3

    from optmpp.storage import make_storage

    make_storage(f"sqlite:///{tmp_path}/sub/w.db")
    mode = sqlite3.connect(tmp_path / "sub" / "w.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


@pytest.fixture
def http_server(tmp_path: Path, real_data: Path) -> Iterator[tuple[str, Path]]:
    served = tmp_path / "served"
    served.mkdir()
    for name in DATASETS:
        (served / name).write_bytes((real_data / name).read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()


def test_fetch_verifies_checksums(tmp_path: Path, http_server: tuple[str, Path]) -> None:
    base, served = http_server
    dest = tmp_path / "cache"
    paths = fetch_datasets(dest, base_url=base, log=lambda m: None)
    assert sorted(p.name for p in paths) == sorted(DATASETS)
    assert find_data_file("HDPE_LG_Plant_Data.csv", dest) == dest / "HDPE_LG_Plant_Data.csv"
    # a tampered file is refused and nothing is written
    (served / "Polymer_Tg_SMILES.csv").write_bytes(b"name,SMILES,Tg\nx,C,1\n")
    other = tmp_path / "other"
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch_datasets(other, names=["Polymer_Tg_SMILES.csv"], base_url=base, log=lambda m: None)
    assert not (other / "Polymer_Tg_SMILES.csv").exists()


def test_missing_data_file_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="optmpp data fetch"):
        find_data_file("HDPE_LG_Plant_Data.csv", tmp_path)


def test_hdpe_loads(real_data: Path) -> None:
    t = load_numeric_table(real_data / "HDPE_LG_Plant_Data.csv", ["C2", "H2", "CAT", "HX", "C3", "T", "P", "H2/C2", "C3/C4"], "MI_Plant")
    assert t.X.shape == (3743, 9) and t.y.shape == (3743,)
    assert t.sha256 == DATASETS["HDPE_LG_Plant_Data.csv"][1]


def test_bad_rows_are_named_or_dropped(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("a,b ,y\n1,2,3\n\n4,x,6\n7,,9\n1,1,1\n")
    with pytest.raises(DataError, match=r"2 bad row\(s\): line 4: non-numeric value 'x' in 'b'; line 5: missing value in 'b'"):
        load_numeric_table(p, ["a", "b"], "y")
    t = load_numeric_table(p, ["a", "b"], "y", on_bad_rows="drop")
    assert t.y.tolist() == [3.0, 1.0] and t.rows.tolist() == [2, 6] and len(t.dropped) == 2
    with pytest.raises(DataError, match=r"missing column\(s\) 'c'"):
        load_numeric_table(p, ["a", "c"], "y")
    q = tmp_path / "e.csv"
    q.write_text("a,y\nx,1\n")
    with pytest.raises(DataError, match="no valid row"):
        load_numeric_table(q, ["a"], "y", on_bad_rows="drop")


@pytest.mark.parametrize("sep", [";", "\t"])
def test_spreadsheet_exports_with_semicolons_or_tabs_and_decimal_commas_load(tmp_path: Path, sep: str) -> None:
    """A spreadsheet where the comma is the decimal mark writes ``a;b;y`` and ``1,5``: read as such."""
    comma = tmp_path / "comma.csv"
    comma.write_text("a,b,y\n1.5,2,3.25\n-4e-3,5,6\n7,8.0,9\n")
    other = tmp_path / "other.csv"
    other.write_text(f"a{sep}b{sep}y\n1,5{sep}2{sep}3,25\n-4e-3{sep}5{sep}6\n\n7{sep}8.0{sep}9\n")
    want, got = load_numeric_table(comma, ["a", "b"], "y"), load_numeric_table(other, ["a", "b"], "y")
    np.testing.assert_array_equal(got.X, want.X)
    np.testing.assert_array_equal(got.y, want.y)
    assert got.rows.tolist() == [2, 3, 5]
    for newline in ("\r\n", "\r"):  # Windows, and the classic Mac's line ends of spreadsheet exports
        other.write_bytes(other.read_text().replace("\n", newline).encode())
        again = load_numeric_table(other, ["a", "b"], "y")
        np.testing.assert_array_equal(again.X, want.X)
        assert again.rows.tolist() == [2, 3, 5]
        other.write_text(other.read_bytes().decode().replace(newline, "\n"))
    # a value with two commas, or a decimal comma where the comma separates fields, is still refused
    bad = tmp_path / "bad.csv"
    bad.write_text(f"a{sep}y\n1,000,5{sep}1\n1.000,5{sep}2\n")
    with pytest.raises(DataError, match=r"line 2: non-numeric value '1,000,5' in 'a'; line 3: non-numeric value '1.000,5'"):
        load_numeric_table(bad, ["a"], "y")
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('a,y\n"1,5",1\n')
    with pytest.raises(DataError, match=r"line 2: non-numeric value '1,5' in 'a'"):
        load_numeric_table(quoted, ["a"], "y")


def test_unicode_text_loads_and_a_workbook_is_refused_with_what_to_do(tmp_path: Path) -> None:
    import zipfile

    utf16 = tmp_path / "unicode.txt"  # a spreadsheet's "Unicode text": UTF-16 with its mark, tabs
    utf16.write_bytes("a\tb\ty\n1,5\t2\t3\n4\t5\t6,5\n".encode("utf-16"))
    t = load_numeric_table(utf16, ["a", "b"], "y")
    assert t.X.tolist() == [[1.5, 2.0], [4.0, 5.0]] and t.y.tolist() == [3.0, 6.5]
    xlsx = tmp_path / "data.xlsx"
    with zipfile.ZipFile(xlsx, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    xls = tmp_path / "data.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64))
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"a,y\n\x00\x01,2\n")
    for path, kind in ((xlsx, r"an Excel workbook \(\.xlsx\)"), (xls, r"Excel 97-2003 workbook \(\.xls\)"),
                       (binary, "a binary file")):
        with pytest.raises(DataError, match=kind + r".*not CSV text\. Save the sheet as CSV"):
            load_numeric_table(path, ["a"], "y")
    unclosed = tmp_path / "unclosed.csv"  # an opening quote never closed swallows the rest of the file
    unclosed.write_text('a,y\n"' + "x" * 200_000 + "\n1,2\n")
    with pytest.raises(DataError, match="line 2: not readable as CSV: field larger than field limit"):
        load_numeric_table(unclosed, ["a"], "y")


def test_a_semicolon_smiles_file_keeps_the_commas_in_its_names(tmp_path: Path) -> None:
    from optmpp.data.smiles import load_smiles_table

    p = tmp_path / "tg.csv"
    p.write_text("Polymer;SMILES;Tg\nPoly(2,6-dimethyl-1,4-phenylene oxide);Cc1cc(O)cc(C)c1;482,5\nPolyethylene;CC;195\n")
    table, _ = load_smiles_table(p, "SMILES", "Tg", "tokens")
    assert table.smiles == ["Cc1cc(O)cc(C)c1", "CC"] and table.y.tolist() == [482.5, 195.0]
    assert table.names == ["Poly(2,6-dimethyl-1,4-phenylene oxide)", "Polyethylene"]


def test_the_separator_is_the_one_every_row_agrees_with(tmp_path: Path) -> None:
    """A comma inside a semicolon file's column name does not make it a comma file: the rows decide."""
    from optmpp.data import sniff_delimiter
    from optmpp.data.smiles import load_smiles_table

    p = tmp_path / "tg.csv"  # the header splits into 2 fields at the comma and at the semicolon
    p.write_text("Tg (K, DSC);SMILES\n373,5;CC(C)\n400;c1ccccc1\n")
    table, _ = load_smiles_table(p, "SMILES", "Tg (K, DSC)", "tokens")
    assert table.y.tolist() == [373.5, 400.0] and table.smiles == ["CC(C)", "c1ccccc1"]
    # every row with a decimal comma: both separators split each line in two; the semicolon wins
    assert sniff_delimiter("Tg (K, DSC);SMILES\n373,5;CC\n401,5;CCO\n") == ";"
    assert sniff_delimiter("a,b;c\n1,2;3\n") == ";"
    # a comma file stays one, also with a semicolon in a name or a value, and with a ragged row
    assert sniff_delimiter("a;b,y\n1,2\n3,4\n") == ","
    assert sniff_delimiter("name,y\nx;z,2\nw,3\n") == ","
    assert sniff_delimiter("a,b,y\n1,2,3\n4,5\n6,7,8,9\n") == ","
    # ragged rows under a semicolon header: the header decides, and the loader names the bad row
    assert sniff_delimiter("a;b;y\n1;2;3\n4;5\n") == ";"
    assert sniff_delimiter("a\tb\ty\r1\t2\t3\r") == "\t"
    assert sniff_delimiter("y\n1\n") == ","


def test_cross_validation_folds_cover_train_and_validation_and_keep_groups_together() -> None:
    from optmpp.objectives.keras_common import cv_fold_indices

    rows = np.arange(10, 40)
    folds = cv_fold_indices(rows, 4, seed=3)
    assert [len(va) for _, va in folds] == [8, 8, 7, 7]
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == rows.tolist()  # each row validated once
    assert all(sorted(np.concatenate([tr, va]).tolist()) == rows.tolist() for tr, va in folds)
    again = cv_fold_indices(rows[::-1], 4, seed=3)  # the row set decides, not its order
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, cv_fold_indices(rows, 4, seed=4)))
    labels = [f"m{i // 3}" for i in range(40)]  # every molecule three times
    grouped = cv_fold_indices(rows, 4, seed=3, groups=labels)
    for tr, va in grouped:
        assert not {labels[i] for i in tr} & {labels[i] for i in va}
    assert sorted(np.concatenate([va for _, va in grouped]).tolist()) == rows.tolist()
    with pytest.raises(DataError, match="cv_folds = 12 needs at least 12 distinct molecules outside the test part, there are 11"):
        cv_fold_indices(rows, 12, seed=0, groups=labels)  # rows 10-39: molecules m3-m13
    with pytest.raises(DataError, match="cv_folds = 31 needs at least 31 rows"):
        cv_fold_indices(rows, 31, seed=0)


@pytest.mark.parametrize(("options", "message"), [
    ({"cv_folds": 0}, "cv_folds must be >= 1"),
    ({"cv_folds": 3, "trainer": "keras"}, 'cv_folds > 1 needs trainer = "fast"'),
    ({"cv_folds": 3, "split": "ordered"}, 'cv_folds > 1 needs split = "random"'),
    ({"cv_folds": 3, "model": "paper-baseline"}, "has nothing to tune"),
])
def test_cross_validation_options_are_checked(options: dict, message: str) -> None:
    from optmpp.config import ConfigError
    from optmpp.objectives.hdpe_dnn import DNNOptions
    from optmpp.objectives.base import parse_options
    from optmpp.objectives.tg_cnn import CNNOptions

    for cls in (DNNOptions, CNNOptions):
        with pytest.raises(ConfigError, match=message):
            parse_options(cls, options)


def test_splits_are_seeded_and_disjoint() -> None:
    a = split_indices(100, "random", 0.25, 0.2, seed=0)
    b = split_indices(100, "random", 0.25, 0.2, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sorted(np.concatenate(a).tolist()) == list(range(100))
    assert (len(a[0]), len(a[1]), len(a[2])) == (60, 15, 25)
    train, val, test = split_indices(100, "ordered", 0.25, 0.2)
    assert train.max() < val.min() and val.max() < test.min()


def test_fetch_downloads_nothing_when_the_files_are_present(tmp_path: Path, real_data: Path) -> None:
    """`make run` calls `optmpp data fetch` first: with the data present it downloads nothing."""
    import os
    import subprocess
    import sys

    d = tmp_path / "ro"
    d.mkdir()
    for name in DATASETS:
        (d / name).write_bytes((real_data / name).read_bytes())
    d.chmod(0o555)
    try:
        out = subprocess.run([sys.executable, "-m", "optmpp", "--data-dir", str(d), "data", "fetch",
                              "--base-url", "http://127.0.0.1:9/nothing-listens-here"],
                             capture_output=True, text=True, env={**os.environ})
        assert out.returncode == 0, out.stderr
        assert out.stderr.count("present, checksum ok") == 2
    finally:
        d.chmod(0o755)
