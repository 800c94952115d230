from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optmpp.data import DataError
from optmpp.data.smiles import PAPER_VOCABULARY, SmilesEncoder, load_smiles_table, tokenize


def test_paper_encoding_is_the_workshop_code() -> None:
    enc = SmilesEncoder.paper()
    assert enc.shape == (65, 17, 1)
    # scikit-learn's OneHotEncoder sorts its categories
    assert PAPER_VOCABULARY == ("#", "(", ")", "/", "1", "2", "=", "Br", "C", "Cl", "F", "N", "O", "S", "c", "n", "o")
    x = enc.encode(["ClC(=O)c1ccccc1.Br3"])[0, :, :, 0]
    chars = list("ClC(=O)c1ccccc1.Br3")
    for row, ch in enumerate(chars):
        if ch in enc.index:
            assert x[row].sum() == 1 and x[row, enc.index[ch]] == 1
        else:  # 'l', '.', 'B', 'r', '3': silently all-zero rows (the paper's flaw)
            assert x[row].sum() == 0
    assert x[len(chars):].sum() == 0  # zero padding
    assert x[:, enc.index["Cl"]].sum() == 0 and x[:, enc.index["Br"]].sum() == 0  # never set


def test_tokenizer() -> None:
    assert tokenize("C[C@H](Cl)c1ccccc1Br") == ["C", "[C@H]", "(", "Cl", ")", "c", "1", "c", "c", "c", "c", "c", "1", "Br"]
    assert tokenize("C%12CC%12.O=C=O") == ["C", "%12", "C", "C", "%12", ".", "O", "=", "C", "=", "O"]
    assert tokenize("\u00a0O= C1CCCO1 ") == ["O", "=", "C", "1", "C", "C", "C", "O", "1"]
    with pytest.raises(DataError, match=r"SMILES 'C&C': cannot tokenise '&' at position 2"):
        tokenize("C&C")


def test_tokens_encoder_names_molecule_and_token() -> None:
    enc = SmilesEncoder.fit(["CCO", "c1ccccc1"])
    assert enc.vocabulary == ("1", "C", "O", "c") and enc.max_length == 8
    with pytest.raises(DataError, match=r"SMILES 'CCCl': token 'Cl' is not in the model's vocabulary"):
        enc.encode(["CCCl"])
    with pytest.raises(DataError, match=r"SMILES 'CCCCCCCCC' has 9 tokens, more than the model's maximum of 8"):
        enc.encode(["CCCCCCCCC"])
    assert SmilesEncoder.from_dict(enc.to_dict()) == enc


def test_real_tg_file_both_encodings(real_data: Path) -> None:
    path = real_data / "Polymer_Tg_SMILES.csv"
    table, enc = load_smiles_table(path, "SMILES Structure", "Tg", "paper")
    assert len(table.y) == 352 and enc.shape == (65, 17, 1)
    assert 178 <= table.y.min() and table.y.max() <= 538
    table, enc = load_smiles_table(path, "SMILES Structure", "Tg", "tokens")
    assert len(table.y) == 352
    assert {"Cl", "Br", "."} <= set(enc.vocabulary)
    assert len(table.repaired) == 2  # a no-break space and a space inside a SMILES
    x = enc.encode(table.smiles)
    assert x.shape == (352, enc.max_length, len(enc.vocabulary), 1)
    assert np.all(x.sum(axis=2)[:, :, 0].max(axis=1) == 1)


def test_bad_rows_are_errors_naming_them_or_dropped(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text("name,smi,prop\na,CCO,1\nb,,2\nc,CC&C,3\nd,CCCCCCCCCCCC,4\ne,CCN,x\n")
    with pytest.raises(DataError) as info:
        load_smiles_table(p, "smi", "prop", "tokens", max_length=10)
    msg = str(info.value)
    for part in ["4 bad row(s)", "line 3: missing SMILES", "line 4: SMILES 'CC&C': cannot tokenise '&'",
                 "line 5: SMILES 'CCCCCCCCCCCC' has 12 tokens, more than the model's maximum of 10", "line 6: non-numeric value 'x'"]:
        assert part in msg, (part, msg)
    table, _ = load_smiles_table(p, "smi", "prop", "tokens", max_length=10, on_bad_rows="drop")
    assert table.smiles == ["CCO"] and len(table.dropped) == 4
    with pytest.raises(DataError, match="missing column"):
        load_smiles_table(p, "SMILES", "prop")


def test_repeated_smiles_are_reported_or_merged_with_their_mean(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text("name,smi,prop\na,CCO,1\nb,CCN,2\na2,CCO,1\nc,C C N,4\nd,CCCl,5\n")
    table, _ = load_smiles_table(p, "smi", "prop", "tokens")
    assert len(table.y) == 5 and table.repeats() == 2 and table.merged == 0
    assert "2 rows repeat an earlier row's SMILES" in table.describe()
    table, enc = load_smiles_table(p, "smi", "prop", "tokens", duplicates="merge")
    assert table.smiles == ["CCO", "CCN", "CCCl"] and table.y.tolist() == [1.0, 3.0, 5.0]
    assert table.names == ["a", "b", "d"] and table.rows.tolist() == [2, 3, 6]
    assert table.merged == 2 and table.conflicts == 1 and table.repeats() == 0
    assert "2 rows with a repeated SMILES merged" in table.describe() and "1 such group(s)" in table.describe()
    with pytest.raises(DataError, match="unknown duplicates handling 'drop'"):
        load_smiles_table(p, "smi", "prop", "tokens", duplicates="drop")


def test_the_paper_tg_file_repeats_polymers_across_the_split(real_data: Path) -> None:
    from optmpp.objectives import make_objective

    table, _ = load_smiles_table(real_data / "Polymer_Tg_SMILES.csv", "SMILES Structure", "Tg")
    assert table.repeats() == 127 and len(set(table.smiles)) == 225
    obj = make_objective("tg-cnn", {})
    assert obj.seen_in_training("val").sum() == 18 and obj.seen_in_training("test").sum() == 36
    assert "18 validation and 36 test molecules are copies of training molecules" in obj.describe()
    merged = make_objective("tg-cnn", {"duplicates": "merge"})
    assert len(merged.y) == 225 and merged.table.merged == 127
    assert not merged.seen_in_training("val").any() and not merged.seen_in_training("test").any()
    assert "copies" not in merged.describe()
