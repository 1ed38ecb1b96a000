"""When offline training lowers its learning rate and when it stops.

A network trained on a fixed set of simulations starts to memorize them after some epochs:
the held-out loss then rises while the training loss falls, and which epoch that is depends
on the model, the budget and the networks. So the number of epochs is not the user's
choice: after every epoch the rule looks at the validation losses so far and

- **stops** once the loss has not improved for ``patience`` epochs and either it is
  rising (the best epoch beats the last beyond chance: memorizing) or the learning rate is
  at its floor (the best epoch's networks are restored by the training loop); a plateau
  above the floor lowers the rate instead;
- **lowers the learning rate** by ``factor`` once it has not improved for
  ``reduce_after`` epochs since the last improvement or the last reduction, down to
  ``min_scale`` times the schedule's rate.

Why lower it before stopping: at a high learning rate the validation loss of a model that
does not overfit wanders near its minimum, and a rule that only stops ended such runs long
before the low-rate epochs that make the posterior precise (benchmarks/LOG.md, session 13);
lowering the rate on a plateau is what a cosine schedule does at its end, but at the time
the losses call for it.

What counts as an improvement for the stop: the training loop
(:func:`~amortized.training.fit.fit`) counts an epoch as improving only when its per-example
held-out losses beat those of the last improving epoch beyond chance
(:func:`significantly_better`); the learning rate is still lowered only when no new minimum
came for ``reduce_after`` epochs. Once the learning rate is
at its floor the held-out loss wanders by a few thousandths of a nat; counting every new
minimum of that wandering as progress kept a mixture model training for 47 epochs after its
last reduction with nothing to show for it (benchmarks/LOG.md, session 16). Slow, real
progress still counts: it is measured against a fixed reference epoch, so it accumulates
until it is significant, as long as it comes at ``min_gain`` (0.002 nats) per epoch or
faster: a weight average (the default optimizer's) improves smoothly enough that progress
too slow to matter is still beyond chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The held-out gain per epoch (nats per example, the loss's unit) below which progress
#: does not count for the stop (:attr:`PlateauRule.min_gain`). Why 0.002: networks
#: returned as a weight average improve smoothly, so their slow progress is beyond chance
#: for many epochs; on the scenario suite the last 0.03 nats of such progress took as many
#: epochs again as the rest (mixture 55 against 84 epochs, C2ST 0.521 against 0.516;
#: benchmarks/LOG.md, session 28).
MIN_GAIN = 0.002


def stale_epochs(val_losses) -> int:
    """Epochs since the lowest validation loss so far (0 when the last one is the lowest).

    Any decrease counts as an improvement (the validation set is fixed and so is its key, so
    the loss does not move by chance between epochs of equal networks).

    >>> stale_epochs([3.0, 2.0, 2.5, 2.1])
    2
    """
    v = np.asarray(val_losses, dtype=float)
    if v.size == 0:
        return 0
    return int(v.size - 1 - np.argmin(np.where(np.isfinite(v), v, np.inf)))


def selection_z(num_epochs: int, level: float = 0.05) -> float:
    """The z that the best of ``num_epochs`` validation losses must beat the last epoch's
    by before its networks replace the last ones: the two-sided ``level`` quantile with a
    Bonferroni correction for having picked the lowest of ``num_epochs`` (at least 2.0).

    >>> round(selection_z(1), 2), round(selection_z(12), 2), round(selection_z(50), 2)
    (2.0, 2.87, 3.29)
    """
    from statistics import NormalDist

    return max(2.0, NormalDist().inv_cdf(1 - level / (2 * max(int(num_epochs), 1))))


def significantly_better(best_losses, last_losses, z: float = 2.0) -> tuple[bool, float, float]:
    """Whether the best epoch's per-example validation losses beat the last epoch's by
    more than ``z`` standard errors of their paired mean difference: ``(better, mean
    difference last - best, standard error)``.

    Why: the best epoch is the minimum of many noisy validation losses, so on a model that
    does not overfit it is often an early epoch that fitted the held-out examples well by
    chance (a lognormal model: epoch 3 of 13 lowest by 0.006 nats, with a log density off by
    0.17 where the last epoch's was off by 0.03; benchmarks/LOG.md). A network that
    memorized its training data is worse on held-out examples by many standard errors and
    is still replaced by the best epoch's.

    >>> rng = np.random.default_rng(0)
    >>> base = rng.normal(size=400)
    >>> significantly_better(base, base + 0.5 + 0.1 * rng.normal(size=400))[0]
    True
    >>> significantly_better(base, base + 0.1 * rng.normal(size=400))[0]
    False
    """
    d = np.asarray(last_losses, dtype=float) - np.asarray(best_losses, dtype=float)
    diff = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("inf")
    return bool(diff > z * se), diff, se


@dataclass(frozen=True)
class PlateauRule:
    """The early-stopping rule's settings (see the module docstring).

    ``patience`` (default 10) epochs without improvement stop training; ``reduce_after``
    (default: a third of ``patience``, at least 1) epochs without improvement since the
    last improvement or reduction multiply the learning rate by ``factor`` (default 0.2),
    at most down to ``min_scale`` (default 0.008 = 0.2^3: three reductions, about the
    cosine schedule's end at a hundredth of the peak rate); ``min_gain`` (default
    :data:`MIN_GAIN`, 0.002 nats per epoch): slower progress does not count for the stop
    (:meth:`improves`).
    """

    patience: int = 10
    reduce_after: int | None = None
    factor: float = 0.2
    min_scale: float = 0.2**3
    min_gain: float | None = None

    def __post_init__(self):
        if self.min_gain is None:
            object.__setattr__(self, "min_gain", MIN_GAIN)
        if isinstance(self.min_gain, bool) or not isinstance(self.min_gain, int | float):
            raise TypeError(
                f"PlateauRule: min_gain must be a number >= 0 (nats per epoch), got "
                f"{self.min_gain!r}"
            )
        if not self.min_gain >= 0:
            raise ValueError(f"PlateauRule: min_gain must be >= 0, got {self.min_gain}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int):
            raise TypeError(f"PlateauRule: patience must be a positive int, got {self.patience!r}")
        if self.patience < 1:
            raise ValueError(f"PlateauRule: patience must be a positive int, got {self.patience}")
        if self.reduce_after is None:
            object.__setattr__(self, "reduce_after", max(1, self.patience // 3))
        if not 0 < self.factor < 1:
            raise ValueError(f"PlateauRule: factor must lie in (0, 1), got {self.factor}")

    def improves(self, last_losses, ref_losses, epochs_apart: int) -> bool:
        """Whether the last epoch's per-example held-out losses beat the reference
        epoch's (``epochs_apart`` epochs earlier) beyond chance
        (:func:`significantly_better`) and by at least ``min_gain`` per epoch between
        them: progress slower than that does not count for the stop.

        >>> rng = np.random.default_rng(0)
        >>> ref = rng.normal(size=4000)
        >>> last = ref - 0.01 + 0.01 * rng.normal(size=4000)
        >>> PlateauRule(min_gain=0.0).improves(last, ref, 10)
        True
        >>> PlateauRule(min_gain=0.002).improves(last, ref, 10)
        False
        """
        better, gain, _ = significantly_better(last_losses, ref_losses)
        return better and gain >= self.min_gain * epochs_apart

    def next(
        self,
        val_losses,
        scale: float,
        last_reduction: int | None,
        stale: int | None = None,
        rising: bool = False,
    ) -> tuple[str, float]:
        """``("stop" | "reduce" | "continue", new_scale)`` after the epoch whose loss is the
        last of ``val_losses`` (this run's only); ``last_reduction``: the index in
        ``val_losses`` of the epoch after which the rate was last lowered (``None``: not
        yet); ``stale``: epochs since the last improvement beyond chance, for the stop
        (default :func:`stale_epochs`); ``rising``: the best epoch beats the last one beyond
        chance (the network memorizes its training data).

        The learning rate is lowered on :func:`stale_epochs` (any new minimum counts):
        early on, at a high rate, the held-out loss falls by less than chance per epoch
        while it falls steadily, and lowering the rate there cost the regression scenario
        accuracy (LOG, session 16). When ``patience`` runs out, training stops if the loss
        is rising or the rate is at its floor (and has been for ``reduce_after`` epochs);
        otherwise the rate is lowered first, ``reduce_after`` epochs apart: a plateau at a
        high rate is where the low-rate epochs that make a posterior precise have not come
        yet (a location-scale model stopped one reduction short of its floor; LOG,
        session 17).

        >>> rule = PlateauRule(patience=4, reduce_after=2)
        >>> rule.next([3.0, 2.0, 2.1, 2.2], 1.0, None)
        ('reduce', 0.2)
        >>> rule.next([3.0, 2.0, 2.1, 2.2, 2.3, 2.4], 0.5, 3)
        ('reduce', 0.1)
        >>> rule.next([3.0, 2.0, 2.1, 2.2, 2.3, 2.4], 0.5, 3, rising=True)
        ('stop', 0.5)
        >>> rule.next([3.0, 2.0, 2.1, 2.2, 2.3, 2.4], rule.min_scale, 3)[0]
        'stop'
        """
        n = len(val_losses)
        lowest = stale_epochs(val_losses)
        since_reduction = n if last_reduction is None else n - 1 - last_reduction
        at_floor = scale <= self.min_scale * (1 + 1e-6)
        lower = ("reduce", max(scale * self.factor, self.min_scale))
        if (lowest if stale is None else stale) >= self.patience:
            if rising or (at_floor and since_reduction >= self.reduce_after):
                return "stop", scale
            if not at_floor and since_reduction >= self.reduce_after:
                return lower
            return "continue", scale
        if min(lowest, since_reduction) >= self.reduce_after and not at_floor:
            return lower
        return "continue", scale
