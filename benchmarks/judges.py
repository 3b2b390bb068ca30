"""Learned refusal judge vs keyword judge on PyRIT's human-labelled refusals (stratified 5-fold, same rows).

Also prints the feature ablation that motivated refusal-clf's features: the response embedding alone, + relevance
(cosine of response and request embeddings), + the keyword flag.

    python benchmarks/judges.py
"""

from __future__ import annotations

import json
import time

from safekeel.judges.refusal_clf import FEATURE_SETS, MiniLMEmbedder, cross_validate


def main() -> None:
    t0 = time.time()
    embed = MiniLMEmbedder()
    cache: dict[str, object] = {}

    def cached(texts):  # the three feature sets share one embedding pass
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            for t, v in zip(missing, embed(missing), strict=True):
                cache[t] = v
        return np.stack([cache[t] for t in texts])

    results = [cross_validate(cached, kind=kind) for kind in FEATURE_SETS]
    r = results[-1]
    print(f"PyRIT refusal labels: {r['rows']} rows ({r['refusal_rows']} refusals), stratified {r['folds']}-fold")
    print(f"{'judge':48s} accuracy")
    print(f"{'majority class':48s} {r['majority_baseline']:.3f}")
    print(f"{'keyword (phrase list, no training)':48s} {r['keyword_accuracy']:.3f}")
    for res in results:
        print(f"{'refusal-clf [' + res['features'] + ']':48s} {res['clf_accuracy']:.3f} ± {res['clf_accuracy_std']:.3f}")
    print(f"refusal-clf (default features) / keyword: {r['clf_accuracy'] / r['keyword_accuracy']:.2f}x accuracy")
    print(f"({time.time() - t0:.0f}s)")
    print(json.dumps(results[-1]))


if __name__ == "__main__":
    main()
