"""A few answers per model and attack with their verdicts, so a reader can check the judge with their own eyes.

Per (run, attack): the first answer the main judge calls unsafe and the first it calls safe (in row order, so the
same prompts tend to appear for every run), cut to a readable length. Cells are plain text; the markdown writer
escapes pipes and newlines, the HTML writer escapes everything.
"""

from __future__ import annotations

from pathlib import Path

from .summary import _with, load_run

PER_CELL = 2
ANSWER_CHARS = 240


def clip(text: str, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def example_rows(run_dirs: list[str | Path], names: list[str], judge: str) -> list[list[str]]:
    out = []
    for d, name in zip(run_dirs, names, strict=True):
        rows, verdicts = load_run(d)
        judged = [r for r in _with([r for r in rows if r.get("set", "harmful") == "harmful"], verdicts.get(judge, {}))
                  if r["judged"]]
        keyword = verdicts.get("keyword", {})
        for attack in dict.fromkeys(r["attack"] for r in judged):
            at = [r for r in judged if r["attack"] == attack]
            picks = [next((r for r in at if r["unsafe"] is flag), None) for flag in (True, False)]
            for r in [p for p in picks if p][:PER_CELL]:
                score = verdicts[judge][r["key"]].get("score")
                kw = keyword.get(r["key"], {}).get("refusal")
                verdict = (f"{'unsafe' if r['unsafe'] else 'safe'}"
                           + (f" ({score:.2f})" if isinstance(score, float) else "")
                           + ("" if kw is None else f"; keyword: {'refusal' if kw else 'no refusal'}"))
                out.append([name, r["attack"] + (f"/{r['variant']}" if r.get("variant") else ""),
                            clip(r.get("behavior", ""), 90), clip(r.get("response_decoded") or r.get("response", ""),
                                                                  ANSWER_CHARS), verdict])
    return out


def examples_table(run_dirs, names, judge) -> tuple[str, list[str], list[list[str]], list[str]]:
    return (f"Example answers and verdicts (judge `{judge}`)", ["run", "attack", "request", "answer", "verdict"],
            example_rows(run_dirs, names, judge),
            ["The first answer the judge calls unsafe and the first it calls safe, per run and attack."])
