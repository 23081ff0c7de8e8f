"""Validation at the boundary: every bad-input case has a message naming column, rule and row."""

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.data import DataError, data_hash, parse_split, read_table, validate
from bayes_scaling.laws import LAWS

CHIN = LAWS["chinchilla"]


def frame(**cols):
    base = {"N": [1e8, 2e8, 4e8], "D": [1e9, 2e9, 4e9], "loss": [3.1, 3.0, 2.9]}
    base.update(cols)
    return pd.DataFrame(base)


def test_clean_frame_passes_and_keeps_index():
    out = validate(frame(), CHIN)
    assert list(out.columns) == ["N", "D", "loss"]
    assert out.dtypes.eq(float).all()
    assert list(out.index) == [0, 1, 2]


def test_missing_column_names_it_and_lists_found():
    with pytest.raises(DataError, match=r"missing column 'loss' required by law 'chinchilla'.*found columns: N, D"):
        validate(frame().drop(columns="loss"), CHIN)


def test_missing_tokens_hint_and_derivation():
    df = pd.DataFrame({"N": [1e8, 2e8], "C": [6e17, 2.4e18], "loss": [3.0, 2.9]})
    with pytest.raises(DataError, match="derive_tokens"):
        validate(df, CHIN)
    out = validate(df, CHIN, derive_tokens=True)
    np.testing.assert_allclose(out["D"], [1e9, 2e9])
    out8 = validate(df, CHIN, derive_tokens=True, flops_per_token=8.0)
    np.testing.assert_allclose(out8["D"], [0.75e9, 1.5e9])


def test_non_numeric_names_row_and_value():
    with pytest.raises(DataError, match=r"column 'D' must be numeric; found 1 non-numeric value \(first at row 1: 'lots'\)"):
        validate(frame(D=[1e9, "lots", 4e9]), CHIN)


def test_nan_and_inf():
    with pytest.raises(DataError, match=r"column 'loss' has 1 missing or infinite value \(first at row 1\)"):
        validate(frame(loss=[3.1, np.nan, 2.9]), CHIN)
    with pytest.raises(DataError, match=r"column 'N' has 2 missing or infinite values \(first at row 0\)"):
        validate(frame(N=[np.inf, 2e8, -np.inf]), CHIN)


@pytest.mark.parametrize("col", ["N", "D", "loss"])
def test_non_positive(col):
    values = frame()[col].tolist()
    values[2] = 0.0
    with pytest.raises(DataError, match=rf"column '{col}' must be > 0; found 1 non-positive row \(first at row 2\)"):
        validate(frame(**{col: values}), CHIN)


def test_empty_inputs(tmp_path):
    with pytest.raises(DataError, match="empty"):
        validate(pd.DataFrame(), CHIN)
    with pytest.raises(DataError, match="empty"):
        validate(pd.DataFrame({"N": [], "D": [], "loss": []}), CHIN)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        validate(empty, CHIN)
    header_only = tmp_path / "header.csv"
    header_only.write_text("N,D,loss\n")
    with pytest.raises(DataError, match="empty"):
        validate(header_only, CHIN)


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="neither an existing CSV file nor a known dataset"):
        read_table("no-such-dataset")


def test_column_mapping():
    df = frame().rename(columns={"N": "params", "loss": "val_loss"})
    out = validate(df, CHIN, columns={"params": "N", "val_loss": "loss"})
    assert list(out.columns) == ["N", "D", "loss"]
    with pytest.raises(DataError, match=r"column mapping names \['nope'\]"):
        validate(df, CHIN, columns={"nope": "N"})
    with pytest.raises(DataError, match="canonical names are"):
        validate(df, CHIN, columns={"params": "size"})


def test_duplicate_rows_warn_but_are_kept():
    df = pd.concat([frame(), frame().iloc[[1]]], ignore_index=True)
    with pytest.warns(UserWarning, match=r"1 duplicated row \(first at row 3\)"):
        out = validate(df, CHIN)
    assert len(out) == 4


def test_group_rules():
    df = frame(g=["a", "a", "b"])
    out = validate(df, CHIN, group="g")
    assert list(out["group"]) == ["a", "a", "b"]
    with pytest.raises(DataError, match="group column 'h' not found"):
        validate(df, CHIN, group="h")
    with pytest.raises(DataError, match="single group"):
        validate(frame(g=["a", "a", "a"]), CHIN, group="g")
    with pytest.raises(DataError, match=r"group 'a' of column 'g' has 2 points; 5 independent parameters need at least 6"):
        validate(df, CHIN, group="g", pooling={p: "independent" for p in CHIN.param_names})
    with pytest.raises(DataError, match="missing values"):
        validate(frame(g=["a", None, "b"]), CHIN, group="g")


def test_data_hash_depends_on_values():
    a = validate(frame(), CHIN)
    b = validate(frame(loss=[3.1, 3.0, 2.8]), CHIN)
    assert data_hash(a) == data_hash(validate(frame(), CHIN))
    assert data_hash(a) != data_hash(b)


def test_parse_split():
    df = pd.DataFrame({"C": [1e20, 1e21, 1e22], "train": [True, True, False]})
    assert parse_split(df, "C<=1e21").tolist() == [True, True, False]
    assert parse_split(df, "train").tolist() == [True, True, False]
    with pytest.raises(DataError, match="no held-out rows"):
        parse_split(df, "C<=1e23")
    with pytest.raises(DataError, match="no training rows"):
        parse_split(df, "C<1e19")
    with pytest.raises(DataError, match="names column 'Q'"):
        parse_split(df, "Q<=3")
    with pytest.raises(DataError, match="must look like"):
        parse_split(df, "C is small")
