"""Generate ``demo.csv``, the small synthetic dataset shipped inside the package.

The demo lets examples, docs and tests fit a law without any network or data directory. It is
drawn from the Chinchilla law with the parameters of Besiroglu et al.'s (2024) refit of Hoffmann
et al.'s data,

.. math:: L(N, D) = E + A N^{-\\alpha} + B D^{-\\beta},

with E = 1.817, A = 482.0, B = 2085, alpha = 0.348, beta = 0.366, on an IsoFLOP-like grid:
8 model sizes log-spaced from 5e7 to 3e9 parameters (rounded to 3 significant figures), each
trained at 6 token counts with tokens-per-parameter ratios log-spaced from 5 to 80 (48 runs).
Compute is ``C = 6 N D``. Noise is added to the log loss, ``log L_obs = log L + 0.01 t_5`` with
``t_5`` a Student-t draw with 5 degrees of freedom (heavier tails than a normal, as real runs
show), and the loss is rounded to 4 decimals. The generator is deterministic (numpy
``default_rng`` with a fixed seed), so re-running it reproduces the shipped file byte for byte;
``tests/test_datasets.py`` checks that.

Run from the repository root::

    python datasets/make_demo.py            # rewrites datasets/demo.csv
    python datasets/make_demo.py out.csv    # writes elsewhere

The values are synthetic: they are not a copy of any published measurement.

References
----------
Besiroglu, Erdil, Barnett, You (2024), "Chinchilla Scaling: A replication attempt",
arXiv:2404.10102.
Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", arXiv:2203.15556.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["TRUE_PARAMS", "SEED", "make_demo", "write_demo"]

#: Besiroglu et al. (2024) refit of the Chinchilla law (REFERENCE.md, section 2).
TRUE_PARAMS = {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
#: Seed of ``numpy.random.default_rng``; changing it changes the shipped file.
SEED = 20240416
NOISE_SCALE = 0.01  # scale of the Student-t noise on log loss
NOISE_DF = 5.0  # its degrees of freedom
MODEL_SIZES = (5e7, 3e9, 8)  # first, last, count (log-spaced)
TOKENS_PER_PARAM = (5.0, 80.0, 6)  # first, last, count (log-spaced)

DEFAULT_PATH = Path(__file__).resolve().with_name("demo.csv")


def _round_sig(x: np.ndarray, digits: int = 3) -> np.ndarray:
    """Round positive values to ``digits`` significant figures, returned as int64."""
    exponent = np.floor(np.log10(x)) - (digits - 1)
    return (np.round(x / 10.0**exponent) * 10.0**exponent).round().astype(np.int64)


def make_demo(seed: int = SEED) -> pd.DataFrame:
    """Build the demo frame (columns ``N``, ``D``, ``C``, ``loss``).

    Parameters
    ----------
    seed : int, default SEED
        Seed of ``numpy.random.default_rng``. The shipped file uses the default.

    Returns
    -------
    pandas.DataFrame
        48 rows: ``N`` and ``D`` as integers, ``C = 6 N D`` in FLOP, ``loss`` in nats/token
        rounded to 4 decimals.

    Examples
    --------
    >>> frame = make_demo()
    >>> frame.shape
    (48, 4)
    """
    rng = np.random.default_rng(seed)
    sizes = _round_sig(np.geomspace(*MODEL_SIZES[:2], num=MODEL_SIZES[2]))
    ratios = np.geomspace(*TOKENS_PER_PARAM[:2], num=TOKENS_PER_PARAM[2])
    n = np.repeat(sizes, ratios.size)
    d = _round_sig(n * np.tile(ratios, sizes.size))
    n_float, d_float = n.astype(float), d.astype(float)
    p = TRUE_PARAMS
    mean_loss = p["E"] + p["A"] * n_float ** -p["alpha"] + p["B"] * d_float ** -p["beta"]
    noise = NOISE_SCALE * rng.standard_t(NOISE_DF, size=n.size)
    loss = np.round(np.exp(np.log(mean_loss) + noise), 4)
    return pd.DataFrame({"N": n, "D": d, "C": 6.0 * n_float * d_float, "loss": loss})


def write_demo(path: str | Path = DEFAULT_PATH, seed: int = SEED) -> Path:
    """Write the demo CSV to ``path`` (default: ``datasets/demo.csv`` beside this script).

    Parameters
    ----------
    path : str or Path, default ``datasets/demo.csv``
        Where to write.
    seed : int, default SEED
        Passed to :func:`make_demo`.

    Returns
    -------
    Path
        The path written.
    """
    path = Path(path)
    make_demo(seed).to_csv(path, index=False, lineterminator="\n")
    return path


if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit("usage: python datasets/make_demo.py [OUTPUT.csv]")
    written = write_demo(sys.argv[1] if len(sys.argv) == 2 else DEFAULT_PATH)
    sys.stdout.write(f"wrote {written}\n")
