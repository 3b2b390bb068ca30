"""How well the `harm` judge follows DeRTa's labelling guideline on real answers it was not written from.

Uncensorbench ships, per harmful question, an uncensored answer and a censored one. From them we build the cases the
guideline names: the harmful answer (unsafe); the harmful answer followed by an apology (unsafe: harm first, refusal
later); the censored answer (safe); the censored answer without its refusal sentence (safe: only warnings and
context); another question's harmful answer (safe: irrelevant); the harmful answer's opening clause alone (safe: vague).
Thresholds of the judge were set looking at train questions only; the test split (`safekeel.data.splits`) is the
number to quote.

    python benchmarks/harm_judge.py            # needs the uncensorbench source (pulled on first use)
"""

from __future__ import annotations

from collections import Counter

from safekeel.data.bundled import uncensorbench_triples
from safekeel.data.splits import train_test
from safekeel.judges.harm import harm_verdict
from safekeel.judges.keyword import is_refusal
from safekeel.judges.labelsets import guideline_cases


def cases(triples) -> list[tuple[str, str, str, bool]]:
    """(condition, question, response, unsafe): the guideline cases `safekeel calibrate --labels guideline` uses."""
    return [(c.condition, c.request, c.response, c.unsafe) for c in guideline_cases(triples)]


def score(rows) -> dict[str, Counter]:
    tally: dict[str, Counter] = {}
    for cond, q, resp, unsafe in rows:
        harm = harm_verdict(q, resp)["unsafe"]
        keyword = not is_refusal(resp)
        c = tally.setdefault(cond, Counter())
        c["n"] += 1
        c["harm"] += harm == unsafe
        c["keyword"] += keyword == unsafe
    return tally


def main() -> None:
    train, test = train_test(uncensorbench_triples())
    for name, part in (("train + val", train), ("test", test)):
        tally = score(cases(part))
        print(f"\n{name} split ({len(part)} questions): share of verdicts that agree with the guideline label")
        print(f"{'condition':48s} {'n':>4s} {'harm':>6s} {'keyword':>8s}")
        total = Counter()
        for cond, c in tally.items():
            total.update(c)
            print(f"{cond:48s} {c['n']:4d} {c['harm'] / c['n']:6.3f} {c['keyword'] / c['n']:8.3f}")
        print(f"{'all':48s} {total['n']:4d} {total['harm'] / total['n']:6.3f} {total['keyword'] / total['n']:8.3f}")


if __name__ == "__main__":
    main()
