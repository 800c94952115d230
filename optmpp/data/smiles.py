"""SMILES: loading, tokenising and one-hot encoding (no RDKit, no TensorFlow).

Two encodings, both a (max_length x vocabulary) one-hot matrix per molecule, zero-padded:

``paper``
    The encoding of Nguyen & Liu (2025) and of the PolyML workshop code it comes from: the
    SMILES is split into single characters and each is one-hot encoded over the 17 categories
    ``c n o C N F = O ( ) 1 2 # Cl / S Br`` (in the sorted order scikit-learn's OneHotEncoder
    gives them), 65 rows. Its flaws, reproduced on purpose: a character outside the vocabulary
    ('l', 'B', 'r', '.', '3', spaces) becomes an all-zero row, silently; 'Cl' and 'Br' are
    split into 'C'+'l' and 'B'+'r', so chlorine reads as carbon and bromine as nothing, and
    the 'Cl' and 'Br' columns are never set; ring-closure digits above 2 are lost. In the
    paper's data this hits 37 chlorines, 6 bromines, 52 '.', 2 '3' and one no-break space.

``tokens`` (the default for new studies)
    A real SMILES tokeniser (bracket atoms, two-letter atoms Cl and Br, ring closures
    including ``%nn``, bonds, branches, dots); the vocabulary is every token that occurs in the
    training file, and the maximum length is the longest molecule in tokens. Both are stored
    with the model; an unknown token or a too-long SMILES is an error naming the molecule and
    the token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optmpp.data import DataError, column_indices, parse_number, raise_bad_rows, read_csv_rows, sha256_of

__all__ = [
    "PAPER_MAX_LENGTH",
    "PAPER_VOCABULARY",
    "SmilesEncoder",
    "SmilesTable",
    "load_smiles_table",
    "tokenize",
]

#: The paper's categories, in scikit-learn OneHotEncoder's (sorted) column order.
PAPER_VOCABULARY: tuple[str, ...] = tuple(
    sorted(["c", "n", "o", "C", "N", "F", "=", "O", "(", ")", "1", "2", "#", "Cl", "/", "S", "Br"])
)
PAPER_MAX_LENGTH = 65

_TOKEN_RE = re.compile(
    r"(\[[^\[\]]+\]|Br|Cl|Si|Se|se|as|Na|Li|Mg|Al|Ca|Zn|Sn|Ge|B|C|N|O|P|S|F|I|K|H|b|c|n|o|s|p"
    r"|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|<|\*|\$|%[0-9]{2}|[0-9])"
)
_STRIP = " \t\r\n\u00a0\ufeff"


_WHITE_RE = re.compile(r"[\s\u00a0\ufeff]+")


def clean_smiles(smiles: str) -> str:
    """White space removed (it is never part of a SMILES; the paper's file has a no-break space
    before one SMILES and a space inside another)."""
    return _WHITE_RE.sub("", smiles)


def tokenize(smiles: str) -> list[str]:
    """Split a SMILES into tokens; raises ``DataError`` naming an unknown character."""
    s = clean_smiles(smiles)
    tokens, pos = [], 0
    while pos < len(s):
        m = _TOKEN_RE.match(s, pos)
        if m is None:
            raise DataError(f"SMILES {smiles!r}: cannot tokenise {s[pos]!r} at position {pos + 1}")
        tokens.append(m.group(0))
        pos = m.end()
    if not tokens:
        raise DataError(f"SMILES {smiles!r} is empty")
    return tokens


@dataclass(frozen=True)
class SmilesEncoder:
    """One-hot encoder of SMILES; ``to_dict``/``from_dict`` store it with a model."""

    kind: str  # "paper" or "tokens"
    vocabulary: tuple[str, ...]
    max_length: int
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {t: i for i, t in enumerate(self.vocabulary)})

    @classmethod
    def paper(cls) -> SmilesEncoder:
        return cls("paper", PAPER_VOCABULARY, PAPER_MAX_LENGTH)

    @classmethod
    def fit(cls, smiles: Sequence[str], max_length: int | None = None) -> SmilesEncoder:
        """A ``tokens`` encoder over every token in ``smiles``."""
        vocab: set[str] = set()
        longest = 0
        for s in smiles:
            toks = tokenize(s)
            vocab.update(toks)
            longest = max(longest, len(toks))
        return cls("tokens", tuple(sorted(vocab)), max_length or longest)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.max_length, len(self.vocabulary), 1)

    def units(self, smiles: str) -> list[str]:
        """The sequence of units the matrix rows stand for (characters or tokens)."""
        return list(smiles) if self.kind == "paper" else tokenize(smiles)

    def problem(self, smiles: str) -> str | None:
        """Why ``smiles`` cannot be encoded, or None."""
        try:
            units = self.units(smiles)
        except DataError as exc:
            return str(exc)
        if len(units) > self.max_length:
            return (
                f"SMILES {smiles!r} has {len(units)} {'characters' if self.kind == 'paper' else 'tokens'}, "
                f"more than the model's maximum of {self.max_length}"
            )
        if self.kind == "tokens":
            unknown = [t for t in units if t not in self.index]
            if unknown:
                return f"SMILES {smiles!r}: token {unknown[0]!r} is not in the model's vocabulary"
        return None

    def encode(self, smiles: Sequence[str]) -> np.ndarray:
        """(n, max_length, vocabulary, 1) float32; raises ``DataError`` for a bad molecule."""
        out = np.zeros((len(smiles), self.max_length, len(self.vocabulary), 1), dtype=np.float32)
        for i, s in enumerate(smiles):
            problem = self.problem(s)
            if problem:
                raise DataError(problem)
            for row, unit in enumerate(self.units(s)):
                col = self.index.get(unit)
                if col is not None:  # the paper's encoding leaves unknown characters all-zero
                    out[i, row, col, 0] = 1.0
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocabulary": list(self.vocabulary), "max_length": self.max_length}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SmilesEncoder:
        return cls(d["kind"], tuple(d["vocabulary"]), int(d["max_length"]))


@dataclass(frozen=True)
class SmilesTable:
    smiles: list[str]
    y: np.ndarray
    rows: np.ndarray
    names: list[str]
    path: Path
    sha256: str
    dropped: tuple[tuple[int, str], ...] = ()
    repaired: tuple[int, ...] = ()
    #: rows folded into an earlier row with the same SMILES (``duplicates = "merge"``)
    merged: int = 0
    #: of the merged groups, how many had different targets (their mean is kept)
    conflicts: int = 0

    def repeats(self) -> int:
        """Rows whose SMILES (after white-space clean-up) is that of an earlier row."""
        return len(self.smiles) - len(set(self.smiles))

    def describe(self) -> str:
        text = f"{self.path.name}: {len(self.y)} molecules"
        if self.repaired:
            text += f" (white space removed from the SMILES of line(s) {', '.join(map(str, self.repaired))})"
        if self.dropped:
            text += f" ({len(self.dropped)} bad rows dropped)"
        if self.merged:
            text += f" ({self.merged} rows with a repeated SMILES merged into its first row"
            text += f"; {self.conflicts} such group(s) had different targets, averaged)" if self.conflicts else ")"
        elif self.repeats():
            text += f" ({self.repeats()} rows repeat an earlier row's SMILES; duplicates = \"merge\" folds them)"
        return text


def load_smiles_table(
    path: Path,
    smiles_column: str,
    target: str,
    encoding: str = "tokens",
    max_length: int | None = None,
    on_bad_rows: str = "error",
    name_column: str | None = None,
    duplicates: str = "keep",
) -> tuple[SmilesTable, SmilesEncoder]:
    """Read SMILES and a numeric target; check every molecule against the encoding.

    Rows with a missing/non-numeric target, an empty or untokenisable SMILES, or a SMILES longer
    than the encoding accepts are an error naming them (``on_bad_rows = "error"``) or are dropped
    and listed (``"drop"``). Never silently truncated. Rows with the same SMILES (string equality
    after white-space clean-up; no canonicalisation) are kept as they are (``duplicates =
    "keep"``) or merged into the first of them with the mean target (``"merge"``). Returns the
    table and the encoder (for ``tokens``, fitted on the valid rows).
    """
    if duplicates not in ("keep", "merge"):
        raise DataError(f"unknown duplicates handling {duplicates!r}; allowed: 'keep', 'merge'")
    csv_rows = read_csv_rows(path)
    header, rows = csv_rows.header, csv_rows.rows
    si, ti = column_indices(path, header, (smiles_column, target))
    ni = header.index(name_column) if name_column and name_column in header else (0 if si != 0 else None)
    parsed: list[tuple[int, str, float, str]] = []
    bad: list[tuple[int, str]] = []
    repaired: list[int] = []
    for line, row in rows:
        raw = row[si] if si < len(row) else ""
        smiles = raw if encoding == "paper" else clean_smiles(raw)
        if smiles != raw and encoding != "paper":
            repaired.append(line)
        cell = row[ti].strip() if ti < len(row) else ""
        name = row[ni].strip() if ni is not None and ni < len(row) else ""
        if not clean_smiles(raw):
            bad.append((line, f"missing SMILES in {smiles_column!r}"))
            continue
        try:
            value = parse_number(cell, csv_rows.decimal_comma)
        except ValueError:
            bad.append((line, f"{'missing' if not cell else f'non-numeric value {cell!r}'} in {target!r}"))
            continue
        if not np.isfinite(value):
            bad.append((line, f"non-finite value {cell!r} in {target!r}"))
            continue
        parsed.append((line, smiles, value, name))

    if encoding == "paper":
        encoder = SmilesEncoder.paper()
        if max_length:
            encoder = SmilesEncoder("paper", PAPER_VOCABULARY, max_length)
    elif encoding == "tokens":
        good = []
        for item in parsed:
            try:
                tokenize(item[1])
                good.append(item)
            except DataError as exc:
                bad.append((item[0], str(exc)))
        parsed = good
        encoder = SmilesEncoder.fit([p[1] for p in parsed] or ["C"], max_length)
    else:
        raise DataError(f"unknown SMILES encoding {encoding!r}; allowed: 'paper', 'tokens'")

    kept = []
    for item in parsed:
        problem = encoder.problem(item[1])
        if problem:
            bad.append((item[0], problem))
        else:
            kept.append(item)
    bad.sort()
    if bad and on_bad_rows != "drop":
        raise_bad_rows(path, bad)
    if not kept:
        raise DataError(f"{path}: no valid row")
    merged = conflicts = 0
    if duplicates == "merge":
        groups: dict[str, list[tuple[int, str, float, str]]] = {}
        for item in kept:
            groups.setdefault(item[1], []).append(item)
        kept = [(g[0][0], g[0][1], float(np.mean([i[2] for i in g])), g[0][3]) for g in groups.values()]
        merged = sum(len(g) - 1 for g in groups.values())
        conflicts = sum(len({i[2] for i in g}) > 1 for g in groups.values())
    table = SmilesTable(
        smiles=[k[1] for k in kept],
        y=np.asarray([k[2] for k in kept], dtype=float),
        rows=np.asarray([k[0] for k in kept]),
        names=[k[3] for k in kept],
        path=path,
        sha256=sha256_of(path),
        dropped=tuple(bad),
        repaired=tuple(r for r in repaired if r in {k[0] for k in kept}),
        merged=merged,
        conflicts=conflicts,
    )
    return table, encoder
