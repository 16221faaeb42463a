"""Synthetic attention matrices for tests and benchmarks (seeded, numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["random_softmax_attention", "sem_attention"]


def random_softmax_attention(
    n: int,
    *,
    causal: bool = True,
    seed: int = 0,
    batch: int | None = None,
    dim: int = 16,
    recency: float = 0.15,
    temperature: float = 1.0,
) -> np.ndarray:
    """Softmax attention from random query/key logits with a recency bias.

    ``logits = q·kᵀ/sqrt(dim)/temperature − recency·|i − j|``; with ``causal`` (SASRec-like)
    keys after the query are masked with −10000 (as RecBole does), otherwise (BERT4Rec-like)
    every position attends everywhere.

    Args:
        n: sequence length.
        causal: mask the keys after each query.
        seed: seed of the random queries and keys.
        batch: number of matrices, or ``None`` for one.
        dim: query/key dimension.
        recency: logit penalty per position of distance.
        temperature: divides the query-key logits.

    Returns:
        Row-stochastic attention, shape ``(n, n)``, or ``(batch, n, n)``.
    """
    rng = np.random.default_rng(seed)
    shape = (batch or 1, n, dim)
    q = rng.normal(size=shape)
    k = rng.normal(size=shape)
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(dim) / temperature
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    logits = logits - recency * np.abs(i - j)
    if causal:
        logits = np.where(j <= i, logits, -10000.0)
    logits -= logits.max(axis=-1, keepdims=True)
    a = np.exp(logits)
    a /= a.sum(axis=-1, keepdims=True)
    return a if batch is not None else a[0]


def sem_attention(
    n: int, *, avg_parents: float = 1.5, seed: int = 0, low: float = 0.5, high: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """A lower-triangular attention matrix that *is* a known linear SEM, and its DAG.

    Draw a random DAG ``B`` (``B[i, k] > 0``: k → i, only k < i, weights in ``[low, high]``).
    ``Z = B·Z + V`` gives ``Z = (I − B)^{-1}·V``; ``(I − B)^{-1} = I + B + B² + …`` is
    non-negative and lower triangular, and scaling its rows to sum 1 gives a valid (causal,
    SASRec-like) attention matrix. Row scaling rescales each ``Z_i`` only, so the correlation
    ``A·Aᵀ`` normalises to is exactly the SEM's, whose conditional independences are the
    d-separations of ``B``'s DAG.

    Args:
        n: number of positions.
        avg_parents: expected number of parents of a node.
        seed: seed of the DAG and its weights.
        low: smallest edge weight.
        high: largest edge weight.

    Returns:
        ``(attention, adjacency)``: the ``(n, n)`` attention and the boolean DAG with
        ``adjacency[k, i] = True`` for an edge k → i.
    """
    rng = np.random.default_rng(seed)
    p = min(1.0, avg_parents / max(n / 2, 1))
    mask = np.tril(rng.random((n, n)) < p, k=-1)
    b = np.where(mask, rng.uniform(low, high, size=(n, n)), 0.0)
    a = np.linalg.inv(np.eye(n) - b)
    a = np.clip(a, 0.0, None)
    a /= a.sum(axis=1, keepdims=True)
    return a, mask.T.copy()
