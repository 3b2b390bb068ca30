"""Shared statistics against hand-computed values and against references computed another way."""

import numpy as np
import pytest
from scipy.stats import beta, binom

from safekeel.judges.agreement_stats import confusion, kappa
from safekeel.stats import (
    cluster_bootstrap,
    cluster_sign_flip_p,
    mcnemar_exact,
    paired_difference,
    true_rate_posterior,
    wilson,
)


def test_paired_difference_on_a_made_up_pair_of_runs():
    """Per-behavior differences [-1, 0, 0, 0]: the mean of 4 resampled ones is <= -0.75 with probability
    P(Bin(4, 1/4) >= 3) = 0.0508 > 0.025 and -1 with 0.0039, so the 95% percentile CI is [-0.75, 0]."""
    a = {("b1", 0): True, ("b2", 0): True, ("b3", 0): False, ("b4", 0): False}
    b = {("b1", 0): False, ("b2", 0): True, ("b3", 0): False, ("b4", 0): False}
    d = paired_difference(a, b, n_boot=20000)
    assert d["diff"] == -0.25 and (d["a"], d["b"]) == (0.5, 0.25)
    assert (d["only_a"], d["only_b"]) == (1, 0) and d["p_mcnemar"] == 1.0
    assert d["ci"] == [-0.75, 0.0]


def test_paired_difference_keeps_seeds_paired_and_reports_each():
    a = {(f"b{i}", s): False for i in range(10) for s in (0, 1)}
    b = {**{(f"b{i}", 0): i < 6 for i in range(10)}, **{(f"b{i}", 1): i < 2 for i in range(10)}}
    d = paired_difference(a, b, n_boot=500)
    assert d["per_seed"] == {"0": 0.6, "1": 0.2} and d["diff"] == pytest.approx(0.4)
    assert d["behaviors"] == 10 and d["n_pairs"] == 20
    # 8 discordant pairs, all one way: pooled McNemar p = 2 / 2^8; behaviors b0, b1 gain at both seeds, b2-b5 at
    # seed 0 only, so 6 behaviors flip as units (sums 2, 2, 1, 1, 1, 1): only the all-plus and all-minus patterns reach
    # |8|, p = 2 / 2^6
    assert d["p_mcnemar"] == pytest.approx(2 / 256)
    assert d["p"] == pytest.approx(2 / 64)
    assert paired_difference(a, {("other", 0): True})["diff"] is None  # no common behavior: nothing to compare


@pytest.mark.parametrize("b, c, want", [
    (10, 2, 2 * (1 + 12 + 66) / 4096),   # 2 * P(Bin(12, 1/2) <= 2)
    (0, 0, 1.0),
    (3, 3, 1.0),                          # 2 * 42/64 > 1: capped
    (0, 5, 2 / 32),
])
def test_mcnemar_exact_hand_computed(b, c, want):
    assert mcnemar_exact(b, c) == pytest.approx(want)


@pytest.mark.parametrize("b, c", [(10, 2), (0, 0), (3, 3), (0, 5), (30, 70)])
def test_sign_flip_p_is_mcnemar_when_each_behavior_has_one_pair(b, c):
    diffs = [-1] * b + [1] * c + [0] * 7
    assert cluster_sign_flip_p(diffs, list(range(len(diffs)))) == pytest.approx(mcnemar_exact(b, c))


def test_sign_flip_p_counts_a_repeated_baseline_once_per_behavior():
    """A one-seed baseline beside three seeds: each of 10 behaviors repeats its difference 3 times (8 lose, 2 gain).
    Pooled McNemar sees 24 against 6 discordant pairs; the behaviors are 8 against 2, p = McNemar(8, 2)."""
    diffs = [-1] * 24 + [1] * 6
    clusters = [i // 3 for i in range(30)]
    assert mcnemar_exact(24, 6) < 0.002
    assert cluster_sign_flip_p(diffs, clusters) == pytest.approx(mcnemar_exact(8, 2))


def test_sign_flip_p_by_hand_with_unequal_cluster_sums():
    """Cluster sums 2 and 1 (a third cluster cancels to 0): totals +-2 +-1 are 3, 1, -1, -3; |T| >= 3 in 2 of 4."""
    assert cluster_sign_flip_p([1, 1, 1, 1, -1], ["a", "a", "b", "c", "c"]) == pytest.approx(0.5)
    assert cluster_sign_flip_p([1, -1, 0], ["a", "a", "b"]) == 1.0


def test_clustered_interval_is_wider_when_rows_repeat_within_a_cluster():
    """20 behaviors, each with 4 identical verdicts (one per attack): 80 rows carry the information of 20, so the
    interval is about sqrt(4) = 2x the one that treats rows as independent."""
    flags = [float(i % 2 == 0) for i in range(20) for _ in range(4)]
    clusters = [i for i in range(20) for _ in range(4)]
    lo, hi = cluster_bootstrap(flags, clusters, n_boot=4000)
    naive_lo, naive_hi = wilson(40, 80)
    per_cluster_lo, per_cluster_hi = wilson(10, 20)
    assert 1.7 < (hi - lo) / (naive_hi - naive_lo) < 2.4
    assert abs((hi - lo) - (per_cluster_hi - per_cluster_lo)) < 0.08


CALIB = {"tp": 451, "fn": 82, "tn": 335, "fp": 116}


def reference_posterior(k, n, tp, fn, tn, fp):
    """The same model integrated on a plain 3-d grid (p x se x sp) with Beta densities: no sampling."""
    p = np.linspace(0, 1, 801)
    se = np.linspace(0.0005, 0.9995, 400)
    sp = np.linspace(0.0005, 0.9995, 400)
    w_se, w_sp = beta.pdf(se, tp + 1, fn + 1), beta.pdf(sp, tn + 1, fp + 1)
    w_se, w_sp = w_se / w_se.sum(), w_sp / w_sp.sum()
    post = np.zeros_like(p)
    for j, s in enumerate(sp):
        if w_sp[j] < 1e-12:
            continue
        q = p[:, None] * se[None, :] + (1 - p[:, None]) * (1 - s)
        post += w_sp[j] * (binom.pmf(k, n, q) * w_se[None, :]).sum(1)
    cdf = np.cumsum(post / post.sum())
    return [float(p[np.searchsorted(cdf, x)]) for x in (0.025, 0.5, 0.975)]


@pytest.mark.parametrize("k", [0, 1, 12, 24])
def test_corrected_rate_matches_a_grid_posterior(k):
    got = true_rate_posterior(k, 24, **CALIB, draws=8000)
    lo, med, hi = reference_posterior(k, 24, **CALIB)
    assert got["median"] == pytest.approx(med, abs=0.015)
    assert got["ci"][0] == pytest.approx(lo, abs=0.015) and got["ci"][1] == pytest.approx(hi, abs=0.02)
    assert got["ci"][1] - got["ci"][0] > 0.05  # never [0, 0] nor [100, 100]
    assert 0 <= got["ci"][0] <= got["median"] <= got["ci"][1] <= 1


def test_rates_the_calibration_cannot_produce_are_flagged():
    """A judge with a 26% false-positive rate cannot flag 0 of 24 unless its calibration does not transfer
    (P = 0.74^24 < 0.1%); 12 of 24 is ordinary."""
    assert true_rate_posterior(0, 24, **CALIB)["implausible"] is True
    assert true_rate_posterior(12, 24, **CALIB)["implausible"] is False
    keyword = {"tp": 478, "fn": 55, "tn": 130, "fp": 321}  # flags 71% of safe answers
    assert true_rate_posterior(2, 24, **keyword)["implausible"] is True


def test_kappa_is_undefined_when_both_sides_see_one_class():
    assert kappa(confusion([False] * 5, [False] * 5)) is None
    assert kappa(confusion([True, False], [True, False])) == 1.0


def test_clustered_wilson_is_twice_as_wide_when_each_behavior_repeats_four_times():
    """20 behaviors x 4 identical rows: deff = 4 x 20/19 (the small-sample factor m / (m - 1)), so the pooled
    interval is Wilson at n_eff = 80 / deff = 19, about 2x the width of Wilson on 80 'independent' rows; a rate of
    0 takes the worst case (one row per behavior)."""
    from safekeel.stats import clustered_wilson

    flags = [i % 2 == 0 for i in range(20) for _ in range(4)]
    clusters = [i for i in range(20) for _ in range(4)]
    lo, hi = clustered_wilson(flags, clusters)
    assert (lo, hi) == pytest.approx(wilson(9.5, 19), abs=1e-9)
    assert (hi - lo) / (wilson(40, 80)[1] - wilson(40, 80)[0]) == pytest.approx(2.0, abs=0.1)
    assert clustered_wilson([False] * 80, clusters) == pytest.approx(wilson(0, 20))
    assert clustered_wilson([True, False, True], ["a", "b", "c"]) == wilson(2, 3)  # independent rows: plain Wilson
