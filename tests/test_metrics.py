"""Confidence intervals against known values, error handling in rates, refusal-position histograms."""

import pytest

from safekeel.eval.metrics import bootstrap, check_answer, grouped_rate, rate, refusal_positions, wilson


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
