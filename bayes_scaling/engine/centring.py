"""Partial centring of pooled parameters in hierarchical fits, chosen per group at the mode."""

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
