"""SetTransformer (Lee et al. 2019): blocks over the elements of a set, then pooling by
multihead attention (PMA) to a fixed-size summary.

Block i (width d_i): rFF(X) = LN(W X + MLP(W X)) row by row (the default), self-attention
SAB(X) = MAB(X, X) (``self_attention=True``), or with inducing points
ISAB(X) = MAB(X, MAB(I, X)) (cost linear in N).
Summary: [e, Linear([PMA(H), e])] with e = [log N, mean, log sd, correlations] of the
observed rows (:func:`~amortized.networks.summary_base.set_moments`; [log N] alone with
``moments=False``, and only log N passes unmixed when e leaves no room for a learned
number): attention pooling is a weighted mean, which carries neither N, on which the
posterior's width depends, nor the moments to the precision a large set needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax

from .._validation import check_choice, strict
from .base import encode_config
from .mlp import MLP, split_dropout_key
from .summary_base import (
    MAB,
    PMA,
    SetSummaryNetwork,
    check_set_summary_dim,
    set_head_sizes,
    with_moments,
)


class _RowBlock(eqx.Module):
    """rFF block: each row on its own, h = LN(W x + MLP(W x)) (no attention between rows)."""

    proj: eqx.nn.Linear
    ff: MLP
    ln: eqx.nn.LayerNorm

    def __init__(self, in_dim, dim, mlp_widths, dropout, *, key):
        k1, k2 = jax.random.split(key)
        self.proj = eqx.nn.Linear(in_dim, dim, key=k1)
        self.ff = MLP(dim, dim, widths=mlp_widths, dropout=dropout, key=k2)
        self.ln = eqx.nn.LayerNorm(dim)

    def __call__(self, x, mask=None, key=None):
        h = jax.vmap(self.proj)(x)
        return jax.vmap(self.ln)(h + self.ff.rows(h, key))


class _Block(eqx.Module):
    proj: eqx.nn.Linear
    mab: MAB
    induced: MAB | None
    inducing: jax.Array | None

    def __init__(self, in_dim, dim, heads, mlp_widths, dropout, num_inducing, *, key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.proj = eqx.nn.Linear(in_dim, dim, key=k1)
        self.mab = MAB(dim, heads, mlp_widths, dropout, key=k2)
        if num_inducing:
            self.inducing = 0.1 * jax.random.normal(k3, (num_inducing, dim))
            self.induced = MAB(dim, heads, mlp_widths, dropout, key=k4)
        else:
            self.inducing = self.induced = None

    def __call__(self, x, mask=None, key=None):
        k1, k2 = (None, None) if key is None else split_dropout_key(key, 2)
        h = jax.vmap(self.proj)(x)
        if self.induced is None:
            return self.mab(h, h, mask, k1)
        summary = self.induced(self.inducing, h, mask, k2)
        return self.mab(h, summary, None, k1)


class SetTransformer(SetSummaryNetwork):
    """Exchangeable sets ``(N, features)`` to ``summary_dim`` numbers.

    Parameters
    ----------
    summary_dim : int, default 16
        Output size, at least 2: the first number is log N, the log of the number of
        observed rows; then the set's moments (with ``moments``, when they leave room for
        a learned number); the others are learned.
    embed_dims : sequence of int, default (32,)
        Width of each block (one block per entry). One block of width 32 by
        default, chosen by accuracy per second rather than BayesFlow's (64, 64): the work is
        per set row and the attention over N rows, so a step costs about N times a flat
        network's; BayesFlow's size took 4.8x longer per step on sets of 100 rows
        (benchmarks/LOG.md, session 14). Add blocks and width for sets whose posterior
        depends on interactions beyond what one attention layer and the pooling capture.
    num_heads : sequence of int, default (2,)
    mlp_widths : sequence of int, default (64,)
        Hidden widths of the feed-forward part of each block.
    num_inducing_points : int, optional
        Use induced set attention (ISAB) with this many inducing points.
    num_seeds : int, default 1
        Seeds of the pooling attention; their outputs are concatenated.
    dropout : float, default 0.05
    self_attention : bool, optional
        Whether blocks attend between rows (SAB, or ISAB with inducing points). Default:
        only with ``num_inducing_points``. Without it (the default) each block transforms
        every row on its own and only the pooling attends over the set (the paper's rFF +
        PMA): for rows that are independent given the parameters, whose log-likelihood is
        a sum over rows, pooled row features are enough in principle, and with the set's
        moments beside them it matched self-attention on the location-scale and regression
        scenarios at half the time per epoch, within issue 19's three minutes where
        self-attention was not (regression: 117-158 s in two runs against about 360 s;
        benchmarks/LOG.md, session 17). ``True`` for sets whose rows interact, or where
        the extra accuracy is worth the cost: on a two-component mixture it reached a
        lower held-out loss (0.05 nats) at 1.3x the time.
    moments : bool, default True
        The mean and log sd of each feature and the correlations between features (up to
        ``MAX_CORRELATED_FEATURES`` features) over the observed rows pass to the summary
        unmixed and feed the head
        (:func:`~amortized.networks.summary_base.set_moments`). Exact second moments are
        what makes a large set's posterior narrow; pooled learned features approximate them
        only roughly.

    >>> net = SetTransformer(summary_dim=10, num_inducing_points=16)
    """

    blocks: tuple[_Block | _RowBlock, ...] | None
    pool: PMA | None
    head: eqx.nn.Linear | None

    @strict
    def __init__(
        self,
        summary_dim: int = 16,
        embed_dims: Sequence[int] = (32,),
        num_heads: Sequence[int] = (2,),
        mlp_widths: Sequence[int] = (64,),
        num_inducing_points: int | None = None,
        num_seeds: int = 1,
        dropout: float = 0.05,
        self_attention: bool | None = None,
        moments: bool = True,
        input_shape: tuple = (),
        key: jax.Array | None = None,
    ):
        embed_dims, num_heads = list(embed_dims), list(num_heads)
        if len(embed_dims) != len(num_heads) or not embed_dims:
            raise ValueError(
                f"SetTransformer: embed_dims and num_heads need the same non-zero "
                f"length, got {embed_dims} and {num_heads}"
            )
        for d, h in zip(embed_dims, num_heads, strict=True):
            if d % h:
                raise ValueError(
                    f"SetTransformer: each embed dim must be divisible by its "
                    f"number of heads, got {d} and {h}"
                )
        # a string such as "no" would otherwise count as True
        check_choice("SetTransformer", "self_attention", self_attention, (True, False, None))
        if self_attention is None:
            self_attention = bool(num_inducing_points)
        if num_inducing_points and not self_attention:
            raise ValueError(
                f"SetTransformer: num_inducing_points={num_inducing_points} needs "
                f"self_attention=True (inducing points are a form of attention between rows)"
            )
        check_choice("SetTransformer", "moments", moments, (True, False))
        check_set_summary_dim("SetTransformer", summary_dim)
        self.config_json = encode_config(
            summary_dim=int(summary_dim),
            embed_dims=embed_dims,
            num_heads=num_heads,
            mlp_widths=list(mlp_widths),
            num_inducing_points=num_inducing_points,
            num_seeds=int(num_seeds),
            dropout=float(dropout),
            self_attention=bool(self_attention),
            moments=bool(moments),
        )
        self.input_shape = tuple(input_shape)
        if not self.input_shape:
            self.blocks = self.pool = self.head = None
            return
        keys = jax.random.split(key, len(embed_dims) + 2)
        dims = [self.input_shape[-1]] + embed_dims
        self.blocks = tuple(
            _Block(
                dims[i],
                dims[i + 1],
                num_heads[i],
                mlp_widths,
                dropout,
                num_inducing_points,
                key=keys[i],
            )
            if self_attention
            else _RowBlock(dims[i], dims[i + 1], mlp_widths, dropout, key=keys[i])
            for i in range(len(embed_dims))
        )
        self.pool = PMA(dims[-1], int(num_seeds), num_heads[-1], mlp_widths, dropout, key=keys[-2])
        n_in, n_out = set_head_sizes(self.input_shape[-1], summary_dim, bool(moments))
        self.head = eqx.nn.Linear(dims[-1] * int(num_seeds) + n_in, n_out, key=keys[-1])

    def __call__(self, x, key=None, mask=None):
        keys = (
            [None] * (len(self.blocks) + 1)
            if key is None
            else list(split_dropout_key(key, len(self.blocks) + 1))
        )
        h = x
        for block, k in zip(self.blocks, keys[:-1], strict=True):
            h = block(h, mask, k)
        cfg = self.config
        return with_moments(
            x,
            mask,
            cfg["moments"],
            cfg["summary_dim"],
            lambda z, _: self.head(z),
            self.pool(h, mask, keys[-1]),
            None,
        )
