"""CouplingFlow: a normalizing flow of coupling layers with exact density.

Layer l (for one example x, condition c):

    x <- x * exp(a_l) + b_l                     (ActNorm, optional)
    x <- x[perm_l]                              (fixed permutation)
    x2 <- f(x2; g_l(x1, c));  x1 <- f(x1; h_l(x2, c))   (dual coupling)

with f affine (y = x exp(s) + t, s softly clamped) or a rational-quadratic spline.
z = T(x) is distributed as the base (normal or Student-t), so
log q(x | c) = log p_base(T(x)) + sum_l log|det J_l|.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_choice, strict, strict_kwargs
from . import couplings
from .base import InferenceNetwork, encode_config
from .distributions import BASE_DISTRIBUTIONS, base_log_prob, base_sample
from .mlp import MLP, split_dropout_key

TRANSFORMS = ("affine", "spline", "affine_spline", "affine_final_spline")
PERMUTATIONS = ("random", "swap", None)
SPLINE_OPTIONS = ("bins", "bound")
SPLINE_DEFAULTS = {"bins": 16, "bound": 5.0}
DEFAULT_DF = 5.0  # the Student-t base's degrees of freedom
MLP_OPTIONS = ("widths", "activation", "dropout", "residual")


def layer_transform(transform: str, i: int, depth: int) -> str:
    """The elementwise map of coupling layer ``i`` of ``depth``: ``"affine_spline"``
    alternates affine (even layers) and spline (odd layers) couplings;
    ``"affine_final_spline"`` makes the last layer a spline and the others affine."""
    if transform == "affine_spline":
        return "affine" if i % 2 == 0 else "spline"
    if transform == "affine_final_spline":
        return "spline" if i == depth - 1 else "affine"
    return transform


def _subnet(net: MLP, xs: jax.Array, keys: jax.Array | None) -> jax.Array:
    """``net`` on each row of ``xs``; with per-row dropout keys, its training form."""
    return net.rows(xs) if keys is None else net.train_rows(xs, keys)


class _Coupling(eqx.Module):
    """One dual coupling: x2 given x1, then x1 given x2."""

    net_a: MLP | None
    net_b: MLP | None
    d1: int = eqx.field(static=True)
    transform: str = eqx.field(static=True)
    bins: int = eqx.field(static=True)
    bound: float = eqx.field(static=True)

    def __init__(self, dim, cond_dim, transform, subnet_kwargs, bins, bound, *, key):
        self.d1 = dim // 2
        d2 = dim - self.d1
        self.transform, self.bins, self.bound = transform, int(bins), float(bound)
        k = (
            couplings.affine_num_params()
            if transform == "affine"
            else couplings.spline_num_params(self.bins)
        )
        ka, kb = jax.random.split(key)
        self.net_a = MLP(self.d1 + cond_dim, d2 * k, zero_output=True, key=ka, **subnet_kwargs)
        self.net_b = (
            MLP(d2 + cond_dim, self.d1 * k, zero_output=True, key=kb, **subnet_kwargs)
            if self.d1 > 0
            else None
        )

    def _f(self, x, p, inverse):
        if self.transform == "affine":
            if inverse:
                return couplings.affine_inverse(x, p)
            return couplings.affine_forward(x, p)
        if inverse:
            return couplings.spline_inverse(x, p, self.bins, self.bound)
        return couplings.spline_forward(x, p, self.bins, self.bound)

    def forward_rows(self, x, c, keys=None):
        """Rows ``x`` ``(N, dim)`` given ``c`` ``(N, cond_dim)`` -> ``(N, dim)`` and the
        log-determinants ``(N,)``. ``keys`` ``(N,)``: per-row dropout keys of a training
        step, which runs the subnets batch-wise (:meth:`MLP.train_rows`)."""
        if keys is None:
            ka = kb = None
        else:
            pair = jax.vmap(lambda k: split_dropout_key(k, 2))(keys)
            ka, kb = pair[:, 0], pair[:, 1]
        x1, x2 = x[:, : self.d1], x[:, self.d1 :]
        x2, ld = self._f_rows(x2, _subnet(self.net_a, jnp.concatenate([x1, c], axis=1), ka))
        if self.net_b is not None:
            x1, ld_b = self._f_rows(x1, _subnet(self.net_b, jnp.concatenate([x2, c], axis=1), kb))
            ld = ld + ld_b
        return jnp.concatenate([x1, x2], axis=1), ld

    def _f_rows(self, x, p):
        return jax.vmap(lambda v, q: self._f(v, q, False))(x, p)

    def inverse(self, z, c):
        """``z -> (x, log|det dx/dz|)``."""
        x1, x2 = z[: self.d1], z[self.d1 :]
        ld = jnp.zeros(())
        if self.net_b is not None:
            x1, ld = self._f(x1, self.net_b(jnp.concatenate([x2, c])), True)
        x2, ld_a = self._f(x2, self.net_a(jnp.concatenate([x1, c])), True)
        return jnp.concatenate([x1, x2]), ld + ld_a


def _inverse_permutation(p: jax.Array) -> jax.Array:
    """``q`` with ``q[p] = arange``: the inverse of permutation ``p``. Not ``argsort(p)``
    or ``zeros_like(p)``: both build arrays with ``p``'s sharding, which fails inside the
    data-parallel training step's ``shard_map`` (a sampling pass inside the loss:
    self-consistency)."""
    return jnp.zeros(p.shape, p.dtype).at[p].set(jnp.arange(p.shape[0], dtype=p.dtype))


class CouplingFlow(InferenceNetwork):
    """Normalizing flow of dual coupling layers; fast sampling and exact ``log_prob``.

    Parameters
    ----------
    depth : int, default 6
        Number of coupling layers; increase for more complex posteriors.
    transform : {"affine_final_spline", "affine", "spline", "affine_spline"}
        Default ``"affine_final_spline"``: affine couplings with a spline as the last
        layer (the affine layers carry location, scale and dependence; the one spline
        gives each coordinate a skewed or truncated shape, e.g. a posterior cut by a
        prior's box, which affine couplings of nearly independent coordinates cannot, at
        little more than an affine flow's cost; the comparison is in BENCHMARKS.md). It is
        chosen for flows of the default depth: in a shallow flow (depth 2) the spline is
        half the flow and fits near-normal posteriors worse than affine couplings do.
        ``"affine"``: affine couplings only (for one parameter a Gaussian family, exact
        for conjugate normal posteriors). ``"spline"``: monotone rational-quadratic
        splines in every layer (``transform_kwargs``: ``bins`` default 16, ``bound``
        default 5.0; identity outside ``[-bound, bound]``, for every spline layer).
        ``"affine_spline"``: both in turn (even layers affine, odd layers spline).
    permutation : {"random", "swap", None}, default "random"
        Fixed permutation before each layer.
    use_actnorm : bool, default True
        Learned per-dimension scale and shift before each layer.
    base_distribution : {"normal", "student_t"}, default "normal"
        ``"student_t"`` (``df`` degrees of freedom, default 5) for heavy-tailed posteriors.
    subnet : {"mlp"}, default "mlp"
        Backbone of each coupling layer.
    subnet_kwargs : dict, optional
        Options of each coupling's :class:`~amortized.networks.MLP` (``widths`` default
        (128, 128), ``activation``, ``dropout``, ``residual``).

    Examples
    --------
    >>> net = CouplingFlow(depth=10, transform="spline",
    ...                    subnet_kwargs={"widths": [256, 256, 256], "dropout": 0.05})
    """

    layers: tuple[_Coupling, ...] | None
    actnorm: tuple[tuple[jax.Array, jax.Array], ...] | None
    perms: tuple[jax.Array, ...] | None
    base: str = eqx.field(static=True)
    df: float = eqx.field(static=True)

    one_pass_log_prob = True

    @strict
    def __init__(
        self,
        subnet: str = "mlp",
        depth: int = 6,
        transform: str = "affine_final_spline",
        permutation: str | None = "random",
        use_actnorm: bool = True,
        base_distribution: str = "normal",
        df: float = DEFAULT_DF,
        subnet_kwargs: Mapping[str, Any] | None = None,
        transform_kwargs: Mapping[str, Any] | None = None,
        dim: int = 0,
        cond_dim: int = 0,
        key: jax.Array | None = None,
        layout: tuple | None = None,
    ):
        check_choice("CouplingFlow", "subnet", subnet, ("mlp",))
        check_choice("CouplingFlow", "transform", transform, TRANSFORMS)
        check_choice("CouplingFlow", "permutation", permutation, PERMUTATIONS)
        check_choice("CouplingFlow", "base_distribution", base_distribution, BASE_DISTRIBUTIONS)
        check_choice("CouplingFlow", "use_actnorm", use_actnorm, (True, False))
        if int(depth) <= 0:
            raise ValueError(f"CouplingFlow: depth must be a positive integer, got {depth!r}")
        sub = {"widths": (128, 128)} | strict_kwargs(
            "CouplingFlow(subnet_kwargs)",
            subnet_kwargs,
            MLP_OPTIONS,
        )
        tk = SPLINE_DEFAULTS | strict_kwargs(
            "CouplingFlow(transform_kwargs)", transform_kwargs, SPLINE_OPTIONS
        )
        # options that would configure nothing raise rather than pass unnoticed; the
        # defaults themselves are accepted, as every saved configuration carries them
        if transform == "affine" and tk != SPLINE_DEFAULTS:
            raise ValueError(
                f"CouplingFlow: transform_kwargs {dict(transform_kwargs or {})} set a spline, "
                f"but transform='affine' has none; use transform in {TRANSFORMS[1:]}"
            )
        if base_distribution != "student_t" and float(df) != DEFAULT_DF:
            raise ValueError(
                f"CouplingFlow: df={df!r} is the Student-t base's degrees of freedom, but "
                f"base_distribution={base_distribution!r}; use base_distribution='student_t'"
            )
        sub["widths"] = list(sub["widths"])
        self.config_json = encode_config(
            subnet=subnet,
            depth=int(depth),
            transform=transform,
            permutation=permutation,
            use_actnorm=bool(use_actnorm),
            base_distribution=base_distribution,
            df=float(df),
            subnet_kwargs=sub,
            transform_kwargs=tk,
        )
        self.dim, self.cond_dim = int(dim), int(cond_dim)
        # an image target is flattened; the flow itself has no spatial structure
        self.layout = None if layout is None else tuple(int(v) for v in layout)
        self.base, self.df = base_distribution, float(df)
        if self.dim == 0:
            self.layers = self.actnorm = self.perms = None
            return
        if key is None:
            raise ValueError("CouplingFlow: building needs a PRNG key")
        keys = jax.random.split(key, 2 * int(depth))
        self.layers = tuple(
            _Coupling(
                self.dim,
                self.cond_dim,
                layer_transform(transform, i, int(depth)),
                sub,
                tk["bins"],
                tk["bound"],
                key=keys[i],
            )
            for i in range(int(depth))
        )
        self.actnorm = (
            tuple((jnp.zeros(self.dim), jnp.zeros(self.dim)) for _ in range(int(depth)))
            if use_actnorm
            else None
        )
        if permutation == "random":
            self.perms = tuple(
                jax.random.permutation(keys[depth + i], self.dim) for i in range(int(depth))
            )
        elif permutation == "swap":
            self.perms = tuple(jnp.arange(self.dim)[::-1] for _ in range(int(depth)))
        else:
            self.perms = None

    # -- rows (training) and one example ---------------------------------------------
    def _to_latent_rows(self, x, c, keys=None):
        """Rows ``x`` ``(N, dim)``, ``c`` ``(N, cond_dim)`` -> ``z`` ``(N, dim)`` and
        ``log|det dz/dx|`` ``(N,)``; ``keys`` ``(N,)`` per-row dropout keys (training)."""
        depth = len(self.layers)
        logdet = jnp.zeros(x.shape[:1])
        per_layer = (
            [None] * depth
            if keys is None
            else jnp.moveaxis(jax.vmap(lambda k: split_dropout_key(k, depth))(keys), 0, 1)
        )
        for i, layer in enumerate(self.layers):
            if self.actnorm is not None:
                log_s, b = self.actnorm[i]
                x = x * jnp.exp(log_s)[None, :] + b[None, :]
                logdet = logdet + jnp.sum(log_s)
            if self.perms is not None:
                x = x[:, self.perms[i]]
            x, ld = layer.forward_rows(x, c, per_layer[i])
            logdet = logdet + ld
        return x, logdet

    def _to_latent(self, x, c):
        """``x -> (z, log|det dz/dx|)`` for one example."""
        z, logdet = self._to_latent_rows(x[None, :], c[None, :])
        return z[0], logdet[0]

    def _from_latent(self, z, c):
        """``z -> (x, log|det dx/dz|)`` for one example."""
        logdet = jnp.zeros(())
        for i in reversed(range(len(self.layers))):
            z, ld = self.layers[i].inverse(z, c)
            logdet = logdet + ld
            if self.perms is not None:
                z = z[_inverse_permutation(self.perms[i])]
            if self.actnorm is not None:
                log_s, b = self.actnorm[i]
                z = (z - b) * jnp.exp(-log_s)
                logdet = logdet - jnp.sum(log_s)
        return z, logdet

    def _log_prob_one(self, x, c):
        z, logdet = self._to_latent(x, c)
        return base_log_prob(self.base, z, self.df) + logdet

    # -- batched -----------------------------------------------------------------------
    def log_prob(self, x, cond):
        self._require_built("log_prob")
        return jax.vmap(self._log_prob_one)(x, cond)

    def forward(self, x, cond):
        """Batched ``x -> (z, log|det dz/dx|)``."""
        self._require_built("forward")
        return jax.vmap(self._to_latent)(x, cond)

    def inverse(self, z, cond):
        """Batched ``z -> x``."""
        self._require_built("inverse")
        return jax.vmap(self._from_latent)(z, cond)[0]

    def sample(self, key, cond):
        self._require_built("sample")
        z = base_sample(self.base, key, (cond.shape[0], self.dim), self.df)
        return self.inverse(z, cond)

    def sample_and_log_prob(self, key, cond):
        """Draws and their log density in one inverse pass:
        ``log q(x) = log p_base(z) - log|det dx/dz|``."""
        self._require_built("sample_and_log_prob")
        z = base_sample(self.base, key, (cond.shape[0], self.dim), self.df)
        x, logdet = jax.vmap(self._from_latent)(z, cond)
        return x, base_log_prob(self.base, z, self.df) - logdet

    def loss(self, x, cond, key, train=True, step=None):
        if not train:
            return -jnp.mean(self.log_prob(x, cond))
        # the whole batch at once: the subnets' weight gradients then run as fast
        # matrix products (MLP.train_rows); each row keeps its own dropout key
        z, logdet = self._to_latent_rows(x, cond, split_dropout_key(key, x.shape[0]))
        log_base = jax.vmap(lambda v: base_log_prob(self.base, v, self.df))(z)
        return -jnp.mean(log_base + logdet)
