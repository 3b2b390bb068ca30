"""Statistics shared by judges and evaluation (below both): intervals for rates, clustered and paired bootstraps,
McNemar's exact test and its clustered form (a sign-flip test over whole behaviors), and the posterior of a true rate seen through an imperfect judge.

Rows of one behavior (its attacks, its seeds) or of one request are not independent; every pooled interval here
resamples whole clusters. Comparisons of two runs on the same behaviors are paired: the difference is computed per
behavior and the behaviors are resampled, which is what makes a 10-point difference on 40 prompts decidable.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (n = 0 -> (0, 1))."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile_interval(replicates: Sequence[float], alpha: float = 0.05) -> tuple[float, float]:
    """(alpha/2, 1 - alpha/2) percentiles of bootstrap replicates."""
    s, m = sorted(replicates), len(replicates)
    return s[int(alpha / 2 * m)], s[min(m - 1, int((1 - alpha / 2) * m))]


def bootstrap(values: list[float], n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (rows independent)."""
    if not values:
        return 0.0, 1.0
    rng = random.Random(seed)
    return percentile_interval([sum(rng.choices(values, k=len(values))) / len(values) for _ in range(n_boot)], alpha)


def cluster_bootstrap(values: Sequence[float], clusters: Sequence[Hashable], n_boot: int = 2000, seed: int = 0,
                      alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of the pooled mean when rows come in clusters (a behavior's attacks, a request's answers):
    whole clusters are resampled, so correlated rows do not pass for independent evidence."""
    by: dict[Hashable, list[float]] = defaultdict(list)
    for v, c in zip(values, clusters, strict=True):
        by[c].append(float(v))
    if not by:
        return 0.0, 1.0
    sums = np.array([sum(v) for v in by.values()])
    counts = np.array([len(v) for v in by.values()])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    reps = sums[idx].sum(1) / counts[idx].sum(1)
    return percentile_interval(reps.tolist(), alpha)


def clustered_wilson(flags: Sequence[bool], clusters: Sequence[Hashable], z: float = Z95) -> tuple[float, float]:
    """Wilson interval of a pooled rate whose rows come in clusters, at the effective sample size n / deff.

    The design effect deff is the ratio of the cluster-robust variance of the rate (between-cluster spread of the
    clusters' totals around p x size) to the binomial one (Kish). A rate of 0 or 1 says nothing about the spread, so
    it takes the worst case, one observation per cluster. Unlike a cluster bootstrap, 0 of n never gives [0, 0].
    """
    n = len(flags)
    by: dict[Hashable, list[float]] = defaultdict(list)
    for f, c in zip(flags, clusters, strict=True):
        by[c].append(float(f))
    m = len(by)
    if n == 0:
        return 0.0, 1.0
    k = sum(float(f) for f in flags)
    p = k / n
    if m == n or m < 2:
        return wilson(k, n, z)
    if p in (0.0, 1.0):
        n_eff = float(m)
    else:
        var_c = m / (m - 1) * sum((sum(v) - p * len(v)) ** 2 for v in by.values()) / n ** 2
        n_eff = n / max(1.0, var_c / (p * (1 - p) / n))
    return wilson(p * n_eff, n_eff, z)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (b: only the first arm, c: only the second)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def cluster_sign_flip_p(diffs: Sequence[float], clusters: Sequence[Hashable]) -> float:
    """Two-sided exact p-value of a paired difference whose pairs come in clusters (a behavior's seeds and cells).

    Under the null the two arms are exchangeable within a behavior, so each behavior's summed difference keeps or
    flips its sign as one unit; the p-value is the share of the 2^m sign patterns whose total is at least as far from
    0 as the observed one, computed exactly by convolution. With one pair per behavior it is McNemar's exact test;
    with a one-seed baseline repeated beside several seeds, or several seeds per arm, pooled McNemar would count a
    behavior's correlated pairs as independent evidence and overstate.
    """
    by: dict[Hashable, int] = defaultdict(int)
    for d, c in zip(diffs, clusters, strict=True):
        by[c] += int(d)
    sums = [abs(v) for v in by.values() if v]
    observed = abs(sum(by.values()))
    if observed == 0:
        return 1.0
    total = sum(sums)
    dist = np.zeros(2 * total + 1)  # probability of each total -total..total under the sign flips
    dist[total] = 1.0
    for v in sums:
        dist = 0.5 * (np.roll(dist, v) + np.roll(dist, -v))  # no wrap: |running total| <= total
    return float(min(1.0, dist[: total - observed + 1].sum() + dist[total + observed:].sum()))


def paired_difference(a: dict[tuple[Hashable, Hashable], bool], b: dict[tuple[Hashable, Hashable], bool],
                      n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Difference of rates b - a on the pairs both arms have, keyed (behavior, seed).

    Several seeds per arm are paired seed by seed; the CI resamples behaviors (each keeps all its seeds), `p` flips
    each behavior's signs with its seeds (`cluster_sign_flip_p`; McNemar's exact test when each behavior has one
    pair), `p_mcnemar` is the pooled McNemar over all pairs (overstated when behaviors have several), `per_seed` gives
    each seed's own difference.
    """
    keys = sorted(set(a) & set(b), key=repr)
    if not keys:
        return {"n_pairs": 0, "behaviors": 0, "diff": None, "ci": None, "p": None, "p_mcnemar": None, "per_seed": {}}
    diffs = [float(b[k]) - float(a[k]) for k in keys]
    behaviors = [k[0] for k in keys]
    lo, hi = cluster_bootstrap(diffs, behaviors, n_boot, seed, alpha)
    only_a = sum(1 for k in keys if a[k] and not b[k])
    only_b = sum(1 for k in keys if b[k] and not a[k])
    per_seed: dict = defaultdict(list)
    for k, d in zip(keys, diffs, strict=True):
        per_seed[k[1]].append(d)
    return {"n_pairs": len(keys), "behaviors": len(set(behaviors)), "a": sum(a[k] for k in keys) / len(keys),
            "b": sum(b[k] for k in keys) / len(keys), "diff": sum(diffs) / len(keys),
            "ci": [round(lo, 4), round(hi, 4)], "only_a": only_a, "only_b": only_b,
            "p": cluster_sign_flip_p(diffs, behaviors),
            "p_mcnemar": mcnemar_exact(only_a, only_b),
            "per_seed": {str(s): round(sum(v) / len(v), 4) for s, v in sorted(per_seed.items(), key=repr)}}


GRID = 2001  # points of the true-rate grid in [0, 1]


def true_rate_posterior(k: int, n: int, tp: int, fn: int, tn: int, fp: int, draws: int = 4000, seed: int = 0,
                        alpha: float = 0.05) -> dict:
    """Posterior of the true rate p given k of n flagged by a judge with calibration counts (tp, fn, tn, fp).

    The standard Bayesian model of an imperfect test (Gelman and Carpenter 2020): k ~ Binomial(n, p * se +
    (1 - p) * (1 - sp)), p ~ Uniform(0, 1), se ~ Beta(tp + 1, fn + 1) and sp ~ Beta(tn + 1, fp + 1) from the
    calibration. p stays in [0, 1] by construction, and 0 of 24 gives an interval that is honest about the judge's
    false positives, never [0, 0]. The posterior of p is computed on a grid, averaging the likelihood over draws
    of (se, sp) from their calibration posteriors (exact in the limit of many draws).

    `implausible`: the observed rate is outside what any true rate could produce with this judge (a two-sided
    predictive tail below alpha / 2 at p = 0 or p = 1): the calibration does not transfer to these answers.
    """
    from scipy.stats import binom

    rng = np.random.default_rng(seed)
    se, sp = rng.beta(tp + 1, fn + 1, draws), rng.beta(tn + 1, fp + 1, draws)
    grid = np.linspace(0.0, 1.0, GRID)
    q = grid[:, None] * se[None, :] + (1 - grid[:, None]) * (1 - sp[None, :])
    like = binom.pmf(k, n, q).mean(1)
    if like.sum() <= 0:
        return {"median": None, "ci": None, "mean": None, "implausible": True}
    post = like / like.sum()
    cdf = np.cumsum(post)
    at = lambda x: float(grid[min(int(np.searchsorted(cdf, x)), GRID - 1)])  # noqa: E731
    floor_tail = float(binom.cdf(k, n, 1 - sp).mean())  # P(K <= k | p = 0): fewer flags than false positives alone
    ceil_tail = float(binom.sf(k - 1, n, se).mean())  # P(K >= k | p = 1): more flags than a judge can give
    implausible = floor_tail < alpha / 2 or ceil_tail < alpha / 2
    return {"median": at(0.5), "ci": [round(at(alpha / 2), 4), round(at(1 - alpha / 2), 4)],
            "mean": float((grid * post).sum()), "implausible": bool(implausible),
            "tails": {"p0_at_most_k": floor_tail, "p1_at_least_k": ceil_tail}}
