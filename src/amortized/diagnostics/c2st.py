"""Classifier two-sample test (C2ST), following the sbibm protocol exactly.

Both samples are standardized with the reference sample's mean and unbiased standard
deviation; a scikit-learn ``MLPClassifier(activation="relu", hidden_layer_sizes=(10 d, 10 d),
max_iter=10000, solver="adam", random_state=seed)`` separates them under 5-fold shuffled
cross-validation (``KFold(random_state=seed)``); the score is the mean held-out accuracy.
0.5: indistinguishable; 1.0: fully separable.

``classifier="jax"`` trains the same classifier (architecture, initialization, loss, Adam,
batches, stopping rule; see ``_classifier.py``) compiled with JAX on the same folds: the
same test up to float32 and the random streams, and many times faster where
scikit-learn's epochs are the cost (two close 10-D samples: minutes per fold).
"""

from __future__ import annotations

import numpy as np

CLASSIFIERS = ("sklearn", "jax")


def _fold_seeds(seed: int, num: int) -> list[int]:
    """Each fold's classifier seed, split from the call's seed by NumPy's SeedSequence
    (never ``seed + fold``, whose streams are another call's; NumPy only, as this file also
    runs outside the package)."""
    return [
        int(s.generate_state(1)[0] & 0x7FFFFFFF) for s in np.random.SeedSequence(seed).spawn(num)
    ]


def c2st(
    reference: np.ndarray,
    approximate: np.ndarray,
    seed: int = 1,
    n_folds: int = 5,
    classifier: str = "sklearn",
) -> float:
    """C2ST accuracy between ``reference`` ``(n, dim)`` and ``approximate`` ``(m, dim)``.

    ``classifier``: ``"sklearn"`` (default; the sbibm protocol verbatim) or ``"jax"`` (the
    same training compiled; use it for large or high-dimensional samples).

    >>> rng = np.random.default_rng(0)
    >>> 0.4 < c2st(rng.normal(size=(500, 2)), rng.normal(size=(500, 2))) < 0.6
    True
    """
    from sklearn.model_selection import cross_val_score
    from sklearn.neural_network import MLPClassifier

    # checked here rather than with _validation.check_choice: this file and _classifier.py
    # also run outside the package (benchmarks/bayesflow_compare.py scores BayesFlow with them)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"c2st: classifier must be one of {list(CLASSIFIERS)}, got {classifier!r}")

    data, labels, folds = _prepared(reference, approximate, seed, n_folds)
    dim = data.shape[1]
    if classifier == "jax":
        from ._classifier import mlp_classifier_accuracy

        return float(
            np.mean(
                [
                    mlp_classifier_accuracy(
                        data[train],
                        labels[train],
                        data[test],
                        labels[test],
                        hidden=(10 * dim, 10 * dim),
                        seed=fold_seed,
                    )[0]
                    for fold_seed, (train, test) in zip(
                        _fold_seeds(seed, len(folds)), folds, strict=True
                    )
                ]
            )
        )
    clf = MLPClassifier(
        activation="relu",
        hidden_layer_sizes=(10 * dim, 10 * dim),
        max_iter=10000,
        solver="adam",
        random_state=seed,
    )
    return float(np.mean(cross_val_score(clf, data, labels, cv=folds, scoring="accuracy")))


def c2st_many(
    references: list[np.ndarray],
    approximates: list[np.ndarray],
    seed: int = 1,
    n_folds: int = 5,
) -> np.ndarray:
    """:func:`c2st` with ``classifier="jax"`` for several pairs at once, ``(num_pairs,)``:
    the folds of all pairs (of equal sizes) train as one vmapped program, so on a GPU ten
    10-D pairs cost about what one fold does. Same folds, seeds and training as
    :func:`c2st` per pair; on a CPU the batch runs as long as its slowest classifier.

    >>> rng = np.random.default_rng(0)
    >>> a = [rng.normal(size=(300, 2)) for _ in range(2)]
    >>> b = [rng.normal(size=(300, 2)), rng.normal(3.0, 1.0, size=(300, 2))]
    >>> scores = c2st_many(a, b)
    >>> bool(scores[0] < 0.65 and scores[1] > 0.9)
    True
    """
    from ._classifier import mlp_classifier_accuracies

    if len(references) != len(approximates) or not len(references):
        raise ValueError(
            f"c2st_many: expected two equally long, non-empty lists of samples, got "
            f"{len(references)} and {len(approximates)}"
        )
    groups: dict[tuple, list] = {}
    for pair, (ref, approx) in enumerate(zip(references, approximates, strict=True)):
        data, labels, folds = _prepared(ref, approx, seed, n_folds)
        for fold_seed, (train, test) in zip(_fold_seeds(seed, len(folds)), folds, strict=True):
            # one compiled program per shape: folds of unequal size go in separate batches
            groups.setdefault((len(train), len(test), data.shape[1]), []).append(
                (pair, data[train], labels[train], data[test], labels[test], fold_seed)
            )
    totals = np.zeros(len(references))
    for (_, _, dim), jobs in groups.items():
        acc, _ = mlp_classifier_accuracies(
            np.stack([j[1] for j in jobs]),
            np.stack([j[2] for j in jobs]),
            np.stack([j[3] for j in jobs]),
            np.stack([j[4] for j in jobs]),
            hidden=(10 * dim, 10 * dim),
            seeds=np.array([j[5] for j in jobs]),
        )
        np.add.at(totals, [j[0] for j in jobs], acc)
    return totals / n_folds


def _prepared(reference, approximate, seed: int, n_folds: int):
    """Both samples standardized by the reference's mean and sd, their labels (0 reference,
    1 approximate) and the shuffled K folds as (train, test) index pairs; checks shapes."""
    from sklearn.model_selection import KFold

    x = np.asarray(reference, np.float64)
    y = np.asarray(approximate, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"c2st: expected two (n, dim) arrays with the same dim, got shapes "
            f"{x.shape} and {y.shape}"
        )
    for name, a in (("reference", x), ("approximate", y)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"c2st: {name} holds {int(np.sum(~np.isfinite(a)))} non-finite values")
    mean, std = x.mean(axis=0), x.std(axis=0, ddof=1)
    std = np.where(std > 0, std, 1.0)
    data = np.concatenate([(x - mean) / std, (y - mean) / std])
    labels = np.concatenate([np.zeros(len(x)), np.ones(len(y))])
    folds = list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(data))
    return data, labels, folds
