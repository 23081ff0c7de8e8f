"""The sampler's linear coordinates about the mode: ``w = mode_w + scale(z)``.

One curve's fit whitens by the whole Hessian at the mode (a ``(d, d)`` matrix); a hierarchical
fit scales each coordinate by its own curvature (a ``(d,)`` vector), and by default moves the
pooled parameters' population locations together (:class:`LocationBlock`). See
``SamplerSettings.whitening``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np

from bayes_scaling.laplace import MAX_CURVATURE, MIN_CURVATURE, whitening


def matvec(a, v):
    """``a @ v`` written as a multiply and a sum: under ``vmap`` (many sets in lockstep) a batch
    of tiny matrix-vector products is several times slower on a CPU than this."""
    return jnp.sum(a * v, axis=-1)


@jax.tree_util.register_pytree_node_class
class LocationBlock:
    """A diagonal scale, except on a few coordinates (``index``) moved together by ``block``.

    ``scale(z)`` is ``diagonal * z`` off ``index`` and ``block @ z[index]`` on it. In a
    hierarchical fit whose groups are pooled strongly, the groups' values sit near the
    population locations, which then carry the same ridge as one curve's parameters (on
    gadre's three corpora the posterior correlations among ``E``, ``A`` and ``alpha`` are
    0.90-0.99); a diagonal scale leaves that ridge to the step size. The block takes it out,
    while the offsets and the population scales, whose spreads change with the scales, keep
    their own. A pytree whose ``index`` is static, so the staged programs can pass it between
    compiled stages.
    """

    def __init__(self, diagonal, block, index):
        self.diagonal = diagonal
        self.block = block
        self.index = tuple(int(i) for i in index)

    def tree_flatten(self):
        return (self.diagonal, self.block), self.index

    @classmethod
    def tree_unflatten(cls, index, children):
        return cls(*children, index)

    def __call__(self, z):
        index = np.asarray(self.index)
        return (self.diagonal * z).at[index].add(matvec(self.block, z[index]))

    def solve(self, w):
        """The ``z`` with ``self(z) == w`` (the block is lower triangular)."""
        index = np.asarray(self.index)
        z = w / self.diagonal.at[index].set(1.0)
        block = jax.scipy.linalg.solve_triangular(self.block, w[index], lower=True)
        return z.at[index].set(block)


def scaled(scale, z):
    """``scale(z)``: ``scale @ z`` for a whitening matrix, ``scale * z`` for a diagonal one kept
    as its vector (on a CPU the product with a dense 27 x 27 matrix and its transpose in the
    gradient cost more than the grouped model's potential), or a :class:`LocationBlock`."""
    if isinstance(scale, LocationBlock):
        return scale(z)
    return scale * z if scale.ndim == 1 else matvec(scale, z)


def unscaled(scale, w):
    """The inverse of :func:`scaled`: the ``z`` with ``scaled(scale, z) == w``."""
    if isinstance(scale, LocationBlock):
        return scale.solve(w)
    return w / scale if scale.ndim == 1 else jnp.linalg.solve(scale, w)


def diagonal_whitening(hessian):
    """The sampler's scale from the Hessian's diagonal alone (``SamplerSettings.whitening``),
    as the vector of the diagonal scale matrix: each coordinate divided by the square root of
    its curvature, clipped as :func:`bayes_scaling.laplace.whitening` clips eigenvalues; ones
    where the Hessian was unusable (zeros)."""
    curvature = jnp.abs(jnp.diagonal(hessian))
    curvature = jnp.where(curvature > 0, jnp.clip(curvature, MIN_CURVATURE, MAX_CURVATURE), 1.0)
    return 1.0 / jnp.sqrt(curvature)


def location_whitening(hessian, diagonal, index) -> LocationBlock:
    """``diagonal``, with the coordinates in ``index`` whitened together by their covariance in
    the Laplace approximation (the inverse of the whole ``hessian``, clipped as
    :func:`bayes_scaling.laplace.whitening` clips it): its lower Cholesky factor. Where the
    Hessian is unusable (zeros, not finite), those coordinates keep ``diagonal``."""
    index = np.asarray(index)
    root = whitening(hessian)
    block = jnp.linalg.cholesky((root @ root.T)[np.ix_(index, index)])
    usable = jnp.any(hessian != 0) & jnp.all(jnp.isfinite(block))
    block = jnp.where(usable, block, jnp.diag(diagonal[index]))
    return LocationBlock(diagonal.at[index].set(0.0), block, index)
