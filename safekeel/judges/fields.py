"""Field names of answer rows made by safekeel and elsewhere (DeRTa, HarmBench, JailbreakBench), and which one is the
request: shared by the judge runner and the label-set reader, below both."""

from __future__ import annotations

# The bare request, in order of preference. `goal` comes before `behavior` because JailbreakBench artifacts carry
# both and their `behavior` is a short label ("Phishing"); HarmBench's and safekeel's `behavior` is the request.
REQUEST_FIELDS = ("goal", "behavior", "question", "instruction", "request", "objective")
# The full attack prompt the model saw (safekeel's own `prompt_text` first, HarmBench's `test_case`, then `prompt`).
PROMPT_FIELDS = ("prompt_text", "attack_prompt", "jailbreak", "test_case", "prompt")
RESPONSE_FIELDS = ("response_decoded", "response", "generation", "completion", "answer", "output")


def request_and_prompt(row: dict) -> tuple[str | None, str | None]:
    """(bare request, full attack prompt or None) of one row.

    Judges read the request for what was asked and the attack prompt for what the answer may echo, so a wrapped
    prompt must not stand in for the request when the bare one is known. A row with only a full prompt still works:
    that prompt is the request (and there is no separate attack prompt).
    """
    def first(fields):
        return next((row[k] for k in fields if isinstance(row.get(k), str) and row[k].strip()), None)

    bare, full = first(REQUEST_FIELDS), first(PROMPT_FIELDS)
    if bare is None:
        return full, None
    if isinstance(row.get("prompt_text"), str):  # safekeel's own rows: kept verbatim, so re-judged rows match
        return bare, row["prompt_text"]
    return bare, (full if full is not None and full.strip() != bare.strip() else None)
