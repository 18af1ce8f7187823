"""dreamlab.inspect.nmf: HALS recovers a planted non-negative factorization, is seeded, refuses bad matrices."""
from __future__ import annotations

import pytest
import torch

from dreamlab.errors import DreamlabError
from dreamlab.inspect.nmf import nmf


def planted(rank: int = 4, n: int = 120, c: int = 40, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """W [n, rank] whose parts each own a block of rows, and sparse H [rank, c]: a factorization that is unique up
    to permutation and scale."""
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(n, rank, generator=g) * 0.2
    for k in range(rank):  # each part alone on its own rows: separable, so identifiable
        w[k * (n // rank):k * (n // rank) + 5] = 0
        w[k * (n // rank):k * (n // rank) + 5, k] = 1
    h = torch.rand(rank, c, generator=g) * (torch.rand(rank, c, generator=g) > 0.5)
    return w, h


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    return a @ b.T


def test_a_planted_low_rank_matrix_is_recovered_up_to_permutation_and_scale():
    w, h = planted()
    fit = nmf(w @ h, 4, max_iterations=3000, tolerance=0)
    assert fit.error < 1e-3
    assert ((fit.spatial @ fit.components) - w @ h).abs().max() < 1e-2
    cos = _cosines(fit.components, h)  # [found, planted]
    best = cos.argmax(1)
    assert sorted(best.tolist()) == [0, 1, 2, 3]  # a permutation
    assert cos.max(1).values.min() > 0.99
    spatial = _cosines(fit.spatial.T, w.T)
    assert spatial[torch.arange(4), best].min() > 0.99  # the same permutation matches the maps


def test_components_have_unit_length_and_factors_are_non_negative():
    x = torch.rand(50, 20, generator=torch.Generator().manual_seed(2))
    fit = nmf(x, 3)
    torch.testing.assert_close(fit.components.norm(dim=1), torch.ones(3))
    assert (fit.spatial >= 0).all() and (fit.components >= 0).all()
    assert 0 < fit.error < 1 and 1 <= fit.iterations <= 500


def test_the_same_seed_gives_the_same_factors_and_another_seed_other_ones():
    x = torch.relu(torch.randn(60, 30, generator=torch.Generator().manual_seed(0)))
    first, again, other = nmf(x, 5, seed=3), nmf(x, 5, seed=3), nmf(x, 5, seed=4)
    assert torch.equal(first.spatial, again.spatial) and torch.equal(first.components, again.components)
    assert not torch.equal(first.components, other.components)


def test_the_tolerance_stops_early_and_max_iterations_caps_the_sweeps():
    x = torch.rand(40, 10, generator=torch.Generator().manual_seed(1))
    assert nmf(x, 2, max_iterations=7, tolerance=0).iterations == 7
    assert nmf(x, 2, tolerance=0.5).iterations == 10  # the first look at the error, after 10 sweeps


@pytest.mark.parametrize("matrix, rank, message", [
    (-torch.ones(4, 3), 1, "values >= 0; the matrix's smallest is -1"),
    (torch.zeros(4, 3), 1, "0 everywhere"),
    (torch.ones(4, 3), 4, "rank must be from 1 to 3"),
    (torch.ones(4, 3), 0, "rank must be from 1 to 3"),
    (torch.full((4, 3), float("nan")), 1, "NaN or infinite"),
    (torch.ones(4), 1, "a matrix [N, C], got shape [4]"),
])
def test_bad_matrices_are_refused_in_one_line(matrix, rank, message):
    with pytest.raises(DreamlabError, match=None) as caught:
        nmf(matrix, rank)
    assert message in str(caught.value) and "\n" not in str(caught.value)
