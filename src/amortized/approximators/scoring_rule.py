"""ScoringRuleApproximator: posterior statistics from a ScoringRuleNetwork, in the original
parameter space, keyed by variable name.

Training, standardization, summary networks, adapters and saving are those of
:class:`ContinuousApproximator`; what is added is :meth:`ScoringRuleApproximator.estimate`,
which maps each rule's statistics from the network's standardized space back through the
standardization and the adapter:

- quantiles and medians commute with every increasing elementwise map (a constraint's log
  or logit), so they are exact in the original space whatever the adapter does;
- means and a normal's mean and covariance commute with affine maps only: for a variable the
  adapter transforms nonlinearly they would be the back-transformed statistic of the
  unconstrained parameter, not the posterior's, so :meth:`estimate` refuses them by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._validation import strict
from ..networks.scoring_rule_network import ScoringRuleNetwork
from . import chunked
from . import regression_adjustment as ra
from .chunked import embed as _embed
from .continuous import ContinuousApproximator
from .core import _from_network, _repeat, row_maps

# probe points (standardized space) of the midpoint test of the adapter's inverse map
_PROBES = (-0.7, 0.4)


@eqx.filter_jit
def _estimate(net, cond):
    return net.estimate(cond)


class ScoringRuleApproximator(ContinuousApproximator):
    """A :class:`ContinuousApproximator` whose inference network is a
    :class:`~amortized.networks.ScoringRuleNetwork` (or ``PointNetwork``), with
    :meth:`estimate` (guide 6.7).

    Examples
    --------
    >>> sim = bf.simulators.benchmarks.gaussian_linear()
    >>> approx = bf.ScoringRuleApproximator(
    ...     inference_network=bf.networks.PointNetwork("quantiles", q=[0.1, 0.5, 0.9]),
    ...     adapter=bf.Adapter.create_default("theta", "x"))
    >>> _ = approx.fit(dataset=sim.sample(256, seed=0), epochs=1, batch_size=64, seed=1,
    ...                progress=False)
    >>> est = approx.estimate({"x": sim.sample(3, seed=2)["x"]})
    >>> est["theta"]["quantiles"]["value"].shape
    (3, 3, 10)
    """

    @strict
    def __init__(
        self,
        inference_network: ScoringRuleNetwork,
        summary_network: Any = None,
        adapter: Any = None,
        standardize: Any = "all",
        regression_adjustment: bool | None = None,
    ):
        if not isinstance(inference_network, ScoringRuleNetwork):
            raise TypeError(
                f"ScoringRuleApproximator: inference_network must be a "
                f"bf.networks.ScoringRuleNetwork or PointNetwork, got "
                f"{type(inference_network).__name__}; generative networks go with "
                f"ContinuousApproximator"
            )
        categorical = [n for n, r in inference_network.scoring_rules.items() if r.categorical]
        if categorical and not self._categorical_targets:
            raise TypeError(
                f"ScoringRuleApproximator: rules {categorical} score model indices; model "
                f"comparison goes with bf.approximators.ModelComparisonApproximator"
            )
        super().__init__(
            inference_network=inference_network,
            summary_network=summary_network,
            adapter=adapter,
            standardize=standardize,
            regression_adjustment=regression_adjustment,
        )

    #: whether the targets are one-hot model indices (ModelComparisonApproximator)
    _categorical_targets = False
    #: a point estimate is a regression of the targets on the conditions: its linear part
    #: fitted in closed form extrapolates to the tails of the prior predictive, where a
    #: network fitted to noisy targets alone is least accurate
    default_regression_adjustment = True

    @strict
    def estimate(self, conditions: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
        """``{variable: {rule: {statistic: array}}}`` for every dataset in ``conditions``,
        in the original parameter space: ``(num_datasets, *shape)`` for a mean or median,
        ``(num_datasets, num_levels, *shape)`` for quantiles, and for an
        :class:`~amortized.scoring_rules.MvNormalScore` its ``"mean"`` and the variable's
        block of its ``"covariance"`` ``(num_datasets, size, size)`` (the variable
        flattened).

        Raises ValueError for a mean-type statistic of a variable that the adapter
        transforms nonlinearly (see the module docstring)."""
        raw, feats = self._raw_estimates(conditions)
        dim = self.nets.inference.dim
        affine = self._affine_variables(dim)
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for rule_name, rule in self.nets.inference.scoring_rules.items():
            for stat, value in raw[rule_name].items():
                kind = rule.kind(stat)
                if kind == "internal":
                    continue  # a parametrization, not a statistic
                if kind == "invariant":  # the same for every variable (mixture weights)
                    per_var = {var: np.asarray(value) for var in affine}
                elif kind == "covariance":
                    per_var = self._covariances(np.asarray(value), dim)
                else:
                    per_var = self._locations(np.asarray(value), feats)
                for var, v in per_var.items():
                    if kind != "invariant" and rule.equivariance == "affine" and not affine[var]:
                        what = getattr(rule, "label", stat) if stat == "value" else stat
                        raise ValueError(
                            f"estimate: {type(rule).__name__} ({rule_name!r}) estimates the "
                            f"{what} of {var!r} in the space the adapter maps it to, and the "
                            f"adapter transforms {var!r} nonlinearly (a constraint): mapped "
                            f"back, it is not the posterior {what} of {var!r}. Use quantiles "
                            f"or the median (exact under such maps), or drop the constraint"
                        )
                    out.setdefault(var, {}).setdefault(rule_name, {})[stat] = v
        return out

    def _raw_estimates(
        self, conditions: Mapping[str, Any]
    ) -> tuple[dict[str, dict[str, Any]], np.ndarray | None]:
        """Every rule's statistics for ``conditions``, in the network's space, and the
        regression adjustment's features ``(num_datasets, k)`` (None without one)."""
        self._require_trained("estimate")
        routes = self._check_condition_keys(conditions, "estimate")
        arrays = self.to_network_arrays(conditions, need_variables=False, where="conditions")
        # conditions outside the training range warn by name, as for draws
        feats = self._warn_out_of_range(arrays, routes, "estimate")
        n = next(iter(arrays.values())).shape[0] if arrays else 1
        cond = np.asarray(_embed(self.nets, self.stats, arrays)) if arrays else np.zeros((n, 0))
        if feats is None and ra.KEY in self.stats and arrays:
            feats = np.asarray(chunked.features(self.nets, self.stats, arrays))
        return _estimate(self.nets.inference, cond), feats

    # -- mapping statistics to the original space -----------------------------------------
    def _user(self, z: np.ndarray, feats: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Network-space values ``(n, S, dim)`` given each dataset's regression-adjustment
        features ``(n, k)`` -> ``{variable: (n, S, *shape)}``. Without features, the map
        at features 0 (enough for its linear part, which no dataset changes)."""
        n, s, dim = z.shape
        adjustment = None
        if ra.KEY in self.stats:
            if feats is None:
                feats = np.zeros((n, self.stats[ra.KEY][0].shape[-2] - 1), np.float32)
            adjustment = _repeat(row_maps(self.stats, jnp.asarray(feats)), s)
        flat = z.reshape(n * s, dim)
        adapter_space = _from_network(self.stats, self.nets, flat, (n, s), adjustment)
        return self._to_user_space(np.asarray(adapter_space))

    def _locations(self, value: np.ndarray, feats: np.ndarray | None) -> dict[str, np.ndarray]:
        if value.ndim == 2:  # (n, dim): one value per dataset
            return {k: v[:, 0] for k, v in self._user(value[:, None, :], feats).items()}
        return self._user(value, feats)  # (n, levels or components, dim)

    def _affine_variables(self, dim: int) -> dict[str, bool]:
        """Whether the map from the network's space to each variable is affine: it maps
        the midpoint of two points to the midpoint of their images (true for every affine
        map, false for a log or logit at these points)."""
        a, b = (np.full((1, 1, dim), p, np.float32) for p in _PROBES)
        fa, fb, fm = self._user(a), self._user(b), self._user((a + b) / 2)
        return {k: bool(np.allclose(fm[k], (fa[k] + fb[k]) / 2, rtol=1e-4, atol=1e-5)) for k in fa}

    def _linear_part(self, dim: int) -> dict[str, np.ndarray]:
        """Per variable, the matrix ``(size, dim)`` of the (affine) map's linear part."""
        base = self._user(np.zeros((1, 1, dim), np.float32))
        unit = self._user(np.eye(dim, dtype=np.float32)[None])
        return {
            k: (unit[k].reshape(dim, -1) - base[k].reshape(1, -1)).T.astype(np.float64)
            for k in base
        }

    def _covariances(self, cov: np.ndarray, dim: int) -> dict[str, np.ndarray]:
        return {
            k: np.einsum("ia,...ab,jb->...ij", m, cov.astype(np.float64), m)
            for k, m in self._linear_part(dim).items()
        }
