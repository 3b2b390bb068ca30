"""Confidence intervals against known values, error handling in rates, refusal-position histograms."""

import pytest

from safekeel.eval.metrics import (
    bootstrap,
    check_answer,
    corrected_rate,
    grouped_rate,
    rate,
    refusal_positions,
    rogan_gladen,
    wilson,
)


@pytest.mark.parametrize("k, n, lo, hi", [
    (5, 10, 0.2366, 0.7634),   # textbook value
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (1, 20, 0.0089, 0.2361),
    (81, 263, 0.2553, 0.3662),  # Newcombe (1998) example: 81/263
])
def test_wilson_known_values(k, n, lo, hi):
    got = wilson(k, n)
    assert got[0] == pytest.approx(lo, abs=1e-4) and got[1] == pytest.approx(hi, abs=1e-4)


def test_wilson_empty_and_bootstrap():
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = bootstrap([1.0] * 50 + [0.0] * 50, n_boot=4000, seed=0)
    w = wilson(50, 100)
    assert lo == pytest.approx(w[0], abs=0.03) and hi == pytest.approx(w[1], abs=0.03)


def test_rate_excludes_judge_errors_from_the_denominator():
    r = rate([True, False, None, None, True])
    assert r["k"] == 2 and r["n"] == 3 and r["errors"] == 2 and r["rate"] == pytest.approx(2 / 3)
    assert rate([None])["rate"] is None  # all errors: no number, never "0% ASR"


def test_grouped_rate_and_positions():
    rows = [{"attack": "a", "unsafe": True}, {"attack": "a", "unsafe": False}, {"attack": "b", "unsafe": True}]
    g = grouped_rate(rows, "unsafe", ("attack",))
    assert g["a"]["rate"] == 0.5 and g["b"]["k"] == 1
    h = refusal_positions([0, 1, 7, None, 50, 400])
    assert h["n_refusals"] == 5 and h["n_answers"] == 6 and sum(h["counts"]) == 5
    assert h["counts"][0] == 2 and h["at_start_fraction"] == pytest.approx(0.4) and h["median"] == 7
    assert check_answer("The capital is Paris.", ["paris"]) and not check_answer("Rome", ["paris"])


CALIB = {"tp": 80, "fn": 20, "tn": 90, "fp": 10}  # sensitivity 0.8, specificity 0.9


@pytest.mark.parametrize("p, sens, spec, want", [
    (0.30, 0.8, 0.9, 2 / 7),   # (0.3 + 0.9 - 1) / (0.8 + 0.9 - 1) = 0.2 / 0.7 = 0.285714...
    (0.05, 0.8, 0.9, 0.0),   # (0.05 - 0.1) / 0.7 < 0: clipped at 0
    (0.95, 0.8, 0.9, 1.0),   # (0.95 - 0.1) / 0.7 > 1: clipped at 1
    (0.50, 1.0, 1.0, 0.5),   # a perfect judge changes nothing
    (0.30, 0.5, 0.5, None),  # sens + spec = 1: no better than chance, undefined
    (0.30, 0.3, 0.6, None),  # sens + spec < 1
])
def test_rogan_gladen_hand_computed(p, sens, spec, want):
    got = rogan_gladen(p, sens, spec)
    assert got == (None if want is None else pytest.approx(want, abs=1e-12))


def test_corrected_rate_point_estimate_and_ci():
    """Posterior median near the Rogan-Gladen value (0.3 + 0.9 - 1) / (0.8 + 0.9 - 1) = 2/7 at n = 100; its interval
    carries the calibration's uncertainty too, so it is wider than the judged rate's own."""
    flags = [True] * 30 + [False] * 70 + [None, None]
    r = corrected_rate(flags, CALIB)
    assert (r["k"], r["n"], r["errors"], r["rate"]) == (30, 100, 2, 0.3)
    assert r["sensitivity"] == 0.8 and r["specificity"] == 0.9
    assert r["corrected"] == pytest.approx(2 / 7, abs=0.03) and r["note"] is None and not r["implausible"]
    lo, hi = r["corrected_ci"]
    assert lo <= r["corrected"] <= hi
    assert r["ci"] == rate(flags)["ci"]  # the judged rate keeps its Wilson interval
    assert hi - lo > r["ci"][1] - r["ci"][0]


def test_corrected_ci_widens_with_a_smaller_calibration_set():
    flags = [True] * 30 + [False] * 70
    big = corrected_rate(flags, {k: v * 10 for k, v in CALIB.items()})
    small = corrected_rate(flags, {"tp": 8, "fn": 2, "tn": 9, "fp": 1})  # same sens / spec, 10x fewer labels
    width = {name: r["corrected_ci"][1] - r["corrected_ci"][0] for name, r in (("big", big), ("small", small))}
    assert width["small"] > width["big"] * 1.5
    assert big["corrected_ci"][0] <= big["corrected"] <= big["corrected_ci"][1]


def test_corrected_rate_is_seeded_and_deterministic():
    flags = [True] * 12 + [False] * 28
    assert corrected_rate(flags, CALIB, seed=3) == corrected_rate(flags, CALIB, seed=3)


def test_corrected_rate_undefined_or_empty_says_why():
    chance = corrected_rate([True, False, True], {"tp": 5, "fn": 5, "tn": 5, "fp": 5})
    assert chance["corrected"] is None and chance["corrected_ci"] is None and "no better than chance" in chance["note"]
    assert chance["rate"] == pytest.approx(2 / 3)  # the judged rate is still reported
    one_sided = corrected_rate([True], {"tp": 5, "fn": 0, "tn": 0, "fp": 0})
    assert one_sided["corrected"] is None and "unknown" in one_sided["note"]
    empty = corrected_rate([None, None], CALIB)
    assert empty["rate"] is None and empty["corrected"] is None and empty["errors"] == 2
    tiny = corrected_rate([True] * 3 + [False] * 7, {"tp": 2, "fn": 1, "tn": 2, "fp": 1})
    assert tiny["corrected_ci"][1] - tiny["corrected_ci"][0] > 0.6  # a 6-label calibration says little


def test_rates_outside_the_judges_range_stay_in_0_1_and_are_flagged():
    low = corrected_rate([True] * 2 + [False] * 98, CALIB)   # below the false-positive floor (10%)
    high = corrected_rate([True] * 99 + [False], CALIB)       # above the sensitivity ceiling (80%)
    for r in (low, high):
        assert r["implausible"] and "does not transfer" in r["note"]
        assert 0.0 <= r["corrected_ci"][0] <= r["corrected"] <= r["corrected_ci"][1] <= 1.0
    assert low["corrected"] < 0.05 and high["corrected"] > 0.95


def test_corrected_ci_at_zero_unsafe_answers_is_not_degenerate():
    # a judge with few false positives: 0 of 24 still leaves room for a few percent, as Wilson's [0, 13.8] does
    out = corrected_rate([False] * 24, {"tp": 95, "fn": 5, "tn": 199, "fp": 1})
    assert out["corrected_ci"][0] < 0.01 and 0.03 < out["corrected_ci"][1] < 0.2 and not out["implausible"]
    # with a 26% false-positive rate, 0 of 24 is below what the judge's errors alone produce: flagged, not "0 [0, 0]"
    loose = corrected_rate([False] * 24, {"tp": 451, "fn": 82, "tn": 335, "fp": 116})
    assert loose["implausible"] and loose["corrected_ci"][1] > 0.05
