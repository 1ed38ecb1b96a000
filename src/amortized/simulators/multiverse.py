"""A model family over named analytic choices: every combination of options is a
*universe*, and one network trained on simulations from all of them (the universe as a
context variable) gives every universe's posterior for every dataset (multiverse analysis;
Elsemüller et al. 2024, talk 000: the cost of K universes grows sub-linearly in K).

``Multiverse(model, choices)`` with ``choices = {"prior_scale": {"wide": 5.0, "narrow":
1.0}, "noise": {"normal": "normal", "student_t": "t"}}``: each choice names an argument of
the model (a NumPyro model's keyword argument, or an argument of one of a simulator's
functions), each option a value for it. Each simulation draws a universe uniformly (every
choice's option independently), simulates from the model with those values, and adds the
context ``"universe"``: the options' one-hot codes side by side, ``(batch, sum of the
numbers of options)``. The default adapter passes it to the inference network as a
condition; at inference the analyst names the universes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .numpyro_model import NumPyroModel
from .simulator import Simulator, make_simulator

#: the simulator output that carries the universe
CONTEXT = "universe"


def _check_choices(choices: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(choices, Mapping) or not choices:
        raise TypeError(
            f"Multiverse: choices must be a non-empty dict {{choice: {{option: value}}}}, "
            f"got {choices!r}"
        )
    out = {}
    for name, options in choices.items():
        if not isinstance(name, str):
            raise TypeError(f"Multiverse: choice names must be strings, got {name!r}")
        if not isinstance(options, Mapping):
            raise TypeError(
                f"Multiverse: choice {name!r} must map option names to values, got "
                f"{type(options).__name__}"
            )
        if len(options) < 2:
            raise ValueError(
                f"Multiverse: choice {name!r} has {len(options)} option(s) "
                f"({list(options)}); a choice needs at least two (a single option is not a "
                f"choice: pass it to the model directly)"
            )
        bad = [o for o in options if not isinstance(o, str)]
        if bad:
            raise TypeError(f"Multiverse: option names of {name!r} must be strings, got {bad}")
        out[name] = dict(options)
    return out


class Multiverse:
    """See the module docstring.

    Parameters
    ----------
    model : NumPyroModel or Simulator
    choices : dict
        ``{choice: {option: value}}``, at least two options per choice.

    Attributes: ``choices``, ``universes`` (tuples of option names, every combination, the
    first choice varying slowest), ``names`` (``"prior_scale=wide, noise=normal"``),
    ``models`` (NumPyro models: one :class:`NumPyroModel` per universe, with its log
    densities), ``simulator``.

    >>> def prior(scale):
    ...     return {"mu": np.random.normal(0.0, scale)}
    >>> def likelihood(mu, noise):
    ...     return {"y": mu + noise * np.random.normal(size=5)}
    >>> mv = Multiverse(make_simulator([prior, likelihood]),
    ...                 {"scale": {"wide": 5.0, "narrow": 1.0}, "noise": {"low": 0.5, "high": 2.0}})
    >>> mv.names[:2]
    ('scale=wide, noise=low', 'scale=wide, noise=high')
    >>> d = mv.simulator.sample(6, seed=0)
    >>> d["universe"].shape, d["universe"].sum(axis=1).tolist()
    ((6, 4), [2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    """

    def __init__(self, model: NumPyroModel | Simulator, choices: Mapping[str, Mapping[str, Any]]):
        self.choices = _check_choices(choices)
        self.model = model
        self.universes: tuple[tuple[str, ...], ...] = tuple(
            itertools.product(*(list(o) for o in self.choices.values()))
        )
        self.names = tuple(self.universe_name(u) for u in self.universes)
        if isinstance(model, NumPyroModel):
            # each universe is a model of its own (log densities for checks and MCMC)
            self.models = tuple(
                NumPyroModel(model.model, model.observed, {**model.model_kwargs, **self.values(u)})
                for u in self.universes
            )
            supports = {str(m.supports) for m in self.models}
            if len(supports) > 1:
                raise ValueError(
                    f"Multiverse: the universes' latent sites have different supports "
                    f"({sorted(supports)}); one adapter must constrain them all, so every "
                    f"universe needs the same supports"
                )
            sims = [m.simulator for m in self.models]
            self._sample_one = lambda i, n, seed: sims[i].sample(n, seed=seed)
        elif isinstance(model, Simulator):
            self.models = None
            names, var_kw = model.input_names()
            unused = [c for c in self.choices if c not in names]
            if unused and not var_kw:
                raise KeyError(
                    f"Multiverse: choices {unused} are not arguments of any of the "
                    f"simulator's functions (they take {sorted(names)})"
                )
            self._sample_one = lambda i, n, seed: {
                k: v
                for k, v in model.sample(n, seed=seed, **self.values(self.universes[i])).items()
                if k not in self.choices
            }
        else:
            raise TypeError(
                f"Multiverse: model must be a bf.NumPyroModel or a simulator from "
                f"bf.make_simulator, got {type(model).__name__}"
            )
        self.simulator = self._simulator()
        self.simulator.context = self.signature

    @property
    def signature(self) -> dict[str, Any]:
        """What a network trained on these simulations expects of its context:
        ``{"universe": {choice: [option, ...]}}`` (the one-hot code's layout)."""
        return {CONTEXT: {c: list(o) for c, o in self.choices.items()}}

    # -- universes ---------------------------------------------------------------------
    def universe_name(self, universe: Sequence[str]) -> str:
        return ", ".join(f"{c}={o}" for c, o in zip(self.choices, universe, strict=True))

    def values(self, universe: Sequence[str]) -> dict[str, Any]:
        """``{choice: value}`` of a universe (a tuple of option names)."""
        return {c: self.choices[c][o] for c, o in zip(self.choices, universe, strict=True)}

    @property
    def context_size(self) -> int:
        return sum(len(o) for o in self.choices.values())

    def encode(self, index: int) -> np.ndarray:
        """The context vector ``(context_size,)`` of universe ``index``: one one-hot block
        per choice."""
        blocks = []
        for c, o in zip(self.choices, self.universes[index], strict=True):
            block = np.zeros(len(self.choices[c]))
            block[list(self.choices[c]).index(o)] = 1.0
            blocks.append(block)
        return np.concatenate(blocks)

    def select(self, universes: Any = None) -> list[int]:
        """Indices of universes named by ``universes``: None (all), a universe's name
        (``"prior=wide, noise=normal"``), a dict of options (``{"prior": "wide"}``: every
        universe with these options), an index into :attr:`universes`, or a list of these.
        Unknown names raise, listing the accepted ones."""
        if universes is None:
            return list(range(len(self.universes)))
        if isinstance(universes, str | Mapping | int | np.integer):
            universes = [universes]
        picked: list[int] = []
        for u in universes:
            if isinstance(u, int | np.integer) and not isinstance(u, bool):
                if not 0 <= u < len(self.universes):
                    raise IndexError(
                        f"Multiverse: universe index {u} is out of range for "
                        f"{len(self.universes)} universes"
                    )
                hits = [int(u)]
            elif isinstance(u, str):
                if u not in self.names:
                    raise KeyError(
                        f"Multiverse: unknown universe {u!r}; the universes are {list(self.names)}"
                    )
                hits = [self.names.index(u)]
            elif isinstance(u, Mapping):
                for c, o in u.items():
                    if c not in self.choices:
                        raise KeyError(
                            f"Multiverse: unknown choice {c!r}; the choices are "
                            f"{list(self.choices)}"
                        )
                    if o not in self.choices[c]:
                        raise KeyError(
                            f"Multiverse: choice {c!r} has no option {o!r}; its options are "
                            f"{list(self.choices[c])}"
                        )
                hits = [
                    i
                    for i, uni in enumerate(self.universes)
                    if all(uni[list(self.choices).index(c)] == o for c, o in u.items())
                ]
            else:
                raise TypeError(
                    f"Multiverse: a universe is named by a string, a dict of options or an "
                    f"index, got "
                    f"{type(u).__name__}"
                )
            picked += [i for i in hits if i not in picked]
        return picked

    # -- simulation --------------------------------------------------------------------
    def _simulator(self) -> Simulator:
        codes = np.stack([self.encode(i) for i in range(len(self.universes))])
        k = len(self.universes)

        def simulate_universes(batch_size, rng):
            which = rng.integers(0, k, size=batch_size)
            out: dict[str, np.ndarray] = {}
            first = None
            for i in range(k):
                rows = np.flatnonzero(which == i)
                if rows.size == 0:
                    continue
                sims = self._sample_one(i, rows.size, int(rng.integers(0, 2**31 - 1)))
                shapes = {n: np.shape(v)[1:] for n, v in sims.items()}
                if first is None:
                    first = (i, shapes)
                    out = {n: np.empty((batch_size, *s), np.asarray(sims[n]).dtype)
                           for n, s in shapes.items()}  # fmt: skip
                elif shapes != first[1]:
                    raise ValueError(
                        f"Multiverse: universe {self.names[i]!r} simulates {shapes}, universe "
                        f"{self.names[first[0]]!r} {first[1]}; every universe must give the "
                        f"same outputs with the same shapes"
                    )
                for n, v in sims.items():
                    out[n][rows] = v
            out[CONTEXT] = codes[which]
            return out

        return make_simulator([simulate_universes], is_batched=True)

    # -- routing -----------------------------------------------------------------------
    def default_adapter(self, observed_as: str = "inference_conditions"):
        """The NumPyro model's default adapter with the universe code added to the
        inference conditions (beside the observed sites, or alone when they go to a
        summary network). For a simulator, write the adapter and route ``"universe"`` into
        ``inference_conditions``."""
        if not isinstance(self.model, NumPyroModel):
            raise TypeError(
                "Multiverse.default_adapter: only for NumPyro models; for a simulator write "
                "the adapter, with 'universe' concatenated into 'inference_conditions'"
            )
        a = self.model.default_adapter(observed_as)
        if observed_as == "inference_conditions":
            return a.concatenate(["inference_conditions", CONTEXT], into="inference_conditions")
        return a.rename(CONTEXT, "inference_conditions")
