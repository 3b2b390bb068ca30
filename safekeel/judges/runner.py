"""Judging as its own step: read generated rows, write one verdict per (row key, judge) to judged.jsonl.

Resumable like generation: verdicts already in judged.jsonl are skipped, new ones are appended per batch. Works on
safekeel run directories and on any JSONL of answers made elsewhere (DeRTa, HarmBench, JailbreakBench field names).
"""

from __future__ import annotations

from pathlib import Path

from ..data.records import stable_id
from ..errors import DataError, SafekeelError
from ..io import append_jsonl, read_jsonl_rows, repair_tail
from .fields import PROMPT_FIELDS, REQUEST_FIELDS, RESPONSE_FIELDS, request_and_prompt
from .registry import JudgeOptions, canonical, make_judge


def load_items(path: str | Path) -> list[dict]:
    """Rows to judge: safekeel rows (key, behavior, prompt_text, response_decoded) or external answers (request and/or
    attack prompt + response, field names above)."""
    path = Path(path)
    if not path.exists():
        raise SafekeelError(f"{path}: file not found")
    items = []
    import json

    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(str(path), n, None, f"not UTF-8 (byte {e.start})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                if not line.endswith("\n"):
                    break  # torn tail of an interrupted writer
                raise DataError(str(path), n, None, f"invalid JSON: {e.msg}") from None
            if not isinstance(row, dict):
                raise DataError(str(path), n, None, "expected an object")
            behavior, prompt_text = request_and_prompt(row)
            response = next((row[k] for k in RESPONSE_FIELDS if isinstance(row.get(k), str)), None)
            if behavior is None:
                raise DataError(str(path), n, "question",
                                f"missing request text (one of {', '.join(REQUEST_FIELDS + PROMPT_FIELDS)})")
            if not isinstance(response, str):
                raise DataError(str(path), n, "response",
                                f"missing or not a string (one of {', '.join(RESPONSE_FIELDS)})")
            key = row.get("key") or stable_id(behavior, response, str(n))
            items.append({**row, "key": key, "behavior": behavior, "response": response,
                          "prompt_text": prompt_text, **({} if row.get("key") else {"line": n})})
    return items


def judge_items(items: list[dict], judges: list[str], out_path: str | Path, opts: JudgeOptions | None = None,
                tokenizer=None, batch_size: int = 64, resume: bool = True, log=None) -> int:
    """Append verdicts for items not yet judged; returns how many were written."""
    out_path = Path(out_path)
    done = {(r["key"], r["judge"]) for r in read_jsonl_rows(out_path)} if resume else set()
    if not resume and out_path.exists():
        out_path.unlink()
    repair_tail(out_path)
    written = 0
    for name in [canonical(j) for j in judges]:
        todo = [it for it in items if (it["key"], name) not in done]
        if not todo:
            continue
        judge = make_judge(name, opts, tokenizer)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            try:
                verdicts = judge.judge(chunk)
            except Exception as e:  # a judge crash is an error per row, never "safe"
                if isinstance(e, SafekeelError):
                    raise
                verdicts = [{"unsafe": None, "refusal": None, "score": None, "error": f"{type(e).__name__}: {e}",
                             "refusal_token": None}] * len(chunk)
            for it, v in zip(chunk, verdicts, strict=True):
                where = {"line": it["line"]} if "line" in it else {}  # answers made elsewhere: their input line
                append_jsonl(out_path, {"key": it["key"], **where, "judge": name, **v})
                written += 1
            if log:
                log(f"{name}: {min(start + batch_size, len(todo))}/{len(todo)} judged")
    return written


def judge_rows(run_dir: str | Path, judges: list[str], opts: JudgeOptions | None = None, tokenizer=None,
               resume: bool = True, log=None) -> Path:
    """Judge a run directory's rows.jsonl into its judged.jsonl."""
    run_dir = Path(run_dir)
    items = load_items(run_dir / "rows.jsonl")
    judge_items(items, judges, run_dir / "judged.jsonl", opts, tokenizer, resume=resume, log=log)
    return run_dir / "judged.jsonl"
