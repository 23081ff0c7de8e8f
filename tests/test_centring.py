"""Partial centring of pooled parameters and the choice of mass matrix (bayes_scaling.engine)."""

import dataclasses
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayes_scaling import engine, inference
from bayes_scaling.engine.sampler import _potential

POOLING = {"E": "pooled", "A": "shared", "alpha": "shared"}


def grouped_curves(groups=10, n=12, seed=0):
    """Power laws over compute whose irreducible loss differs by group (5% spread)."""
    rng = np.random.default_rng(seed)
    C = np.geomspace(1e15, 1e21, n)
    rows = []
    for g in range(groups):
        E = 1.8 * np.exp(0.05 * rng.standard_normal())
        loss = (E + 1.5 * (C / 1e15) ** -0.3) * np.exp(0.01 * rng.standard_normal(n))
        rows += [(f"g{g}", c, v) for c, v in zip(C, loss)]
    return pd.DataFrame(rows, columns=["run", "C", "loss"])


def test_dense_mass_only_for_small_models():
    auto = engine.SamplerSettings()
    assert auto.dense_for(7) and auto.dense_for(engine.DENSE_MASS_MAX_DIM)
    assert not auto.dense_for(engine.DENSE_MASS_MAX_DIM + 1)
    assert engine.SamplerSettings(dense_mass=True).dense_for(500)
    assert not engine.SamplerSettings(dense_mass=False).dense_for(3)


def test_centring_map_inverts_and_its_log_jacobian_is_exact():
    inputs = inference.prepare(grouped_curves(groups=4, n=8), "power_law", group="run", pooling=POOLING)
    xp, yp, gp, mask = engine.pad_inputs(inputs.x, inputs.y, inputs.group_index, 8 * 4)
    args = (xp, yp, gp, mask, {k: np.float32(v) for k, v in inputs.spec.reference_map.items()})
    model = engine._counted(inputs.spec)
    info, unravel = engine._structure(model, args, jax.random.PRNGKey(0))
    blocks = engine._pooled_blocks(inputs.spec, info)
    assert len(blocks) == 1 and blocks[0][2].shape == (4,)  # E only: 4 group offsets
    d = jax.flatten_util.ravel_pytree(info.param_info.z)[0].shape[0]
    rng = np.random.default_rng(1)
    u = jnp.asarray(rng.normal(size=d), jnp.float32)
    # a Hessian whose offset curvatures give lam = 0, 0.5, 0.9 and 0.99 (1 - 1/h)
    hessian = jnp.eye(d).at[blocks[0][2], blocks[0][2]].set(jnp.asarray([0.5, 2.0, 10.0, 100.0]))
    centring = engine._PartialCentring(blocks, hessian)
    np.testing.assert_allclose(np.asarray(centring.lams[0]), [0.0, 0.5, 0.9, 0.99], rtol=1e-6)
    w = centring.to_w(u)
    back, log_det = centring.to_u(w)
    np.testing.assert_allclose(np.asarray(back), np.asarray(u), rtol=1e-5, atol=1e-5)
    jac = jax.jacfwd(lambda ww: centring.to_u(ww)[0])(w)
    np.testing.assert_allclose(float(log_det), float(jnp.linalg.slogdet(jac)[1]), rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore:max R-hat:RuntimeWarning")  # agreement is checked below
def test_partial_centring_leaves_the_posterior_unchanged():
    inputs = inference.prepare(grouped_curves(), "power_law", group="run", pooling=POOLING)
    budget = dict(num_chains=2, num_warmup=300, num_samples=500)
    fits, stats = {}, {}
    for centring in (True, False):
        settings = engine.SamplerSettings(partial_centring=centring, pilot=False, **budget)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # short chains; the comparison is the test
            groups = inference.sample(inputs, jax.random.PRNGKey(3), settings, prior_samples=0)
        fits[centring], stats[centring] = groups["posterior"], groups["sample_stats"]
    # the two samplers really differ (same key: without centring the draws would be identical)
    assert not np.allclose(fits[True]["E"].values, fits[False]["E"].values)
    for name in ("E", "E_pop_loc", "E_pop_sd", "A", "alpha"):
        a = fits[True][name].values.reshape(1000, -1)
        b = fits[False][name].values.reshape(1000, -1)
        # medians agree within the 0.5 posterior SD
        assert np.all(np.abs(np.median(a, 0) - np.median(b, 0)) < 0.5 * b.std(axis=0)), name
        if name != "E_pop_sd":  # spreads within 25% (about 4 Monte Carlo SEs at these ESS)
            ratio = a.std(axis=0) / b.std(axis=0)
            assert np.all((ratio > 0.8) & (ratio < 1.25)), name
    # the population scale is where the non-centred form struggles (divergences, low ESS, its
    # upper tail short: SD 0.0122 against 0.0135 in 4 x 4,000 draws with 43 divergences, where
    # the centred run had none); here the partially centred run has none and more ESS
    ours = inference.diagnostics(fits[True], stats[True], ["E_pop_sd"])
    theirs = inference.diagnostics(fits[False], stats[False], ["E_pop_sd"])
    assert ours["divergences"] == 0
    assert ours["min_ess"] > theirs["min_ess"]


def test_bad_pilot_is_refused():
    with pytest.raises(ValueError, match="pilot must be True, False or 'auto'"):
        engine.SamplerSettings(pilot="yes")


def test_bad_whitening_is_refused():
    with pytest.raises(ValueError, match="whitening must be one of auto, full, diagonal"):
        engine.SamplerSettings(whitening="dense")


@pytest.mark.parametrize("groups, expected", [(4, "locations"), (0, "full")])
def test_auto_whitening_is_by_locations_for_grouped_fits(groups, expected):
    data = grouped_curves(groups=max(groups, 1), n=8)
    inputs = inference.prepare(
        data if groups else data.drop(columns=["run"]),
        "power_law",
        group="run" if groups else None,
        pooling=POOLING if groups else None,
    )
    resolved = engine.resolve_settings(inputs.spec, engine.SamplerSettings(), "nuts")
    assert resolved.whitening == expected
    assert engine.resolve_settings(inputs.spec, engine.SamplerSettings(whitening="full"), "nuts").whitening == "full"


def _short_fits(inputs, seed, variants, num_samples=500):
    """The posterior of ``inputs`` under each variant of ``SamplerSettings`` (name -> options),
    2 x ``num_samples`` draws each."""
    budget = dict(num_chains=2, num_warmup=300, num_samples=num_samples)
    fits = {}
    for name, options in variants.items():
        settings = engine.SamplerSettings(**options, **budget)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # short chains; the comparison is the test
            fits[name] = inference.sample(inputs, jax.random.PRNGKey(seed), settings, prior_samples=0)["posterior"]
    return fits


def _assert_one_posterior(fit, reference, names, log_names=()):
    """Different draws of one posterior: medians within half a posterior SD, spreads within 25%
    (Monte Carlo errors of a few hundredths of an SD); scales in ``log_names`` compared on the
    log scale, where they are near normal."""
    assert not np.allclose(fit["E"].values, reference["E"].values)
    for name in names:
        a = fit[name].values.reshape(fit.sizes["chain"] * fit.sizes["draw"], -1)
        b = reference[name].values.reshape(reference.sizes["chain"] * reference.sizes["draw"], -1)
        if name in log_names:
            a, b = np.log(a), np.log(b)
        assert np.all(np.abs(np.median(a, 0) - np.median(b, 0)) < 0.5 * b.std(axis=0)), name
        ratio = a.std(axis=0) / b.std(axis=0)
        assert np.all((ratio > 0.75) & (ratio < 1.25)), name


def test_diagonal_whitening_scaled_offsets_and_the_default_leave_the_posterior_unchanged():
    """The grouped fit's coordinate choices against the model's own non-centred coordinates
    whitened by the full Hessian (no offset scaling): the offsets rescaled with the population
    scale and scaled by the Hessian's diagonal, and the default (rescaled offsets, population
    locations whitened together, re-whitened half-way through warmup where a location is tied
    to its offsets, as it is here). Each samples the reference's posterior
    (:func:`_assert_one_posterior`); one reference fit serves every comparison. The
    re-whitening is the same map with ``pilot=True`` (a pilot run's draws in place of the
    warmup's); its draws are compared on a Gaussian below. 2 x 1,000 draws: the spread of
    ``E_pop_loc``, heavy-tailed with four groups, moved by up to 30% between runs of 2 x 500
    (``benchmarks/RESULTS.md``)."""
    inputs = inference.prepare(grouped_curves(groups=4), "power_law", group="run", pooling=POOLING)
    variants = {
        "reference": {"whitening": "full", "offset_scaling": 0.0, "pilot": False},
        "diagonal": {"whitening": "diagonal", "offset_scaling": 0.5, "pilot": False},
        "default": {},
    }
    fits = _short_fits(inputs, 5, variants, num_samples=1000)
    assert fits["diagonal"].attrs["whitening"] == "diagonal"
    assert fits["default"].attrs["whitening"] == "locations"
    seen = fits["default"].attrs["pilot_correlation"]  # the default's choice half-way, recorded
    assert seen > engine.PILOT_TIE and fits["default"].attrs["pilot"] == 1
    assert "offset_scaling" not in fits["default"].attrs  # no choice of power by default
    names = ("E", "E_pop_loc", "E_pop_sd", "A", "alpha")
    for variant in ("diagonal", "default"):
        _assert_one_posterior(fits[variant], fits["reference"], names, log_names=("E_pop_sd",))


def _four_group_structure():
    inputs = inference.prepare(grouped_curves(groups=4, n=8), "power_law", group="run", pooling=POOLING)
    xp, yp, gp, mask = engine.pad_inputs(inputs.x, inputs.y, inputs.group_index, 8 * 4)
    args = (xp, yp, gp, mask, {k: np.float32(v) for k, v in inputs.spec.reference_map.items()})
    info, _ = engine._structure(engine._counted(inputs.spec), args, jax.random.PRNGKey(0))
    return inputs, info


def test_scaled_offsets_invert_and_their_log_jacobian_is_exact():
    inputs, info = _four_group_structure()
    blocks = engine._pooled_blocks(inputs.spec, info)
    assert inputs.spec.num_groups == 4 and len(blocks) == 1
    d = jax.flatten_util.ravel_pytree(info.param_info.z)[0].shape[0]
    u = jnp.asarray(np.random.default_rng(2).normal(size=d), jnp.float32)
    information = jnp.asarray([[0.0, 1.0, 10.0, 100.0]], jnp.float32)
    for power in (0.5, 1.0):
        scaled = engine._ScaledOffsets(blocks, information, power)
        w = scaled.to_w(u)
        back, log_det = scaled.to_u(w)
        np.testing.assert_allclose(np.asarray(back), np.asarray(u), rtol=1e-5, atol=1e-6)
        jac = jax.jacfwd(lambda ww: scaled.to_u(ww)[0])(w)
        np.testing.assert_allclose(float(log_det), float(jnp.linalg.slogdet(jac)[1]), rtol=1e-4, atol=1e-5)
        # only the offsets move, by (1 + sigma^2 I)^(power/2); a group without information keeps z
        sigma = float(jnp.exp(u[blocks[0][1]]))
        expected = (1 + sigma**2 * np.asarray(information[0])) ** (power / 2)
        np.testing.assert_allclose(np.asarray(w[blocks[0][2]] / u[blocks[0][2]]), expected, rtol=1e-5)
        others = np.setdiff1d(np.arange(d), blocks[0][2])
        np.testing.assert_array_equal(np.asarray(w[others]), np.asarray(u[others]))


def test_rewhitened_coordinates_invert_and_carry_the_density():
    """The re-whitened chains' coordinates ``y`` (offsets rescaled with another power, in the
    first run's whitened basis): ``to_z`` inverts ``to_y``, and the potential of ``y`` is the potential of ``z`` plus the log Jacobian
    of the map (up to a constant), so that draws of ``y`` mapped back are draws of ``z``. Every
    kind of ``scale_w``: a vector, a matrix and a location block."""
    from bayes_scaling.engine.sampler import RewhitenedCoordinates, _whitened_potential
    from bayes_scaling.engine.whitening import LocationBlock, scaled, unscaled

    inputs, info = _four_group_structure()
    xp, yp, gp, mask = engine.pad_inputs(inputs.x, inputs.y, inputs.group_index, 8 * 4)
    args = (xp, yp, gp, mask, {k: np.float32(v) for k, v in inputs.spec.reference_map.items()})
    potential = _potential(info, engine._structure(engine._counted(inputs.spec), args, jax.random.PRNGKey(0))[1], args)
    blocks = engine._pooled_blocks(inputs.spec, info)
    d = jax.flatten_util.ravel_pytree(info.param_info.z)[0].shape[0]
    rng = np.random.default_rng(3)
    information = jnp.asarray([[2.0, 20.0, 200.0, 2000.0]], jnp.float32)
    centring = engine._ScaledOffsets(blocks, information, 0.5)
    mode_w = jnp.asarray(0.1 * rng.normal(size=d), jnp.float32)
    vector = jnp.asarray(rng.uniform(0.2, 1.0, d), jnp.float32)
    matrix = jnp.diag(vector) + jnp.asarray(0.05 * np.tril(rng.normal(size=(d, d)), -1), jnp.float32)
    block = jnp.asarray([[0.5, 0.0], [0.2, 0.3]], jnp.float32)
    located = LocationBlock(vector.at[jnp.asarray([0, 1])].set(0.0), block, (0, 1))
    zs = jnp.asarray(0.5 * rng.normal(size=(5, d)), jnp.float32)
    for scale_w in (vector, matrix, located):
        np.testing.assert_allclose(unscaled(scale_w, scaled(scale_w, zs[0])), zs[0], rtol=1e-4, atol=1e-5)
        coords = RewhitenedCoordinates(potential, centring, mode_w, scale_w, 0.75)
        potential_z = _whitened_potential(potential, centring, mode_w, scale_w)
        gaps = []
        for z in zs:
            y = coords.to_y(z)
            np.testing.assert_allclose(coords.to_z(y), z, rtol=1e-4, atol=1e-5)
            log_jac = jnp.linalg.slogdet(jax.jacfwd(coords.to_y)(z))[1]
            gaps.append(float(coords.potential(y) - potential_z(z) - log_jac))
        np.testing.assert_allclose(gaps, gaps[0], atol=2e-3 * max(1.0, abs(gaps[0])))
        assert not np.allclose(coords.to_y(zs[0]), zs[0], atol=1e-3)  # a real change
        # at the first run's own power (as where a run chose it at the mode) the map is z itself
        same = RewhitenedCoordinates(potential, centring, mode_w, scale_w, jnp.float32(0.5))
        np.testing.assert_allclose(same.to_y(zs[0]), zs[0], rtol=1e-4, atol=1e-5)


def test_offset_information_is_the_datas_curvature_at_scale_one():
    """Each group's information about its pooled value: the potential's curvature in ``z_g`` at
    population scale one, less the prior's 1 (checked against autodiff's Hessian there); positive,
    and larger with three times the runs per group."""
    found = {}
    for n in (8, 24):
        inputs = inference.prepare(grouped_curves(groups=4, n=n), "power_law", group="run", pooling=POOLING)
        size = engine.bucket_size(len(inputs.y))
        xp, yp, gp, mask = engine.pad_inputs(inputs.x, inputs.y, inputs.group_index, size)
        args = (xp, yp, gp, mask, {k: np.float32(v) for k, v in inputs.spec.reference_map.items()})
        info, unravel = engine._structure(engine._counted(inputs.spec), args, jax.random.PRNGKey(0))
        potential = _potential(info, unravel, args)
        mode = find_mode(potential, info)
        blocks = engine._pooled_blocks(inputs.spec, info)
        # compiled, as in a fit (op by op the two curvatures take several times longer)
        found[n] = np.asarray(jax.jit(partial(engine.offset_information, blocks, potential))(mode))
        assert found[n].shape == (1, 4) and np.all(np.isfinite(found[n])) and np.all(found[n] > 0)
        (_, si, zi, _, t_sd), = blocks
        at_one = mode.at[si].set(t_sd.inv(1.0)).at[zi].set(t_sd(mode[si]) * mode[zi])
        exact = np.diagonal(np.asarray(jax.jit(jax.hessian(potential))(at_one)))[zi] - 1.0
        np.testing.assert_allclose(found[n][0], exact, rtol=0.02)
    assert np.all(found[24] > 1.2 * found[8])


def find_mode(potential, info):
    from bayes_scaling.laplace import find_map

    u0 = jax.flatten_util.ravel_pytree(info.param_info.z)[0]
    return find_map(potential, jnp.zeros_like(u0)).u


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "half"])
def test_bad_offset_scaling_is_refused(bad):
    with pytest.raises(ValueError, match="offset_scaling must be a number between 0 and 1"):
        engine.SamplerSettings(offset_scaling=bad)


@pytest.mark.parametrize("bad", [0, -1.0, True, "high"])
def test_bad_tied_offsets_threshold_is_refused(bad):
    with pytest.raises(ValueError, match="tied_offsets_above must be a positive number or None"):
        engine.SamplerSettings(tied_offsets_above=bad)


def test_offset_tie_figure_is_the_median_spread_squared_information_at_its_largest():
    """For each pooled parameter the median over groups of ``(sigma * std(z))**2 I_g`` at the
    mode, and the largest over parameters; the choice of power compares it with the threshold
    only where the run may re-whiten."""
    from numpyro.distributions.transforms import ExpTransform

    from bayes_scaling.engine.centring import offset_tie_figure
    from bayes_scaling.engine.sampler import chooses_offset_power, offset_power

    # two pooled parameters, three groups: [loc, log sd, z1, z2, z3] each
    mode = jnp.asarray([0.0, np.log(0.5), 1.0, -1.0, 0.5, 0.0, np.log(2.0), 0.1, 0.2, 0.3])
    blocks = [(0, 1, np.arange(2, 5), None, ExpTransform()), (5, 6, np.arange(7, 10), None, ExpTransform())]
    information = jnp.asarray([[10.0, 100.0, 1000.0], [1.0, 2.0, 3.0]])
    spreads = [0.5 * np.std([1.0, -1.0, 0.5]), 2.0 * np.std([0.1, 0.2, 0.3])]
    expected = max(np.median(s**2 * np.asarray(i)) for s, i in zip(spreads, information.tolist()))
    np.testing.assert_allclose(float(offset_tie_figure(blocks, information, mode)), expected, rtol=1e-5)
    static = engine.SamplerSettings(pilot="auto", trajectory_length=3.0, tied_offsets_above=2e3)
    assert chooses_offset_power(static)
    assert not chooses_offset_power(engine.SamplerSettings(pilot="auto", trajectory_length=3.0))
    assert not chooses_offset_power(dataclasses.replace(static, tied_offsets_above=None))
    assert not chooses_offset_power(dataclasses.replace(static, pilot=False))
    assert not chooses_offset_power(dataclasses.replace(static, trajectory_length=None))  # NUTS
    low = dataclasses.replace(static, tied_offsets_above=1.01 * expected)
    high = dataclasses.replace(static, tied_offsets_above=0.99 * expected)
    assert float(offset_power(low, blocks, information, mode)) == 0.5
    assert float(offset_power(high, blocks, information, mode)) == 0.75


def test_location_block_is_the_laplace_covariance_of_the_locations():
    """The block whitening moves the chosen coordinates by the Cholesky factor of their Laplace
    covariance (the inverse Hessian's block) and scales the others by the given diagonal; it
    survives a compiled stage boundary (a pytree with a static index); an unusable Hessian
    leaves the diagonal."""
    from bayes_scaling.engine.whitening import location_whitening, scaled

    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 6))
    hessian = jnp.asarray(a @ a.T + 6 * np.eye(6))
    diagonal = jnp.asarray(rng.uniform(0.5, 2.0, 6))
    index = np.array([1, 4, 2])
    scale = location_whitening(hessian, diagonal, index)
    block = np.asarray(scale.block)
    covariance = np.linalg.inv(np.asarray(hessian))[np.ix_(index, index)]
    np.testing.assert_allclose(block @ block.T, covariance, rtol=1e-4)
    assert np.allclose(np.triu(block, 1), 0.0)
    z = jnp.asarray(rng.standard_normal(6))
    dense = np.diag(np.asarray(diagonal))
    dense[np.ix_(index, index)] = block
    np.testing.assert_allclose(scaled(scale, z), dense @ np.asarray(z), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(scaled)(scale, z), dense @ np.asarray(z), rtol=1e-5, atol=1e-6)
    unusable = location_whitening(jnp.zeros((6, 6)), diagonal, index)
    np.testing.assert_allclose(scaled(unusable, z), np.asarray(diagonal * z), rtol=1e-6)


def test_location_whitening_leaves_the_posterior_unchanged():
    """The grouped fit's default coordinates (population locations whitened together) and the
    diagonal ones sample one posterior (:func:`_assert_one_posterior`), with every parameter of
    the law pooled."""
    pooled = {"E": "pooled", "A": "pooled", "alpha": "pooled"}
    inputs = inference.prepare(grouped_curves(groups=4), "power_law", group="run", pooling=pooled)
    # the choice half-way is not what this compares: both run without it (one program each)
    fits = _short_fits(inputs, 7, {w: {"whitening": w, "pilot": False} for w in ("locations", "diagonal")})
    for whitening, posterior in fits.items():
        assert posterior.attrs["whitening"] == whitening
        # a grouped fit's chains aim lower from half-way through warmup, and the fit says so
        assert posterior.attrs["target_accept_prob"] == 0.9
        assert posterior.attrs["adaptation_target"] == 0.8
    names = ("E", "E_pop_loc", "A_pop_loc", "alpha_pop_loc", "A", "alpha")
    _assert_one_posterior(fits["locations"], fits["diagonal"], names)


@pytest.mark.parametrize(
    "groups, pooling, options, expected",
    [
        (4, POOLING, {}, "auto"),  # static HMC, 4 groups, 4 offsets: the choice half-way
        (2, POOLING, {}, False),  # two groups: re-whitening mixed worse there
        (4, POOLING, {"trajectory_length": None}, False),  # NUTS: no choice half-way
        (4, POOLING, {"pilot": True}, True),  # asked for: always
        (4, POOLING, {"pilot": False}, False),
        (80, {"E": "pooled", "A": "pooled", "alpha": "pooled"}, {}, False),  # 240 offsets, 400 draws read
        (40, POOLING, {}, "auto"),  # 40 offsets
        (4, {"E": "shared", "A": "shared", "alpha": "shared"}, {}, False),  # nothing pooled
    ],
)
def test_where_the_choice_half_way_applies(groups, pooling, options, expected):
    inputs = inference.prepare(grouped_curves(groups=groups, n=8), "power_law", group="run", pooling=pooling)
    resolved = engine.resolve_settings(inputs.spec, engine.SamplerSettings(**options), "nuts")
    assert resolved.pilot == expected
    one_curve = inference.prepare(grouped_curves(groups=1, n=8).drop(columns=["run"]), "power_law")
    assert engine.resolve_settings(one_curve.spec, engine.SamplerSettings(), "nuts").pilot is False


def _gaussian(correlation: float):
    """A 4-dimensional Gaussian potential whose coordinate 0 (a "location") has the given
    correlation with each of coordinates 1-3 (its "offsets"), and its covariance: that of
    ``x_0 = u``, ``x_j = c u + sqrt(1 - c^2) e_j`` with independent standard normals."""
    cov = np.eye(4)
    cov[0, 1:] = cov[1:, 0] = correlation
    cov[1:, 1:] += correlation**2 * (1 - np.eye(3))
    precision = jnp.asarray(np.linalg.inv(cov), dtype=jnp.float32)
    return (lambda z: 0.5 * z @ precision @ z), cov


def _gated_run(potential, pilot, read_condition=False, below=False):
    from bayes_scaling.engine.chains import _nuts

    settings = engine.SamplerSettings(
        num_chains=2, num_warmup=300, num_samples=1000, trajectory_length=3.0, pilot=pilot,
        chain_method="sequential", adapt_below_target=below,
    )
    ties = ((0, np.array([1, 2, 3])),)
    run = jax.jit(lambda key: _nuts(potential, 4, key, settings, jnp.float32, ties, None, read_condition))
    return jax.device_get(run(jax.random.PRNGKey(3)))


@pytest.mark.parametrize("below", [False, True])
def test_without_a_tie_the_choice_half_way_goes_on_with_the_plain_run_draw_for_draw(below):
    """Also where the chains aim lower from the half on (``adapt_below_target``, a grouped
    fit's default): both runs switch there, and aiming lower adapts a longer step."""
    potential, _ = _gaussian(0.0)
    z, stats = _gated_run(potential, "auto", below=below)
    plain, plain_stats = _gated_run(potential, False, below=below)
    assert stats["pilot_correlation"] < engine.PILOT_TIE
    assert 1 <= stats["pilot_condition"] < engine.PILOT_CONDITION
    np.testing.assert_array_equal(z, plain)
    np.testing.assert_array_equal(stats["num_steps"], plain_stats["num_steps"])
    if below:
        at_target = _gated_run(potential, False)[1]
        assert np.all(plain_stats["step_size"] > at_target["step_size"])
        assert plain_stats["num_steps"].mean() < at_target["num_steps"].mean()


def test_ill_conditioned_draws_without_a_tie_are_re_whitened_where_the_run_reads_them():
    """Two "offsets" correlated 0.999 with each other and not with their "location": no tie,
    but their correlation matrix's condition number (about 2,000) is beyond
    ``PILOT_CONDITION``. Where the run reads that figure (a parameter centred about its
    groups' mean, from four groups) the choice half-way re-whitens, and the Gaussian is drawn
    correctly; where it does not, the run goes on as ``pilot=False`` makes it, draw for draw."""
    cov = np.eye(4)
    cov[1, 2] = cov[2, 1] = 0.999
    precision = jnp.asarray(np.linalg.inv(cov), dtype=jnp.float32)
    potential = lambda v: 0.5 * v @ precision @ v  # noqa: E731
    went_on, went_on_stats = _gated_run(potential, "auto")
    np.testing.assert_array_equal(went_on, _gated_run(potential, False)[0])
    assert not went_on_stats["pilot_rewhitened"]
    z, stats = _gated_run(potential, "auto", read_condition=True)
    assert stats["pilot_correlation"] < engine.PILOT_TIE
    assert stats["pilot_condition"] > engine.PILOT_CONDITION and stats["pilot_rewhitened"]
    draws = z.reshape(-1, 4)
    # 2 x 1000 draws of a unit Gaussian (correlated pair included): Monte Carlo errors of a
    # few hundredths
    assert np.all(np.abs(draws.mean(0)) < 0.2)
    assert np.all(np.abs(draws.std(0) - 1) < 0.15)
    assert abs(np.corrcoef(draws[:, 1], draws[:, 2])[0, 1] - 0.999) < 0.005


@pytest.mark.parametrize("pilot", ["auto", True])
def test_with_a_tie_the_run_is_re_whitened_and_draws_the_same_distribution(pilot):
    """The choice half-way (``"auto"``) and the pilot run (``True``) re-whiten a tied Gaussian
    and draw it correctly."""
    tie = 0.95
    potential, cov = _gaussian(tie)
    sd = np.sqrt(np.diag(cov))
    z, stats = _gated_run(potential, pilot)
    plain, _ = _gated_run(potential, False)
    if pilot == "auto":
        assert stats["pilot_correlation"] > engine.PILOT_TIE
    assert not np.array_equal(z, plain)  # another run: the re-whitened one
    draws = z.reshape(-1, 4)
    # 2 x 1000 draws of a Gaussian: Monte Carlo errors of a few hundredths of an SD
    assert np.all(np.abs(draws.mean(0)) < 0.2 * sd)
    assert np.all(np.abs(draws.std(0) / sd - 1) < 0.15)
    assert np.abs(np.corrcoef(draws.T)[0, 1:] - tie).max() < 0.05


def test_pilot_whitening_reads_the_chains_spread_about_their_own_means():
    """Chains read during warmup may sit apart; their distance is not the posterior's width.
    The whitening's covariance is the chains' pooled covariance about their own means (its
    correlations shrunk by ``PILOT_SHRINK``), its centre the mean of all draws."""
    from bayes_scaling.engine.chains import PILOT_SHRINK, _pilot_whitening

    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 0.25]])
    shifts = np.array([[-30.0, 0, 0], [-10, 0, 0], [10, 0, 0], [30, 0, 0]])  # chains apart on x0
    draws = rng.multivariate_normal(np.zeros(3), cov, size=(4, 500)) + shifts[:, None, :]
    mean, factor = jax.device_get(_pilot_whitening(jnp.asarray(draws, jnp.float32), jnp.float32))

    within = (draws - draws.mean(1, keepdims=True)).reshape(-1, 3)
    expected = within.T @ within / (4 * 499)
    sd = np.sqrt(np.diag(expected))
    corr = (1 - PILOT_SHRINK) * expected / np.outer(sd, sd) + PILOT_SHRINK * np.eye(3)
    np.testing.assert_allclose(factor @ factor.T, np.outer(sd, sd) * corr, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean, draws.mean((0, 1)), atol=1e-4)
    # about the common mean the first coordinate would read a variance of about 500, not 1
    assert abs((factor @ factor.T)[0, 0] - 1.0) < 0.1 and draws[..., 0].var() > 400


def test_mean_centred_offsets_invert_and_their_log_jacobian_is_exact():
    """A pooled parameter moved centred about the groups' mean: ``to_u`` inverts ``to_w``, its
    log Jacobian is the exact one less the dropped constant ``-log(G) / 2``, the elementwise
    form agrees with the block-by-block one, and the prior's offsets split into the location's
    ``m`` (minus ``sqrt(G)`` times their mean) and the centred values. Not chosen, the
    parameter moves as :class:`_ScaledOffsets` moves it."""
    from bayes_scaling.engine.centring import _MeanCentredOffsets

    inputs, info = _four_group_structure()
    blocks = engine._pooled_blocks(inputs.spec, info)
    (li, si, zi, _, t_sd), = blocks
    d = jax.flatten_util.ravel_pytree(info.param_info.z)[0].shape[0]
    u = jnp.asarray(np.random.default_rng(4).normal(size=d), jnp.float32)
    information = jnp.asarray([[0.0, 1.0, 10.0, 100.0]], jnp.float32)
    for centred in (True, False):
        coords = _MeanCentredOffsets(blocks, information, 0.5, jnp.asarray([centred]))
        w = coords.to_w(u)
        back, log_det = coords.to_u(w)
        np.testing.assert_allclose(np.asarray(back), np.asarray(u), rtol=1e-5, atol=1e-5)
        by_blocks, log_det_blocks = coords._to_u_by_blocks(w)
        np.testing.assert_allclose(np.asarray(by_blocks), np.asarray(back), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(log_det_blocks), float(log_det), rtol=1e-5, atol=1e-5)
        jac = jax.jacfwd(lambda ww, c=coords: c.to_u(ww)[0])(w)
        constant = -0.5 * np.log(4) if centred else 0.0
        np.testing.assert_allclose(
            float(log_det) + constant, float(jnp.linalg.slogdet(jac)[1]), rtol=1e-4, atol=1e-4
        )
        if centred:
            sigma = float(t_sd(u[si]))
            np.testing.assert_allclose(np.asarray(w[zi]), np.asarray(u[li] + sigma * u[zi]), rtol=1e-5)
            np.testing.assert_allclose(float(w[li]), -2.0 * float(jnp.mean(u[zi])), rtol=1e-5)
        else:
            plain = engine._ScaledOffsets(blocks, information, 0.5).to_w(u)
            np.testing.assert_allclose(np.asarray(w), np.asarray(plain), rtol=1e-6)


def test_mean_centring_is_chosen_by_each_parameters_tie_figure_from_three_to_ten_groups():
    """Each pooled parameter whose tie figure at the mode exceeds ``mean_centred_above`` moves
    centred; none with the setting None, and none outside ``MEAN_CENTRING_MIN_GROUPS`` to
    ``MEAN_CENTRING_MAX_GROUPS`` groups."""
    from numpyro.distributions.transforms import ExpTransform

    from bayes_scaling.engine.centring import offset_tie_figures
    from bayes_scaling.engine.sampler import mean_centred

    mode = jnp.asarray([0.0, np.log(0.5), 1.0, -1.0, 0.5, 0.0, np.log(2.0), 0.1, 0.2, 0.3])
    blocks = [(0, 1, np.arange(2, 5), None, ExpTransform()), (5, 6, np.arange(7, 10), None, ExpTransform())]
    information = jnp.asarray([[10.0, 100.0, 1000.0], [1.0, 2.0, 3.0]])
    figures = np.asarray(offset_tie_figures(blocks, information, mode))
    assert figures[0] > 1 > figures[1]
    settings = engine.SamplerSettings(mean_centred_above=1.0)
    np.testing.assert_array_equal(np.asarray(mean_centred(settings, blocks, information, mode)), [True, False])
    assert mean_centred(engine.SamplerSettings(mean_centred_above=None), blocks, information, mode) is None
    for groups in (engine.MEAN_CENTRING_MIN_GROUPS - 1, engine.MEAN_CENTRING_MAX_GROUPS + 1):
        outside = [(0, 1, np.arange(2, 2 + groups), None, ExpTransform())]
        assert mean_centred(settings, outside, jnp.ones((1, groups)), jnp.zeros(2 + groups)) is None
    with pytest.raises(ValueError, match="mean_centred_above must be a positive number or None"):
        engine.SamplerSettings(mean_centred_above=0.0)


def test_the_condition_number_is_read_where_a_parameter_is_centred_from_four_groups():
    from types import SimpleNamespace

    from bayes_scaling.engine.sampler import reads_condition

    chosen, none = jnp.asarray([True, False]), jnp.asarray([False, False])
    enough = SimpleNamespace(num_groups=engine.PILOT_CONDITION_MIN_GROUPS)
    fewer = SimpleNamespace(num_groups=engine.PILOT_CONDITION_MIN_GROUPS - 1)
    assert bool(reads_condition(enough, chosen))
    assert not bool(reads_condition(enough, none))
    assert reads_condition(fewer, chosen) is False
    assert reads_condition(enough, None) is False


def test_mean_centred_coordinates_leave_the_posterior_unchanged():
    """Four groups whose own runs pin down their irreducible loss, sampled with ``E`` centred
    about the groups' mean (forced by a tiny threshold) against the model's own non-centred
    coordinates whitened by the full Hessian: one posterior (:func:`_assert_one_posterior`)."""
    inputs = inference.prepare(grouped_curves(groups=4), "power_law", group="run", pooling=POOLING)
    variants = {
        "reference": {"whitening": "full", "offset_scaling": 0.0, "pilot": False},
        "centred": {"mean_centred_above": 1e-6, "pilot": False},
    }
    fits = _short_fits(inputs, 5, variants, num_samples=1000)
    names = ("E", "E_pop_loc", "E_pop_sd", "A", "alpha")
    _assert_one_posterior(fits["centred"], fits["reference"], names, log_names=("E_pop_sd",))
