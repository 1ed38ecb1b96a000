"""The abstract inference network.

A user constructs a network from its options only (``CouplingFlow(depth=8)``); the
approximator then calls ``build(dim, cond_dim, key)`` once the sizes are known from data,
which returns a new module with parameters. Because a network is fully described by its
options and sizes, saving stores those plus the weights and loading rebuilds the skeleton.

Batched methods (the approximator's interface), with ``B`` examples:

- ``log_prob(x (B, dim), cond (B, cond_dim)) -> (B,)``
- ``sample(key, cond (B, cond_dim)) -> (B, dim)``: one draw per row of ``cond``
- ``loss(x, cond, key, train=True, step=None) -> scalar``: the training objective for a
  batch (``train=False`` switches dropout off, for validation; ``step``, the optimizer steps
  taken so far, matters only to networks with a training schedule, see
  :meth:`InferenceNetwork.check_training_steps`)
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import equinox as eqx
import jax


class InferenceNetwork(eqx.Module):
    config_json: str = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    cond_dim: int = eqx.field(static=True)
    #: ``(H, W, C, D)`` for an image-valued target ``(H, W, C)`` with a condition map of
    #: ``D`` channels (0: none), set from the data at build; None for vector targets. The
    #: network itself works on flat vectors of ``dim = H W C`` numbers; image backbones
    #: restore the layout (:mod:`~amortized.networks.image_field`).
    layout: tuple | None = eqx.field(static=True, default=None)

    has_log_prob = True  # networks with densities
    one_pass_log_prob = False  # sample_and_log_prob costs no more than sample
    #: whether a lower validation loss means a better posterior, so that early stopping and
    #: keeping the best epoch may rank epochs by it. Not so for consistency models: their
    #: loss measures the consistency of the map, which a constant map satisfies, and it
    #: rises while the map learns the posterior.
    validation_loss_ranks_epochs = True
    #: How many draws of the loss's own randomness (noise levels, times, noise vectors)
    #: each validation example's loss averages. 1 for exact losses (a negative log
    #: density); more for regression losses with one random draw per example (flow
    #: matching, diffusion), whose per-example validation losses are otherwise so noisy
    #: that the paired comparison of epochs (early stopping) misses steady progress.
    validation_draws = 1
    #: Early stopping's defaults for this network's loss: ``fit_offline``'s ``patience``
    #: and the smallest gain per epoch that counts as progress (None:
    #: :data:`~amortized.training.stopping.MIN_GAIN`, in nats per example; a loss in other
    #: units sets its own). Class-level settings (ClassVar), not fields: they are not
    #: part of a network's pytree or its saved file.
    default_patience = 10
    stopping_min_gain: ClassVar[float | None] = None

    @property
    def log_prob_caveat(self) -> str | None:
        """Why ``log_prob`` is not the exact density of this network's draws (a random
        estimate, or the density of another sampler), in words; None when it is exact.
        Importance weights need the exact density, so the amortized Bayesian workflow
        refuses a network with a caveat and quotes it."""
        return None

    @property
    def log_prob_is_estimate(self) -> bool:
        """True where ``log_prob`` is not log q of the draws (see :attr:`log_prob_caveat`)."""
        return self.log_prob_caveat is not None

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)

    @property
    def is_built(self) -> bool:
        return self.dim > 0

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one draw: ``(H, W, C)`` for image targets, else ``(dim,)``."""
        return tuple(self.layout[:3]) if self.layout else (self.dim,)

    def build(
        self, dim: int, cond_dim: int, key: jax.Array, layout: tuple | None = None
    ) -> InferenceNetwork:
        """A copy with parameters for ``dim`` inference variables and ``cond_dim`` conditions
        (``layout``: see :attr:`layout`)."""
        extra = {} if layout is None else {"layout": tuple(int(s) for s in layout)}
        return type(self)(**self.config, dim=int(dim), cond_dim=int(cond_dim), key=key, **extra)

    def _require_built(self, what: str) -> None:
        if not self.is_built:
            raise RuntimeError(
                f"{type(self).__name__}.{what}: the network has no parameters yet; "
                f"train it (fit_offline / fit_online) or build it first"
            )

    def log_prob(self, x: jax.Array, cond: jax.Array) -> jax.Array:
        raise NotImplementedError  # abstract

    def sample(self, key: jax.Array, cond: jax.Array) -> jax.Array:
        raise NotImplementedError  # abstract

    def sample_and_log_prob(self, key: jax.Array, cond: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Draws ``(B, dim)`` and their ``log_prob`` ``(B,)``; networks that get both from
        one pass (coupling flows) override this."""
        x = self.sample(key, cond)
        return x, self.log_prob(x, cond)

    def loss(
        self,
        x: jax.Array,
        cond: jax.Array,
        key: jax.Array,
        train: bool = True,
        step: jax.Array | None = None,
    ) -> jax.Array:
        raise NotImplementedError  # abstract

    def check_training_steps(self, last_step: int) -> None:
        """Raise if training up to optimizer step ``last_step`` (counted over all fits) is
        outside what this network was configured for. Networks with a schedule fixed at
        construction (:class:`~amortized.networks.ConsistencyModel`'s ``total_steps``)
        override this; the approximator calls it before training."""


class RandomDrawLoss:
    """Early stopping's settings for a network trained on a regression loss with one random
    draw per example (flow matching's time and noise, a diffusion model's noise level and
    noise): a mixin, listed before :class:`InferenceNetwork`.

    Such a loss is mostly irreducible noise, and the progress that sharpens a posterior is
    a small fraction of it per epoch: the rule made for negative log densities stopped flow
    matching on sbibm's two_moons while its held-out loss was still falling steadily, and
    the epochs it cut off were the ones that resolve the posterior's thin crescents
    (benchmarks/LOG.md, session 32). So each validation example averages 16 draws (the
    paired comparison of epochs then sees that progress), any gain beyond chance counts
    (the loss is not in nats, so :data:`~amortized.training.stopping.MIN_GAIN` does not
    apply), and patience is 50 epochs (the learning rate is lowered after 16 without a new
    minimum, not 3): with 30 the rate reached its floor while the loss still fell, and the
    posteriors were worse.

    The cost: a validation pass evaluates every held-out example 16 times (summary network
    included); with 5% held out that is 80% of an epoch's rows, forward passes only.
    """

    validation_draws = 16
    default_patience = 50
    stopping_min_gain = 0.0


def encode_config(**options: Any) -> str:
    """Options as canonical JSON (hashable, so it can be a static field)."""
    return json.dumps(options, sort_keys=True)
