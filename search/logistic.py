"""A small logistic regression by Newton's method, for the maps the ranking and triage fit
at `kb index` (confidence, routing probability)."""

from __future__ import annotations

import numpy as np


def fit_logistic(features: np.ndarray, labels: np.ndarray, iterations: int = 200) -> np.ndarray:
    """P(label) = sigmoid(features @ w), by Newton's method with a little L2 damping;
    ``features`` carries its own constant column."""
    w = np.zeros(features.shape[1], dtype=np.float64)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(features @ w)))
        gradient = features.T @ (p - labels) + 1e-3 * w
        hessian = (features.T * (p * (1 - p))) @ features + 1e-3 * np.eye(features.shape[1])
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w
