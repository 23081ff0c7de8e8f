"""The sampler's coordinates for pooled parameters in hierarchical fits: partial centring
chosen per group at the mode, or the non-centred offsets rescaled with the population scale."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayes_scaling.models import ModelSpec


def _pooled_blocks(spec: ModelSpec, info) -> list[tuple]:
    """For each pooled parameter: flat positions of its population location, population scale
    and group offsets, with the maps from the unconstrained location and scale to their values.
    Empty without groups or pooled parameters."""
    from numpyro.distributions.transforms import biject_to

    if not spec.num_groups:
        return []
    leaves, treedef = jax.tree.flatten(info.param_info.z)
    ends = np.cumsum([int(np.size(leaf)) for leaf in leaves])
    positions = jax.tree.unflatten(
        treedef,
        [
            np.arange(e - np.size(leaf), e).reshape(np.shape(leaf))
            for e, leaf in zip(ends, leaves, strict=True)
        ],
    )
    blocks = []
    for name, mode in spec.pooling_map.items():
        if mode != "pooled":
            continue
        loc, sd = f"{name}_pop_loc", f"{name}_pop_sd"
        blocks.append(
            (
                int(positions[loc]),
                int(positions[sd]),
                np.asarray(positions[f"{name}_z"]).reshape(-1),
                biject_to(info.model_trace[loc]["fn"].support),
                biject_to(info.model_trace[sd]["fn"].support),
            )
        )
    return blocks


def _location_ties(spec: ModelSpec, info) -> tuple:
    """Each pooled parameter's (location position, offset positions), as the choice half-way
    reads them (:func:`bayes_scaling.engine.chains._location_tie`)."""
    return tuple((b[0], b[2]) for b in _pooled_blocks(spec, info))


class _PartialCentring:
    """Per-group partial centring of pooled parameters, chosen at the mode.

    The model is written non-centred: group values ``u_g = mu + sigma * z_g`` with
    ``z_g ~ N(0, 1)``. When a group's data pin ``u_g`` down, that parametrisation makes a funnel
    between ``log sigma`` and the ``z_g`` (each ``z_g`` scales as ``1/sigma``), and NUTS needs
    long trajectories; the centred one (sampling ``u_g`` itself) is then the near-Gaussian one,
    and the other way round for weakly informed groups. NUTS here runs in
    ``w_g = lam_g * mu + sigma**lam_g * z_g`` (``lam_g = 0``: non-centred, ``1``: centred), with
    ``lam_g = 1 - 1 / H_gg`` from the Hessian of the non-centred potential at the mode: ``H_gg
    = 1 + sigma**2 * I_g`` (prior plus data information about ``u_g``), and ``lam_g`` is the
    data's share of the precision, the choice that makes a normal-normal model's posterior
    independent of ``(mu, sigma)``. The model and its outputs stay non-centred; the potential
    in ``w`` adds the log Jacobian ``sum_g lam_g log sigma``. Used when asked
    (``SamplerSettings(partial_centring=True)``) from ``CENTRING_MIN_GROUPS`` (10) groups up:
    with fewer the population scale is too uncertain for one choice of ``lam_g`` to suit the
    whole posterior. With no blocks it is the identity.
    """

    def __init__(self, blocks, hessian):
        diag = jnp.diagonal(hessian)
        self.blocks = blocks
        # an unusable Hessian (zeros) gives lam = 0: the model's own non-centred form
        self.lams = [
            jnp.clip(1.0 - 1.0 / jnp.maximum(diag[zi], 1.0), 0.0, 1.0) for _, _, zi, _, _ in blocks
        ]

    def to_w(self, u):
        w = u
        for (li, si, zi, t_loc, t_sd), lam in zip(self.blocks, self.lams, strict=True):
            mu, sigma = t_loc(u[li]), t_sd(u[si])
            w = w.at[zi].set(lam * mu + sigma**lam * u[zi])
        return w

    def to_u(self, w):
        """Non-centred coordinates of ``w`` and ``log |det du/dw|``."""
        u, log_det = w, 0.0
        for (li, si, zi, t_loc, t_sd), lam in zip(self.blocks, self.lams, strict=True):
            mu, sigma = t_loc(w[li]), t_sd(w[si])
            u = u.at[zi].set((w[zi] - lam * mu) * sigma ** (-lam))
            log_det = log_det - jnp.sum(lam) * jnp.log(sigma)
        return u, log_det


def offset_information(blocks, potential, mode) -> jax.Array:
    """The data's information about each group's value of each pooled parameter, ``(K, G)``.

    Read from the Hessian of the non-centred potential at the mode with every population
    scale set to one and each group's value kept (``z_g = u_g - mu``): there the ``z_g``
    diagonal is the prior's 1 plus the data's curvature in ``u_g``, whatever the scales at
    the mode (a curvature read off a small scale is mostly the prior's). Negative or
    non-finite curvatures (a Student-t likelihood away from its mode, an unusable mode) give 0.
    """
    from bayes_scaling.laplace import value_grad_hessian

    at_one = mode
    for _, si, zi, _, t_sd in blocks:
        sigma = t_sd(mode[si])
        at_one = at_one.at[si].set(t_sd.inv(jnp.ones((), mode.dtype)))
        at_one = at_one.at[zi].set(sigma * mode[zi])
    _, _, hessian = value_grad_hessian(potential, at_one)
    z_idx = np.stack([np.asarray(zi) for _, _, zi, _, _ in blocks])
    information = jnp.diagonal(hessian)[z_idx] - 1.0
    return jnp.where(jnp.isfinite(information), jnp.maximum(information, 0.0), 0.0)


def offset_tie_figure(blocks, information, mode) -> jax.Array:
    """How strongly the groups' own data tie each pooled parameter's offsets, at its largest.

    For each pooled parameter, the median over groups of ``s**2 I_g``: ``s`` the groups' spread
    about their population location at the mode (the population scale times the standard
    deviation of the offsets there) and ``I_g`` the information the group's data carry about
    its value (:func:`offset_information`). Large where the groups' values are pinned down by
    their own runs far more tightly than they differ: there the offsets' narrowing in the
    population scales' upper tail is what sets the step size.
    ``SamplerSettings.tied_offsets_above`` compares it with a threshold.
    """
    return jnp.max(offset_tie_figures(blocks, information, mode))


def offset_tie_figures(blocks, information, mode) -> jax.Array:
    """:func:`offset_tie_figure` for each pooled parameter, ``(K,)``."""
    figures = []
    for k, (_, si, zi, _, t_sd) in enumerate(blocks):
        spread = t_sd(mode[si]) * jnp.std(mode[np.asarray(zi)])
        figures.append(jnp.median(spread**2 * information[k]))
    return jnp.stack(figures)


class _ScaledOffsets:
    """The pooled parameters' non-centred offsets rescaled with the population scale.

    The model draws a group's value as ``u_g = mu + sigma * z_g`` with ``z_g ~ N(0, 1)``. When
    the group's data carry information ``I_g`` about ``u_g``, the conditional spread of ``z_g``
    is ``(1 + sigma**2 I_g)**-1/2``: near 1 where ``sigma`` is small, but ever narrower in the
    upper tail of ``sigma``, which then sets the sampler's step size for the whole posterior
    (the largest curvature of gadre's three-group fit sat there, ``benchmarks/RESULTS.md``).
    The sampler moves in ``v_g = z_g (1 + sigma**2 I_g)**(power/2)`` instead: ``power = 1``
    gives every ``v_g`` a conditional spread near 1 at every scale, ``0`` is the model's own
    form; in between narrows the range of spreads without letting ``sigma`` drift free of the
    groups. ``I_g`` comes from :func:`offset_information` at the mode. The model and its
    outputs stay as written; the potential in ``v`` adds ``log |det dz/dv|``, ``-power/2
    sum log(1 + sigma**2 I_g)``.
    """

    def __init__(self, blocks, information, power: float):
        from numpyro.distributions.transforms import ExpTransform

        self.blocks = blocks
        self.information = information
        # a number, or a traced scalar where the run chooses it at the mode
        self.power = power if isinstance(power, jax.Array) else float(power)
        self.location_index = np.asarray([li for li, _, _, _, _ in blocks], dtype=int)
        if not blocks:
            return
        z_idx = np.stack([np.asarray(zi) for _, _, zi, _, _ in blocks])  # (K, G)
        self.sd_idx = np.asarray([si for _, si, _, _, _ in blocks])
        self.sd_maps = [t_sd for _, _, _, _, t_sd in blocks]
        self.all_exp = all(isinstance(t, ExpTransform) for t in self.sd_maps)
        self.z_idx = z_idx
        self.contiguous = all(np.array_equal(zi, np.arange(zi[0], zi[0] + zi.size)) for zi in z_idx)

    def _sigma(self, w):
        if self.all_exp:
            return jnp.exp(w[self.sd_idx])
        return jnp.stack([t(w[si]) for si, t in zip(self.sd_idx, self.sd_maps, strict=True)])

    def _log_factor(self, w):
        """``log dz/dv`` of each group offset, ``(K, G)``."""
        return -0.5 * self.power * jnp.log1p(self._sigma(w)[:, None] ** 2 * self.information)

    def with_power(self, power) -> _ScaledOffsets:
        """The same coordinates with the offsets rescaled by another power."""
        return _ScaledOffsets(self.blocks, self.information, power)

    def _scale(self, w):
        """The factor ``dz/dv`` for every coordinate (1 off the offsets) and its log det."""
        log_c = self._log_factor(w)
        c = jnp.exp(log_c)
        d, G = w.shape[0], self.z_idx.shape[1]
        if not self.contiguous:
            return jnp.ones(d, w.dtype).at[self.z_idx.ravel()].set(c.ravel()), jnp.sum(log_c)
        # numpyro's flat layout keeps each block's offsets together: the factor is then a
        # concatenation of static pieces, cheaper in the gradient than a scatter
        pieces, at = [], 0
        for k in np.argsort(self.z_idx[:, 0]):
            start = int(self.z_idx[k, 0])
            pieces += [jnp.ones(start - at, w.dtype), c[k]]
            at = start + G
        pieces.append(jnp.ones(d - at, w.dtype))
        return jnp.concatenate(pieces), jnp.sum(log_c)

    def to_w(self, u):
        if not self.blocks:
            return u
        return u / self._scale(u)[0]  # the scales are coordinates of both u and w

    def to_u(self, w):
        """Non-centred coordinates of ``w`` and ``log |det du/dw|``."""
        if not self.blocks:
            return w, 0.0
        scale, log_det = self._scale(w)
        return w * scale, log_det


class _MeanCentredOffsets(_ScaledOffsets):
    """:class:`_ScaledOffsets`, except that chosen pooled parameters move centred, with their
    population location measured from the groups' mean.

    Where every group's data pin its value down far more tightly than the groups differ, the
    non-centred offsets are tied to the population location (moving it at fixed offsets moves
    every group off its data) and narrow as ``1/sigma``; the centred values ``c_g = mu + sigma
    z_g`` are then near-independent of ``(mu, sigma)``, but ``mu`` itself, given the ``c_g``,
    spreads as ``sigma / sqrt(G)`` about their mean, a funnel of its own. A chosen parameter
    therefore moves in ``(m, log sigma, c_1..c_G)`` with ``mu = mean(c) + sigma m / sqrt(G)``:
    the prior's ``sum z_g**2`` splits into ``m**2`` and the groups' spread about their mean, so
    ``m`` is a standard normal independent of the rest, whatever ``sigma``. ``log |det du/dw|``
    of a chosen parameter is ``(1 - G) log sigma - log(G) / 2``; the constant is dropped. With
    weakly informed groups the centred values make the classic funnel with ``sigma``, so the
    choice (``centred``, a boolean per pooled parameter, possibly traced) is made at the mode
    (:func:`bayes_scaling.engine.sampler.mean_centred`); the others keep the rescaled
    offsets. The model and its outputs stay as written.
    """

    def __init__(self, blocks, information, power, centred):
        super().__init__(blocks, information, power)
        self.centred = centred

    def with_power(self, power) -> _MeanCentredOffsets:
        return _MeanCentredOffsets(self.blocks, self.information, power, self.centred)

    def to_w(self, u):
        w = super().to_w(u)
        sigma = self._sigma(u)
        for k, (li, _, zi, _, _) in enumerate(self.blocks):
            z = u[zi]
            centred = self.centred[k]
            w = w.at[zi].set(jnp.where(centred, u[li] + sigma[k] * z, w[zi]))
            w = w.at[li].set(jnp.where(centred, -np.sqrt(z.shape[0]) * jnp.mean(z), w[li]))
        return w

    def _affine(self, w):
        """``u = a * (w - s) + t`` at ``w`` (``a``, ``s`` and ``t`` depend on ``w`` only through
        the scales and the chosen parameters' group means), and ``log |det du/dw|``.

        Built from static pieces in the flat layout's order, an elementwise map: cheaper in
        the gradient than setting each block's positions in turn. The centred values have
        their location subtracted before they are scaled, as ``(c - mu) / sigma``, which keeps
        the offsets' precision where ``sigma`` is small."""
        sigma = self._sigma(w)
        log_c = self._log_factor(w)  # (K, G)
        d, dtype = w.shape[0], w.dtype
        one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)
        pieces: list[tuple[int, tuple[jax.Array, ...]]] = []  # (start, (a, s, t))
        log_det = 0.0
        for k, (li, _, zi, _, _) in enumerate(self.blocks):
            G, c = len(zi), self.centred[k]
            mu = jnp.mean(w[zi]) + sigma[k] * w[li] / np.sqrt(G)
            a_z = jnp.where(c, jnp.broadcast_to(1.0 / sigma[k], (G,)), jnp.exp(log_c[k]))
            s_z = jnp.broadcast_to(jnp.where(c, mu, zero), (G,))
            at_loc = tuple(x[None] for x in (jnp.where(c, zero, one), zero, jnp.where(c, mu, zero)))
            pieces.append((int(li), at_loc))
            pieces.append((int(zi[0]), (a_z, s_z, jnp.zeros(G, dtype))))
            log_det = log_det + jnp.where(c, (1 - G) * jnp.log(sigma[k]), jnp.sum(log_c[k]))
        parts: list[list[jax.Array]] = [[], [], []]
        at = 0
        for start, values in sorted(pieces, key=lambda p: p[0]):
            for j, (part, fill) in enumerate(zip(parts, (1.0, 0.0, 0.0), strict=True)):
                if start > at:
                    part.append(jnp.full(start - at, fill, dtype))
                part.append(values[j])
            at = start + values[0].shape[0]
        for part, fill in zip(parts, (1.0, 0.0, 0.0), strict=True):
            part.append(jnp.full(d - at, fill, dtype))
        a, s, t = (jnp.concatenate(part) for part in parts)
        return a, s, t, log_det

    def to_u(self, w):
        """Non-centred coordinates of ``w`` and ``log |det du/dw|``."""
        if not self.blocks:
            return w, 0.0
        if not self.contiguous:
            return self._to_u_by_blocks(w)

        def centred(w):
            a, s, t, log_det = self._affine(w)
            return a * (w - s) + t, jnp.asarray(log_det, w.dtype)

        def rescaled(w):
            u, log_det = _ScaledOffsets.to_u(self, w)
            return u, jnp.asarray(log_det, w.dtype)

        # where no parameter is chosen (a choice traced at the mode) the rescaled offsets'
        # own map runs, without the centred one's cost in every gradient
        return jax.lax.cond(jnp.any(jnp.asarray(self.centred)), centred, rescaled, w)

    def _to_u_by_blocks(self, w):
        u, _ = super().to_u(w)
        sigma = self._sigma(w)
        log_c = jnp.sum(self._log_factor(w), axis=1)
        log_det = 0.0
        for k, (li, _, zi, _, _) in enumerate(self.blocks):
            c, G = w[zi], len(zi)
            centred = self.centred[k]
            mu = jnp.mean(c) + sigma[k] * w[li] / np.sqrt(G)
            u = u.at[zi].set(jnp.where(centred, (c - mu) / sigma[k], u[zi]))
            u = u.at[li].set(jnp.where(centred, mu, u[li]))
            log_det = log_det + jnp.where(centred, (1 - G) * jnp.log(sigma[k]), log_c[k])
        return u, log_det
