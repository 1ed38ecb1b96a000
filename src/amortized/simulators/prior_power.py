"""The power of a prior distribution, ``p_gamma(theta) ∝ p(theta)^gamma``, for power-scaling
sensitivity analysis (Kallioinen et al. 2024; amortized: Elsemüller et al. 2024).

``gamma < 1`` flattens the prior, ``gamma > 1`` sharpens it. Where the power of a family is
again a member of the family, :func:`power_distribution` returns it exactly:

=====================  ==========================================================
Normal(m, s)           Normal(m, s / sqrt(g))
HalfNormal(s)          HalfNormal(s / sqrt(g))
LogNormal(m, s)        LogNormal(m + (1 - g) s^2 / g, s / sqrt(g))
Gamma(a, b)            Gamma(g (a - 1) + 1, g b)           (needs g (a - 1) + 1 > 0)
InverseGamma(a, b)     InverseGamma(g (a + 1) - 1, g b)    (needs g (a + 1) - 1 > 0)
Exponential(r)         Exponential(g r)
Beta(a, b)             Beta(g (a - 1) + 1, g (b - 1) + 1)  (needs both > 0)
Dirichlet(c)           Dirichlet(g (c - 1) + 1)            (needs all > 0)
Laplace(m, s)          Laplace(m, s / g)
Uniform(l, h)          Uniform(l, h)
MultivariateNormal     MultivariateNormal(m, scale_tril / sqrt(g))
=====================  ==========================================================

(For LogNormal: in ``u = log x`` the powered density is ``exp((1 - g) u - g (u - m)^2 /
(2 s^2))``, a normal with the mean and scale above.) ``.expand(...)`` and ``.to_event(...)``
of these are powered through. Any other family is powered approximately by
sampling-importance-resampling (:class:`SirPower`): ``num_candidates`` draws from ``p``, one
kept with probability ``∝ p^(gamma - 1)``; :func:`power_distribution` says which.

A prior is powered site by site: a site whose distribution depends on another latent site
gets its conditional density powered and renormalized given that parent, as priorsense's
default ``lprior`` does for the top-level priors of non-hierarchical terms.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.primitives import Messenger

#: candidates per draw of a prior without a closed-form power
DEFAULT_SIR_CANDIDATES = 64


def _normal(d, g):
    return dist.Normal(d.loc, d.scale / jnp.sqrt(g))


def _half_normal(d, g):
    return dist.HalfNormal(d.scale / jnp.sqrt(g))


def _log_normal(d, g):
    return dist.LogNormal(d.loc + (1.0 - g) * d.scale**2 / g, d.scale / jnp.sqrt(g))


def _gamma(d, g):
    return dist.Gamma(g * (d.concentration - 1.0) + 1.0, g * d.rate)


def _inverse_gamma(d, g):
    return dist.InverseGamma(g * (d.concentration + 1.0) - 1.0, g * d.rate)


def _exponential(d, g):
    return dist.Exponential(g * d.rate)


def _beta(d, g):
    return dist.Beta(g * (d.concentration1 - 1.0) + 1.0, g * (d.concentration0 - 1.0) + 1.0)


def _dirichlet(d, g):
    return dist.Dirichlet(g * (d.concentration - 1.0) + 1.0)


def _laplace(d, g):
    return dist.Laplace(d.loc, d.scale / g)


def _uniform(d, g):
    return d


def _mvn(d, g):
    return dist.MultivariateNormal(d.loc, scale_tril=d.scale_tril / jnp.sqrt(g))


#: the families whose power is exact, by exact type (a subclass may change the density)
EXACT = {
    dist.Normal: _normal,
    dist.HalfNormal: _half_normal,
    dist.LogNormal: _log_normal,
    dist.Gamma: _gamma,
    dist.InverseGamma: _inverse_gamma,
    dist.Exponential: _exponential,
    dist.Beta: _beta,
    dist.Dirichlet: _dirichlet,
    dist.Laplace: _laplace,
    dist.Uniform: _uniform,
    dist.MultivariateNormal: _mvn,
}


class SirPower(dist.Distribution):
    """``p^gamma`` by sampling-importance-resampling from ``base`` (an approximation: the
    draw is one of ``num_candidates`` draws of ``base``, picked with probability
    ``∝ p^(gamma - 1)``); ``log_prob`` is the unnormalized ``gamma log p``."""

    def __init__(self, base: dist.Distribution, gamma, num_candidates: int):
        self.base, self.gamma, self.num_candidates = base, gamma, int(num_candidates)
        super().__init__(base.batch_shape, base.event_shape)

    @property
    def support(self):
        return self.base.support

    def sample(self, key, sample_shape=()):
        k_draw, k_pick = jax.random.split(key)
        draws = self.base.sample(k_draw, (self.num_candidates, *sample_shape))
        log_w = (self.gamma - 1.0) * self.base.log_prob(draws)  # (M, *sample, *batch)
        pick = jax.random.categorical(k_pick, log_w, axis=0)
        # the chosen candidate of every (sample, batch) element, whole events kept together
        pick = pick.reshape(pick.shape + (1,) * len(self.event_shape))
        return jnp.take_along_axis(draws, pick[None], axis=0)[0]

    def log_prob(self, value):
        return self.gamma * self.base.log_prob(value)


def power_distribution(
    d: dist.Distribution, gamma, num_candidates: int = DEFAULT_SIR_CANDIDATES
) -> tuple[dist.Distribution, bool]:
    """``(p^gamma as a distribution, whether it is exact)`` for a NumPyro distribution
    ``d`` (see the module docstring for the families with a closed form).

    >>> import numpyro.distributions as dist
    >>> q, exact = power_distribution(dist.Normal(1.0, 2.0), 4.0)
    >>> float(q.scale), exact
    (1.0, True)
    >>> type(power_distribution(dist.StudentT(3.0), 2.0)[0]).__name__
    'SirPower'
    """
    if type(d) is dist.ExpandedDistribution:
        base, exact = power_distribution(d.base_dist, gamma, num_candidates)
        return base.expand(d.batch_shape), exact
    if type(d) is dist.Independent:
        base, exact = power_distribution(d.base_dist, gamma, num_candidates)
        return base.to_event(d.reinterpreted_batch_ndims), exact
    rule = EXACT.get(type(d))
    if rule is not None:
        return rule(d, gamma), True
    return SirPower(d, gamma, num_candidates), False


def improper_parameters(d: dist.Distribution) -> list[str]:
    """The parameters of a powered distribution that are not positive where they must be
    (a power whose density does not integrate), e.g. ``['concentration']``."""
    while type(d) in (dist.ExpandedDistribution, dist.Independent):
        d = d.base_dist
    names = {
        dist.Gamma: ("concentration",),
        dist.InverseGamma: ("concentration",),
        dist.Beta: ("concentration1", "concentration0"),
        dist.Dirichlet: ("concentration",),
    }.get(type(d), ())
    return [n for n in names if not bool(jnp.all(getattr(d, n) > 0))]


class PowerPrior(Messenger):
    """A NumPyro handler: the latent sites named in ``sites`` draw from the power
    ``gamma`` of their prior (:func:`power_distribution`); observed sites are untouched."""

    def __init__(
        self, fn: Any = None, gamma=1.0, sites: tuple[str, ...] = (), num_candidates: int = 64
    ):
        self.gamma, self.sites, self.num_candidates = gamma, tuple(sites), num_candidates
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.sites and not msg["is_observed"]:
            msg["fn"] = power_distribution(msg["fn"], self.gamma, self.num_candidates)[0]
