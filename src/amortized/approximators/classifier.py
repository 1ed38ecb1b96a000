"""What the classifier-based approximators (model comparison, ratio estimation) share: the
check of the classifier's options, and the refusal of draws and densities they have not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def check_classifier_options(where: str, classifier_network: Any) -> None:
    """Raise unless ``classifier_network`` is None or a dict of MLP options."""
    if classifier_network is not None and not isinstance(classifier_network, Mapping):
        raise TypeError(
            f"{where}: classifier_network takes the options of the classifier MLP as a dict "
            f"(e.g. {{'widths': (128, 128)}}), got {type(classifier_network).__name__}"
        )


class WithoutDraws:
    """Refuses ``sample``, ``sample_and_log_prob``, ``log_prob`` and ``log_prob_of_draws``
    by name, with the subclass's ``no_draws_reason`` (put before ContinuousApproximator in
    the bases)."""

    no_draws_reason: str = ""

    def _no_draws(self, what: str):
        raise NotImplementedError(f"{type(self).__name__}.{what}: {self.no_draws_reason}")

    def sample(self, **kwargs):
        self._no_draws("sample")

    def sample_and_log_prob(self, **kwargs):
        self._no_draws("sample_and_log_prob")

    def log_prob(self, data):
        self._no_draws("log_prob")

    def log_prob_of_draws(self, **kwargs):
        self._no_draws("log_prob_of_draws")
