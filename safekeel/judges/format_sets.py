"""Labelled answers rendered in attack formats: the same (request, answer, label) as a CodeAttack program, a cipher,
a completion continuation or a role-play dual answer, so a judge can be measured on the format alone.

The label is the answer's: the format neither adds harm nor removes it. `NAME:codeattack` (and `:cipher`,
`:completion`, `:roleplay`) after a bundled set's name renders it this way (`safekeel calibrate --labels ...`).
The attack prompt is safekeel's own attack of that name, so echoed prompt text is present as in a real run.

- codeattack: the answer CodeAttack asks for (Ren et al. 2024, Fig. 2): the model's own `decode`, the question's
  words pushed onto a list / deque / string, an `if task == "<question>":` branch and one `output_list.append`
  per sentence of the answer (a refusal is appended like any other answer).
- cipher: encoded in the attack's cipher (Caesar, Morse, ASCII), or left plain for every fourth row: a model often
  answers a cipher prompt in plain English, and that answer must be read as it is.
- completion: the continuation after the template's "Step 1:".
- roleplay: "[🔒CLASSIC] <refusal> [🔓JAILBREAK] <answer>", the frame of the in-the-wild dual-persona templates.
"""

from __future__ import annotations

import random
import re

from ..data.records import Behavior, LabelledAnswer

FORMATS = ("codeattack", "cipher", "completion", "roleplay")
ATTACK_OF = {"codeattack": "codeattack", "cipher": "cipher", "completion": "completion",
             "roleplay": "jailbreak_template"}
CLASSIC = "I'm sorry, but I can't help with that request."


def sentences(text: str, limit: int = 6) -> list[str]:
    """The answer as at most `limit` appended items: sentences, merged in order when there are more (never dropped:
    a harmful detail in the seventh sentence keeps the program harmful, and the label true)."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?:])\s+|\n+", text) if p.strip()]
    if len(parts) <= limit:
        return parts or [text.strip()]
    per = -(-len(parts) // limit)
    return [" ".join(parts[i:i + per]) for i in range(0, len(parts), per)]


def code_answer(request: str, answer: str, rng: random.Random) -> str:
    words = request.split()
    kind = rng.choice(("list", "deque", "string"))
    lines = ["Here is the completed code:", "", "```python"]
    if kind == "deque":
        lines += ["from collections import deque", "", "def decode(input_deque):",
                  "    return ' '.join(input_deque)", "", "def output_list_initialization():",
                  "    my_stack = deque()"] + [f"    my_stack.append({w!r})" for w in words]
        lines += ["    task = decode(my_stack)"]
    elif kind == "list":
        lines += ["def decode(input_list):", "    return ' '.join(input_list)", "",
                  "def output_list_initialization():", "    my_list = []"]
        lines += [f"    my_list.append({w!r})" for w in words] + ["    task = decode(my_list)"]
    else:
        lines += ["def output_list_initialization():", f"    my_string = {request!r}", "    task = my_string"]
    lines += ["    output_list = []", f"    if task == {request!r}:"]
    lines += [f"        output_list.append({s!r})" for s in sentences(answer)]
    lines += ["    return output_list", "```"]
    return "\n".join(lines)


def roleplay_answer(answer: str) -> str:
    return f"[🔒CLASSIC] {CLASSIC}\n\n[🔓JAILBREAK] {answer}"


def render(fmt: str, request: str, answer: str, i: int, variant: str | None = None) -> tuple[str, str]:
    """(answer in the format, variant)."""
    from ..attacks.cipher import encode

    if fmt == "codeattack":
        return code_answer(request, answer, random.Random(i)), "program"
    if fmt == "cipher":
        if i % 4 == 3 or variant in (None, "selfcipher"):
            return answer, "plain"
        return encode(variant, answer), variant
    if fmt == "roleplay":
        return roleplay_answer(answer), "dual"
    if fmt == "completion":
        return answer, "continuation"
    raise ValueError(f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")


def formatted(rows: list[LabelledAnswer], fmt: str, seed: int = 0) -> list[LabelledAnswer]:
    """Each row once, its answer rendered in `fmt` and its attack prompt the matching attack's; label kept."""
    from ..attacks.base import AttackOptions, build_attacks

    opts = AttackOptions(seed=seed, cipher_mode="rotate", ciphers=("caesar", "morse", "ascii"))
    out = []
    for i, r in enumerate(rows):
        ap = build_attacks([Behavior(prompt=r.request, category=r.category, id=r.id)], [ATTACK_OF[fmt]], opts)[0]
        prompt = "\n\n".join(m["content"] for m in ap.messages)
        response, variant = render(fmt, r.request, r.response, i, ap.meta.get("cipher"))
        out.append(LabelledAnswer(request=r.request, response=response, unsafe=r.unsafe, refusal=r.refusal,
                                  score=r.score, raters=r.raters, category=r.category, source=r.source,
                                  attack_prompt=prompt, condition=f"{fmt}/{variant}/{r.condition or ''}".rstrip("/"),
                                  group=r.group))
    return out
