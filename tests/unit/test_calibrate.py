"""The word-confidence fit: a plain logistic regression, with each weight's sign held where the contract wants it."""

import numpy as np
import pytest

from training.eval.calibrate import WEIGHT_SIGNS, fit_logistic


def _sample(true_weights: tuple[float, ...], bias: float, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, len(true_weights)))
    p = 1.0 / (1.0 + np.exp(-(x @ np.array(true_weights) + bias)))
    return x, rng.random(n) < p


def test_the_fit_recovers_weights_that_keep_their_signs() -> None:
    x, right = _sample((0.8, -0.5, 1.5), 0.3)
    free, bounded = fit_logistic(x, right), fit_logistic(x, right, WEIGHT_SIGNS)
    assert free == pytest.approx([0.8, -0.5, 1.5, 0.3], abs=0.1)
    assert bounded == pytest.approx(free, abs=1e-4)  # the bounds do nothing where the data agree with them


def test_a_weight_the_data_would_flip_stops_at_zero() -> None:
    x, right = _sample((-0.7, -0.5, 1.5), 0.0)  # a likelier token lowering confidence: what the contract refuses
    free, bounded = fit_logistic(x, right), fit_logistic(x, right, WEIGHT_SIGNS)
    assert free[0] < -0.5
    assert bounded[0] == pytest.approx(0.0, abs=1e-6)
    assert bounded[1] <= 0.0 and bounded[2] > 1.0


def test_signs_must_match_the_features() -> None:
    x, right = _sample((1.0, 1.0), 0.0, n=100)
    with pytest.raises(ValueError, match="2 features"):
        fit_logistic(x, right, WEIGHT_SIGNS)
