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
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    # checked here rather than with _validation.check_choice: this file and _classifier.py
    # also run outside the package (benchmarks/bayesflow_compare.py scores BayesFlow with them)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"c2st: classifier must be one of {list(CLASSIFIERS)}, got {classifier!r}")

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
    dim = x.shape[1]
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
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
                        seed=seed + fold,
                    )[0]
                    for fold, (train, test) in enumerate(folds.split(data))
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
