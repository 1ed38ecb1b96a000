"""DeepSet: permutation-invariant summary by per-element encoding and pooling.

s(x) = [e, rho([mean_i phi(x_i), max_i phi(x_i), e])], e = [log N, mean, log sd, corr]

with e the set's explicit statistics
(:func:`~amortized.networks.summary_base.set_moments`; with ``moments=False``,
e = [log N]); padded rows are excluded from both pools, the statistics and the count N of
observed rows (the mean and the maximum do not carry N, on which the posterior's width
depends). When e leaves no room for a learned number, only log N passes through unmixed.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from .._validation import check_choice, strict
from .base import encode_config
from .mlp import MLP, split_dropout_key
from .summary_base import (
    SetSummaryNetwork,
    check_set_summary_dim,
    masked_mean,
    set_head_sizes,
    with_moments,
)


class DeepSet(SetSummaryNetwork):
    """Exchangeable sets ``(N, features)`` to ``summary_dim`` numbers.

    Parameters
    ----------
    summary_dim : int, default 16
        Output size, at least 2: the first number is log N, the log of the number of
        observed rows; then the set's moments (with ``moments``, when they leave room for
        a learned number); the others are learned.
    widths_equivariant : sequence of int, default (64, 64)
        The per-element network phi.
    widths_invariant : sequence of int, default (64, 64)
        The network rho after pooling.
    activation : str, default "silu"
    dropout : float, default 0.05
    moments : bool, default True
        The set's mean, log sd and correlations pass to the summary unmixed and feed rho,
        as in :class:`SetTransformer`.

    >>> net = DeepSet(summary_dim=8)
    """

    phi: MLP | None
    rho: MLP | None

    @strict
    def __init__(
        self,
        summary_dim: int = 16,
        widths_equivariant: Sequence[int] = (64, 64),
        widths_invariant: Sequence[int] = (64, 64),
        activation: str = "silu",
        dropout: float = 0.05,
        moments: bool = True,
        input_shape: tuple = (),
        key: jax.Array | None = None,
    ):
        check_choice("DeepSet", "moments", moments, (True, False))
        check_set_summary_dim("DeepSet", summary_dim)
        self.config_json = encode_config(
            summary_dim=int(summary_dim),
            widths_equivariant=list(widths_equivariant),
            widths_invariant=list(widths_invariant),
            activation=activation,
            dropout=float(dropout),
            moments=bool(moments),
        )
        self.input_shape = tuple(input_shape)
        if not self.input_shape:
            self.phi = self.rho = None
            return
        k1, k2 = jax.random.split(key)
        width = int(widths_equivariant[-1])
        self.phi = MLP(self.input_shape[-1], width, widths_equivariant, activation, dropout, key=k1)
        n_in, n_out = set_head_sizes(self.input_shape[-1], summary_dim, bool(moments))
        self.rho = MLP(2 * width + n_in, n_out, widths_invariant, activation, dropout, key=k2)

    def __call__(self, x, key=None, mask=None):
        k1, k2 = (None, None) if key is None else split_dropout_key(key, 2)
        h = self.phi.rows(x, k1)
        hmax = h if mask is None else jnp.where(mask.astype(bool)[:, None], h, -jnp.inf)
        pooled = jnp.concatenate([masked_mean(h, mask), jnp.max(hmax, axis=0)])
        cfg = self.config
        return with_moments(x, mask, cfg["moments"], cfg["summary_dim"], self.rho, pooled, k2)
