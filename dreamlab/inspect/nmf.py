"""Non-negative matrix factorization in torch: X [N, C] >= 0 as W [N, K] @ H [K, C], both >= 0.

The solver is HALS (hierarchical alternating least squares; Cichocki & Phan 2009, "Fast local algorithms for
large scale nonnegative matrix and tensor factorizations"): each row of H, then each column of W, is set to its
exact non-negative least-squares optimum with the others held, which converges in far fewer sweeps than Lee &
Seung's multiplicative updates. It starts from seeded uniform noise scaled as scikit-learn's `init="random"`
(sqrt(mean(X) / K)), so the same seed gives the same factors, and runs in float64 on the CPU.

>>> w, h = torch.rand(30, 2, generator=torch.Generator().manual_seed(1)), torch.rand(2, 8)
>>> fit = nmf(w @ h, 2)
>>> fit.spatial.shape, fit.components.shape, fit.error < 1e-4
(torch.Size([30, 2]), torch.Size([2, 8]), True)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dreamlab.errors import DreamlabError

MAX_ITERATIONS = 500  # sweeps at most; features.22 of hed-vgg16 on china (784 x 512, K = 6) stops near 200
TOLERANCE = 1e-5  # stop when 10 sweeps lower the relative error by less than this
CHECK_EVERY = 10  # sweeps between two looks at the error (sklearn's NMF checks every 10 too)


@dataclass
class Factorization:
    """X ~ spatial @ components: spatial [N, K] and components [K, C] (each row of unit L2 norm: the scale is in
    `spatial`), the relative error ||X - WH|| / ||X|| (Frobenius) and the sweeps run."""

    spatial: Tensor
    components: Tensor
    error: float
    iterations: int


def nmf(matrix: Tensor, rank: int, *, seed: int = 0, max_iterations: int = MAX_ITERATIONS,
        tolerance: float = TOLERANCE) -> Factorization:
    """Factor `matrix` [N, C] (>= 0, not all 0) into `rank` non-negative parts; see the module's docstring."""
    x = matrix.detach().to("cpu", torch.float64)
    if x.dim() != 2:
        raise DreamlabError(f"NMF takes a matrix [N, C], got shape {list(x.shape)}")
    if not torch.isfinite(x).all():
        raise DreamlabError("NMF takes finite values; the matrix holds NaN or infinite ones")
    if (x < 0).any():
        raise DreamlabError(f"NMF takes values >= 0; the matrix's smallest is {x.min().item():.4g}")
    n, c = x.shape
    if not 1 <= rank <= min(n, c):
        raise DreamlabError(f"the rank must be from 1 to {min(n, c)} (the smaller side of the {n}x{c} matrix), "
                            f"got {rank}")
    norm = x.norm()
    if norm == 0:
        raise DreamlabError("NMF of a matrix that is 0 everywhere: nothing to factor")
    generator = torch.Generator().manual_seed(seed)
    scale = (x.mean() / rank).sqrt()
    w = torch.rand(n, rank, generator=generator, dtype=torch.float64) * scale
    h = torch.rand(rank, c, generator=generator, dtype=torch.float64) * scale
    # a floor above 0 keeps every part alive: a row or column at exactly 0 would have no gradient to leave it
    floor = float(torch.finfo(torch.float64).eps * scale)
    error, done = _relative_error(x, w, h, norm), 0
    for done in range(1, max_iterations + 1):
        _sweep(w.T @ x, w.T @ w, h, floor)  # the rows of H
        _sweep(h @ x.T, h @ h.T, w.T, floor)  # the columns of W, as rows of W.T (a view: updated in place)
        if done % CHECK_EVERY == 0:
            before, error = error, _relative_error(x, w, h, norm)
            if before - error < tolerance:
                break
    lengths = h.norm(dim=1).clamp_min(floor)
    w, h = w * lengths, h / lengths[:, None]
    return Factorization(spatial=w.float(), components=h.float(), error=_relative_error(x, w, h, norm),
                         iterations=done)


def _sweep(numerator: Tensor, gram: Tensor, rows: Tensor, floor: float) -> None:
    """One HALS pass over the rows of `rows` [K, M] in place: row k moves to its non-negative least-squares
    optimum given the others, (numerator[k] - gram[k] @ rows + gram[k, k] * rows[k]) / gram[k, k]."""
    for k in range(rows.shape[0]):
        step = (numerator[k] - gram[k] @ rows) / gram[k, k].clamp_min(1e-300)
        rows[k] = (rows[k] + step).clamp_min(floor)


def _relative_error(x: Tensor, w: Tensor, h: Tensor, norm: Tensor) -> float:
    """||x - w @ h|| / ||x||, Frobenius."""
    return float((x - w @ h).norm() / norm)
