"""Subnets: a residual MLP and a time-conditioned MLP (for flow matching and diffusion).

Both act on one example (a vector); batch them with ``jax.vmap``. Dropout is active only
when a PRNG ``key`` is passed (training); without a key the network is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _random
from .._validation import check_choice, strict_kwargs
from .dense import dense_rows

ACTIVATIONS = {
    "silu": jax.nn.silu,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "tanh": jnp.tanh,
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
    "elu": jax.nn.elu,
}


def dropout_keep_mask(key: jax.Array, layer: int, shape: tuple[int, ...], rate: float):
    """Bernoulli(1 - rate) keep mask from a counter-based hash of (key, layer, position).

    Dropout needs masks that are independent across rows, layers and steps, not
    cryptographic randomness; hashing the key's bits with the element index costs a few
    integer operations per element, where drawing the mask with threefry made dropout the
    most expensive part of a coupling-flow training step on CPU (3 ms of 9).
    """
    bits = _random.bits(key, layer, tuple(shape))
    return bits >= jnp.uint32(min(int(rate * 2**32), 2**32 - 1))


def split_dropout_key(key: jax.Array, num: int) -> jax.Array:
    """``num`` keys derived from ``key`` by the counter hash, for dropout masks
    (:func:`amortized._random.split`).

    Same role as ``jax.random.split`` for keys that only seed dropout: on CPU, JAX lowers
    each threefry split to a small rolled loop, and a coupling-flow training step that
    split its key per example, per layer and per coupling ran eight such loops (about a
    tenth of the step) where these few integer operations per key suffice.
    """
    return _random.split(key, num)


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"MLP: activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def zero_layer(layer):
    """``layer`` (anything with ``weight`` and ``bias``) with both set to zero: an output
    layer that starts its network at the zero map."""
    return eqx.tree_at(
        lambda l: (l.weight, l.bias),
        layer,
        (jnp.zeros_like(layer.weight), jnp.zeros_like(layer.bias)),
    )


class MLP(eqx.Module):
    """Residual multilayer perceptron ``R^in -> R^out``.

    h_0 = act(W_0 x + b_0);  h_i = h_{i-1} + act(W_i dropout(h_{i-1}) + b_i) when widths match
    (``residual=True``), else h_i = act(W_i h_{i-1} + b_i);  y = W_out h_L + b_out.
    With ``zero_output=True`` the output layer starts at zero, so a coupling layer or a
    velocity field starts as the identity / zero map (stable early training).

    Parameters
    ----------
    widths : sequence of int, default (256, 256)
    activation : str, default "silu"
    dropout : float, default 0.05
    residual : bool, default True
    """

    layers: tuple[eqx.nn.Linear, ...]
    out: eqx.nn.Linear
    activation: str = eqx.field(static=True)
    dropout: float = eqx.field(static=True)
    residual: bool = eqx.field(static=True)

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        widths: Sequence[int] = (256, 256),
        activation: str = "silu",
        dropout: float = 0.05,
        residual: bool = True,
        zero_output: bool = False,
        *,
        key: jax.Array,
    ):
        widths = tuple(int(w) for w in widths)
        if not widths or any(w <= 0 for w in widths):
            raise ValueError(f"MLP: widths must be positive integers, got {widths}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP: dropout must lie in [0, 1), got {dropout}")
        _activation(activation)
        keys = jax.random.split(key, len(widths) + 1)
        dims = (in_dim,) + widths
        self.layers = tuple(
            eqx.nn.Linear(dims[i], dims[i + 1], key=keys[i]) for i in range(len(widths))
        )
        out = eqx.nn.Linear(widths[-1], out_dim, key=keys[-1])
        self.out = zero_layer(out) if zero_output else out
        self.activation = activation
        self.dropout = float(dropout)
        check_choice("MLP", "residual", residual, (True, False))
        self.residual = bool(residual)

    def __call__(
        self,
        x: jax.Array,
        key: jax.Array | None = None,
        modulations: Sequence[tuple[jax.Array, jax.Array]] | None = None,
    ) -> jax.Array:
        """``modulations`` (one ``(scale, shift)`` per hidden layer) applies FiLM:
        pre-activations become ``a * (1 + scale) + shift``."""

        def keep(i, shape):
            return dropout_keep_mask(key, i, shape, self.dropout)

        return self._forward(
            x, lambda layer, v: layer(v), None if key is None else keep, modulations
        )

    def train_rows(self, xs: jax.Array, keys: jax.Array) -> jax.Array:
        """The training call on a whole batch: ``jax.vmap(self)(xs, keys)`` for rows ``xs``
        ``(rows, in)`` with one dropout key per row ``(rows,)``, the same values, computed
        batch-wise so that the weight gradients run as fast matrix products
        (:func:`~amortized.networks.dense.dense_rows`; reverse-mode derivatives only).
        Call it on the whole batch, not under ``vmap`` over rows."""

        def keep(i, shape):
            return jax.vmap(lambda k: dropout_keep_mask(k, i, shape[1:], self.dropout))(keys)

        return self._forward(xs, dense_rows, keep, None)

    def _forward(self, x, linear, keep, modulations):
        """The layers on ``x`` (one example, or rows for ``train_rows``); ``linear(layer, h)``
        applies a dense layer, ``keep(i, shape)`` gives layer i's dropout keep mask (None:
        no dropout)."""
        act = _activation(self.activation)
        h = x
        for i, layer in enumerate(self.layers):
            inp = h
            if keep is not None and self.dropout > 0 and i > 0:
                inp = jnp.where(keep(i, inp.shape), inp / (1.0 - self.dropout), 0.0)
            a = linear(layer, inp)
            if modulations is not None:
                scale, shift = modulations[i]
                a = a * (1.0 + scale) + shift
            z = act(a)
            h = h + z if (self.residual and i > 0 and h.shape == z.shape) else z
        return linear(self.out, h)

    def rows(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Apply to each row of ``x`` ``(N, in)``; with a key, each row gets its own
        dropout key."""
        if key is None:
            return jax.vmap(lambda r: self(r))(x)
        return jax.vmap(lambda r, k: self(r, k))(x, split_dropout_key(key, x.shape[0]))


def fourier_time_embedding(t: jax.Array, dim: int) -> jax.Array:
    """[t, sin(2 pi f_k t), cos(2 pi f_k t)] for ``dim // 2`` geometric frequencies."""
    half = dim // 2
    freqs = jnp.exp(jnp.linspace(0.0, jnp.log(32.0), half))
    ang = 2.0 * jnp.pi * freqs * t
    return jnp.concatenate([jnp.reshape(t, (1,)), jnp.sin(ang), jnp.cos(ang)])


TIME_MLP_OPTIONS = ("widths", "activation", "dropout", "residual", "time_embedding_dim")


def time_mlp_options(owner: str, subnet: str, subnet_kwargs) -> dict:
    """The TimeMLP options of a continuous-time network (``subnet`` "time_mlp" or "mlp", both
    this MLP): widths (256, 256, 256) unless given, unknown keys refused by name."""
    check_choice(owner, "subnet", subnet, ("time_mlp", "mlp"))
    sub = {"widths": [256, 256, 256]} | strict_kwargs(
        f"{owner}(subnet_kwargs)", subnet_kwargs, TIME_MLP_OPTIONS
    )
    sub["widths"] = list(sub["widths"])
    return sub


class TimeMLP(eqx.Module):
    """MLP of ``(x, t, condition)`` with a Fourier embedding of the scalar time ``t``.

    The embedding enters the input and modulates each hidden layer by a learned scale and
    shift (FiLM), so that the field can change sharply with ``t``.
    """

    mlp: MLP
    film: tuple[eqx.nn.Linear, ...]
    time_dim: int = eqx.field(static=True)

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        widths: Sequence[int] = (256, 256, 256),
        activation: str = "silu",
        dropout: float = 0.05,
        residual: bool = True,
        time_embedding_dim: int = 32,
        zero_output: bool = False,
        *,
        key: jax.Array,
    ):
        k1, k2 = jax.random.split(key)
        self.time_dim = int(time_embedding_dim) + 1
        self.mlp = MLP(
            in_dim + self.time_dim,
            out_dim,
            widths,
            activation,
            dropout,
            residual,
            zero_output,
            key=k1,
        )
        fkeys = jax.random.split(k2, len(self.mlp.layers))
        self.film = tuple(
            zero_layer(eqx.nn.Linear(self.time_dim, 2 * layer.out_features, key=k))
            for layer, k in zip(self.mlp.layers, fkeys, strict=True)
        )

    def __call__(self, x: jax.Array, t: jax.Array, key: jax.Array | None = None) -> jax.Array:
        emb = fourier_time_embedding(t, self.time_dim - 1)
        mods = [tuple(jnp.split(film(emb), 2)) for film in self.film]
        return self.mlp(jnp.concatenate([x, emb]), key, mods)
