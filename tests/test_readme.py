"""The README's documented commands: every `safekeel ...` line names a real verb, and every option it uses exists
(checked against the verb's --help), so the tour cannot drift from the CLI. `safekeel data validate` and
`safekeel models list` also run for real in their quick form."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def documented_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            if "safekeel" not in line or line.startswith("make"):
                continue
            words = shlex.split(line)
            start = words.index("safekeel.cli") if "safekeel.cli" in words else words.index("safekeel")
            cmds.append(words[start + 1:])
    return cmds


def _verb_and_options(words: list[str]) -> tuple[list[str], list[str]]:
    verb = []
    for w in words:
        if w.startswith("-") or "/" in w or "." in w:
            break
        verb.append(w)
    return verb, [w.split("=")[0] for w in words if w.startswith("--")]


def test_every_verb_has_help():
    """`--help` renders for every verb (help texts with % signs once broke argparse)."""
    from safekeel.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.format_help(), name
        for a in p._actions:
            if getattr(a, "choices", None) and isinstance(a.choices, dict):
                for child in a.choices.values():
                    assert child.format_help()


def test_readme_documents_every_stage():
    verbs = {" ".join(_verb_and_options(c)[0][:1]) for c in documented_commands()}
    assert {"models", "data", "train", "units", "attack", "eval", "judge", "report"} <= verbs


@pytest.mark.parametrize("words", documented_commands(), ids=lambda w: " ".join(w[:3]))
def test_documented_command_exists_with_its_options(words):
    verb, options = _verb_and_options(words)
    while verb:  # positional arguments (source names, paths) are not verbs: back off to the longest verb
        help_ = subprocess.run([sys.executable, "-m", "safekeel", *verb, "--help"], capture_output=True, text=True)
        if help_.returncode == 0:
            break
        verb = verb[:-1]
    assert verb and help_.returncode == 0, words
    for opt in options:
        assert opt in help_.stdout, f"{' '.join(verb)}: option {opt} is documented but does not exist"


def test_quick_forms_run(tmp_path, cli_env):
    good = tmp_path / "my_triples.jsonl"
    good.write_text(json.dumps({"prompt": "q", "harmful_response": "h", "safe_response": "s"}) + "\n")
    ok = subprocess.run([sys.executable, "-m", "safekeel", "data", "validate", str(good), "--kind", "triples"],
                        capture_output=True, text=True, env=cli_env)
    assert ok.returncode == 0 and "1 valid triples records" in ok.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps({"prompt": p, "harmful_response": "h", "safe_response": "s"})
                             for p in ("a", "b", " ")) + "\n")
    err = subprocess.run([sys.executable, "-m", "safekeel", "data", "validate", str(bad), "--kind", "triples"],
                         capture_output=True, text=True, env=cli_env)
    assert err.returncode == 2 and f"{bad}:3: field 'prompt': empty string" in err.stderr
    listing = subprocess.run([sys.executable, "-m", "safekeel", "models", "list"], capture_output=True, text=True,
                             env=cli_env)
    assert listing.returncode == 0 and "smollm2-135m" in listing.stdout


def test_result_blocks_are_rendered_from_the_result_files():
    """README's and RESULTS' measured figures come from benchmarks/results/*.json: a stale block fails here."""
    import importlib.util

    path = README.parent / "benchmarks" / "results_blocks.py"
    spec = importlib.util.spec_from_file_location("results_blocks", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for doc in mod.DOCS:
        text = doc.read_text(encoding="utf-8")
        assert mod.render(text) == text, f"{doc.name}: run python benchmarks/results_blocks.py"
    assert "<!-- results:judge -->" in README.read_text(encoding="utf-8")
