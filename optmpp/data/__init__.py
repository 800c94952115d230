"""Data: where the files are, checksummed download, CSV loaders, splits.

Imports neither Optuna nor TensorFlow. The data directory is ``--data-dir``, else
``OPTMPP_DATA_DIR``, else the user cache (``~/.cache/optmpp``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DATASETS",
    "DataError",
    "Table",
    "fetch_datasets",
    "find_data_file",
    "load_numeric_table",
    "resolve_data_dir",
    "sha256_of",
    "split_indices",
    "table_fingerprint",
]

_BASE = "https://raw.githubusercontent.com/niket-sharma/PolyML/26ca9411ec357f58a04c3076adc55c919f3d14db/"

#: The paper's public data files: name -> (address, sha256).
DATASETS: dict[str, tuple[str, str]] = {
    "HDPE_LG_Plant_Data.csv": (
        _BASE + "HDPE_LG_Plant_Data.csv",
        "e3f15f33bc5acc509d2d5df20adb446d2677e87cb2d95eeeeafd02dbf96bc2f2",
    ),
    "Polymer_Tg_SMILES.csv": (
        _BASE + "Polymer_Tg_SMILES.csv",
        "069ec1537d6e386943b58e1f3bf3671ca739cfbbfbb11d3e5e8c6f1dbdc8caf6",
    ),
}


class DataError(ValueError):
    """A data file is missing, corrupt or holds rows the study cannot use."""


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("OPTMPP_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "optmpp"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_data_file(name: str, data_dir: str | Path | None = None) -> Path:
    """The path of data file ``name``: an existing path as given, else inside the data dir."""
    p = Path(name).expanduser()
    if p.is_absolute() or p.exists():
        if not p.exists():
            raise DataError(f"data file {p} does not exist")
        return p
    directory = resolve_data_dir(data_dir)
    candidate = directory / name
    if candidate.exists():
        return candidate
    hint = (
        " Run `optmpp data fetch` to download it, or set OPTMPP_DATA_DIR / --data-dir."
        if name in DATASETS
        else " Give a path, or put it in the data directory (OPTMPP_DATA_DIR / --data-dir)."
    )
    raise DataError(f"data file {name!r} not found in {directory}.{hint}")


def fetch_datasets(
    data_dir: str | Path | None = None,
    names: Sequence[str] | None = None,
    base_url: str | None = None,
    log: Callable[[str], None] = print,
    timeout: float = 60.0,
) -> list[Path]:
    """Download the paper's data files into the data dir, verifying their sha256.

    A file already present with the right checksum is kept; a download whose checksum differs
    is refused (nothing is written).
    """
    directory = resolve_data_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names or list(DATASETS):
        if name not in DATASETS:
            raise DataError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
        url, sha = DATASETS[name]
        if base_url:
            url = base_url.rstrip("/") + "/" + name
        target = directory / name
        if target.exists() and sha256_of(target) == sha:
            log(f"{name}: present, checksum ok ({target})")
            out.append(target)
            continue
        log(f"{name}: downloading {url}")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https/http URL
                payload = resp.read()
        except OSError as exc:
            raise DataError(f"{name}: download from {url} failed: {exc}") from None
        got = hashlib.sha256(payload).hexdigest()
        if got != sha:
            raise DataError(f"{name}: checksum mismatch (expected sha256 {sha}, got {got}); file refused")
        with tempfile.NamedTemporaryFile(dir=directory, delete=False) as tmp:
            tmp.write(payload)
        os.replace(tmp.name, target)
        log(f"{name}: saved, checksum ok ({target})")
        out.append(target)
    return out


#: Leading bytes of files that users name as data but are not text: what to do instead.
_NOT_TEXT = (
    (b"PK\x03\x04", "a zip archive, such as an Excel workbook (.xlsx)"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls) or another OLE document"),
)


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 (with or without a byte-order mark), UTF-16 with its mark (a
    spreadsheet's "Unicode text"), else Windows-1254. A workbook or other binary file is a
    ``DataError`` that says to save the sheet as CSV."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass  # not UTF-16 after all: refused as binary below
    kind = next((what for magic, what in _NOT_TEXT if raw.startswith(magic)), None)
    if kind is None and b"\x00" in raw[:65536]:
        kind = "a binary file"
    if kind:
        raise DataError(
            f"{path}: {kind}, not CSV text. Save the sheet as CSV (separated by commas, semicolons "
            "or tabs) and name that file"
        )
    for encoding in ("utf-8-sig", "cp1254"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")  # pragma: no cover - cp1254 decodes almost anything


@dataclass(frozen=True)
class Table:
    """Numeric columns of a CSV file."""

    X: np.ndarray
    y: np.ndarray
    rows: np.ndarray  # 1-based line numbers in the file (header = line 1)
    features: tuple[str, ...]
    target: str
    path: Path
    sha256: str
    dropped: tuple[tuple[int, str], ...] = ()

    def describe(self) -> str:
        text = f"{self.path.name}: {len(self.y)} rows, {len(self.features)} features -> {self.target}"
        if self.dropped:
            text += f" ({len(self.dropped)} bad rows dropped)"
        return text


#: Field separators a data file may use: the comma, and the semicolon and tab that spreadsheets
#: write where the comma is the decimal mark.
DELIMITERS = (",", ";", "\t")


class CsvRows(NamedTuple):
    """A CSV file's header (names stripped), its non-blank rows with their 1-based line numbers,
    and the field separator it was read with."""

    header: list[str]
    rows: list[tuple[int, list[str]]]
    delimiter: str = ","

    @property
    def decimal_comma(self) -> bool:
        """Numbers may be written with a decimal comma (``1,5``): the separator is not a comma."""
        return self.delimiter != ","


def sniff_delimiter(text: str, sample_lines: int = 50) -> str:
    """The separator of :data:`DELIMITERS` a data file is written with.

    A separator is *consistent* when it splits the header into two or more fields and each of the
    first ``sample_lines`` non-blank rows into as many. The consistent one with the most fields
    wins; where a comma and a semicolon or tab tie (a ``Tg (K, DSC);SMILES`` header over rows with
    decimal commas such as ``373,5;CC``) the other one wins, since a comma file whose every row
    also splits evenly at semicolons is far less likely than a spreadsheet's decimal commas. With
    no consistent separator (ragged rows) the one that splits the header into the most fields
    wins, the comma on a tie, and the bad rows are reported by the loader."""
    sample = "\n".join(text.splitlines()[: sample_lines + 1])  # \n, \r\n or a Mac's \r

    def widths(d: str) -> list[int]:
        try:
            return [len(r) for r in csv.reader(io.StringIO(sample), delimiter=d) if any(c.strip() for c in r)]
        except csv.Error:  # a stray quote or line break: not this separator's fault, count none
            return []

    def rank(d: str) -> tuple[bool, int, bool]:
        w = widths(d)
        consistent = len(w) > 0 and w[0] > 1 and all(n == w[0] for n in w)
        return consistent, w[0] if w else 0, (d != ",") if consistent else (d == ",")

    return max(DELIMITERS, key=rank)


def read_csv_rows(path: Path) -> CsvRows:
    """Header (names stripped) and the non-blank rows with their 1-based line numbers.

    The separator is the comma, or a semicolon or tab when the file is written so
    (:func:`sniff_delimiter`)."""
    text = _read_text(path)
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        header = [h.strip() for h in next(reader)]
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # fully blank rows are skipped silently
            rows.append((line, row))
    except StopIteration:
        raise DataError(f"{path}: the file is empty") from None
    except csv.Error as exc:  # such as a field past the csv module's size limit (an unclosed quote)
        raise DataError(f"{path}: line {reader.line_num}: not readable as CSV: {exc}") from None
    return CsvRows(header, rows, delimiter)


def parse_number(cell: str, decimal_comma: bool = False) -> float:
    """``float(cell)``; with ``decimal_comma`` also ``1,5`` (one comma, no point) as 1.5.

    Raises ``ValueError`` as ``float`` does."""
    try:
        return float(cell)
    except ValueError:
        if decimal_comma and cell.count(",") == 1 and "." not in cell:
            return float(cell.replace(",", "."))
        raise


def raise_bad_rows(path: Path, bad: Sequence[tuple[int, str]]) -> None:
    """Raise the error that names the bad rows (line: problem), the first ten of them."""
    shown = "; ".join(f"line {ln}: {p}" for ln, p in bad[:10])
    more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
    raise DataError(
        f"{path}: {len(bad)} bad row(s): {shown}{more}. "
        "Fix the file, or set on_bad_rows = \"drop\" in the study file's [objective] table."
    )


def column_indices(path: Path, header: Sequence[str], columns: Sequence[str], why: str = "") -> list[int]:
    """Positions of ``columns`` in ``header``; a ``DataError`` listing the missing ones."""
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}{why}; "
            f"the file has: {', '.join(repr(h) for h in header)}"
        )
    return [list(header).index(c) for c in columns]


def parse_numeric_rows(
    rows: Sequence[tuple[int, list[str]]], columns: Sequence[str], index: Sequence[int], decimal_comma: bool = False
) -> tuple[list[list[float]], list[int], list[tuple[int, str]]]:
    """Each row's ``columns`` (at ``index``) as floats: (values, their line numbers, bad rows).

    ``decimal_comma`` also reads ``1,5`` as 1.5 (files separated by semicolons or tabs)."""
    values, lines, bad = [], [], []
    for line, row in rows:
        parsed: list[float] = []
        problem = None
        for col, i in zip(columns, index):
            cell = row[i].strip() if i < len(row) else ""
            if not cell:
                problem = f"missing value in {col!r}"
                break
            try:
                v = parse_number(cell, decimal_comma)
            except ValueError:
                problem = f"non-numeric value {cell!r} in {col!r}"
                break
            if not math.isfinite(v):
                problem = f"non-finite value {cell!r} in {col!r}"
                break
            parsed.append(v)
        if problem:
            bad.append((line, problem))
        else:
            values.append(parsed)
            lines.append(line)
    return values, lines, bad


def load_numeric_table(
    path: Path, features: Sequence[str], target: str, on_bad_rows: str = "error"
) -> Table:
    """Read ``features`` and ``target`` as floats.

    Rows with a missing or non-numeric value are an error naming them (``on_bad_rows =
    "error"``) or are dropped and listed (``"drop"``). Fully blank rows are always skipped.
    """
    csv_rows = read_csv_rows(path)
    wanted = list(features) + [target]
    values, lines, bad = parse_numeric_rows(
        csv_rows.rows, wanted, column_indices(path, csv_rows.header, wanted), csv_rows.decimal_comma
    )
    if bad and on_bad_rows != "drop":
        raise_bad_rows(path, bad)
    if not values:
        raise DataError(f"{path}: no valid row")
    arr = np.asarray(values, dtype=float)
    return Table(
        X=arr[:, :-1],
        y=arr[:, -1],
        rows=np.asarray(lines),
        features=tuple(features),
        target=target,
        path=path,
        sha256=sha256_of(path),
        dropped=tuple(bad),
    )


def table_fingerprint(table: Any) -> dict[str, Any]:
    """What identifies a loaded data file (a :class:`Table` or a SMILES table): its name, sha256
    and the rows read. Stored with a study and in a saved model's card."""
    return {"file": Path(table.path).name, "sha256": table.sha256, "rows": int(len(table.y))}


def split_indices(
    n: int, kind: str = "random", test_size: float = 0.25, val_size: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test indices of ``n`` rows.

    ``random``: the test part is drawn with ``random_state=seed`` (the paper's split), the
    validation part is carved from the rest with the same seed. ``ordered``: rows keep their
    order; train on the earliest, validate on the next, test on the latest (time-ordered plant
    records).
    """
    if not 0 < test_size < 1 or not 0 < val_size < 1:
        raise DataError(f"test_size and val_size must be in (0, 1), got {test_size}, {val_size}")
    idx = np.arange(n)
    n_test = max(1, int(round(n * test_size)))
    n_val = max(1, int(round((n - n_test) * val_size)))
    if n - n_test - n_val < 1:
        raise DataError(f"{n} rows are too few for a train/validation/test split")
    if kind == "ordered":
        return idx[: n - n_test - n_val], idx[n - n_test - n_val : n - n_test], idx[n - n_test :]
    if kind != "random":
        raise DataError(f"unknown split {kind!r}; allowed: 'random', 'ordered'")
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(idx, test_size=n_test, random_state=seed)
    train, val = train_test_split(rest, test_size=n_val, random_state=seed)
    return np.asarray(train), np.asarray(val), np.asarray(test)
