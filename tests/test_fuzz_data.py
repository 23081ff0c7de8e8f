"""Property-based fuzzing of the data boundary: whatever frame a user hands in, validation and
``prepare`` either return clean arrays or raise the project's own ``DataError``.

The suite runs a few hundred examples; ``BAYES_SCALING_FUZZ_EXAMPLES=10000`` runs more.
"""

import datetime
import os
import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_scaling.data import DataError, select_rows, validate
from bayes_scaling.inference import prepare
from bayes_scaling.laws import get_law

EXAMPLES = int(os.environ.get("BAYES_SCALING_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.sampled_from(["N", "D", "C", "loss", "group", "U", "params", "tokens", "", " N", "loss ", "0", "N.1"])
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
SCALARS = st.one_of(
    FLOATS, st.integers(-(2**70), 2**70), st.booleans(), st.text(max_size=5), st.none(),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.datetimes(min_value=datetime.datetime(1700, 1, 1), max_value=datetime.datetime(2200, 1, 1)).map(pd.Timestamp),
    st.timedeltas(min_value=pd.Timedelta(days=-1e4).to_pytimedelta(), max_value=pd.Timedelta(days=1e4).to_pytimedelta()).map(pd.Timedelta),
    st.sampled_from(["1e9", "3.0", "nan", "inf", "-1", "0x10", "1,000"]),
)


@st.composite
def columns(draw, n: int):
    kind = draw(st.sampled_from(["float", "int", "bool", "object", "datetime", "complex", "category", "positive"]))
    if kind == "float":
        return np.array(draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype=float)
    if kind == "positive":
        return np.array(draw(st.lists(st.floats(1e-3, 1e15), min_size=n, max_size=n)), dtype=float)
    if kind == "int":
        return np.array(draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n)), dtype=np.int64)
    if kind == "bool":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "datetime":
        return pd.date_range("2020-01-01", periods=n, freq="D")
    if kind == "complex":
        return np.array(draw(st.lists(st.complex_numbers(max_magnitude=1e12), min_size=n, max_size=n)), dtype=complex)
    if kind == "category":
        return pd.Categorical(draw(st.lists(st.sampled_from(["a", "b", "1.5"]), min_size=n, max_size=n)))
    return pd.Series(draw(st.lists(SCALARS, min_size=n, max_size=n)), dtype=object).to_numpy()


@st.composite
def frames(draw):
    n = draw(st.integers(0, 8))
    names = draw(st.lists(NAMES, min_size=0, max_size=6))
    data = {f"__{i}": draw(columns(n)) for i in range(len(names))}
    df = pd.DataFrame(data, index=range(n)) if data else pd.DataFrame(index=range(n))
    df.columns = names  # duplicates and odd names on purpose
    if n and draw(st.booleans()):
        df = pd.concat([df, df.iloc[:1]])
    return df


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@FUZZ
@given(df=frames(), law=st.sampled_from(["chinchilla", "power_law:N", "kaplan"]), grouped=st.booleans())
def test_validate_and_prepare_raise_only_data_errors(df, law, grouped):
    spec = get_law(law)
    group = "group" if grouped else None
    try:
        out = _quiet(validate, df, spec, group=group)
    except DataError:
        return
    for col in (*spec.covariates, spec.target):
        values = out[col].to_numpy()
        assert values.dtype == float and np.isfinite(values).all() and (values > 0).all()
    try:
        inputs = _quiet(prepare, df, law, group=group)
    except DataError:
        return
    assert np.isfinite(inputs.y).all() and all(np.isfinite(v).all() for v in inputs.x.values())


@FUZZ
@given(df=frames(), query=st.text(max_size=30))
def test_queries_raise_only_data_errors(df, query):
    try:
        out = select_rows(df, query)
    except DataError:
        return
    assert len(out) > 0
