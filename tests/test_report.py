"""`safekeel report`: several runs side by side, summary.json + report.md + self-contained report.html with PNGs."""

import base64
import json
import re
import subprocess
import sys

from safekeel.eval.report import write_report
from safekeel.eval.summary import summarize
from safekeel.io import write_jsonl


def fake_run(path, label, unsafe_every):
    """A run directory as `safekeel eval` writes it (rows + verdicts), without generating anything."""
    rows, verdicts = [], []
    i = 0
    for attack, variants in (("direct", [""]), ("prefill", [""]), ("cipher", ["caesar", "morse"]),
                             ("harmful_prefix", ["k=0", "k=10"])):
        for v in variants:
            for b in range(10):
                key = f"{label}-{attack}-{v}-{b}"
                refused = i % unsafe_every == 0
                rows.append({"key": key, "set": "harmful", "behavior_id": f"b{b}", "behavior": "q", "attack": attack,
                             "variant": v, "category": "c1" if b % 2 else "c2",
                             "meta": {"k": int(v[2:])} if v.startswith("k=") else {}, "response": "r",
                             "response_decoded": "r", "refusal_token": (i % 7) * 3 if refused else None})
                for judge in ("keyword", "harm"):
                    verdicts.append({"key": key, "judge": judge, "unsafe": None if (judge == "harm" and i == 3)
                                     else not refused, "refusal": refused, "score": None, "error": None})
                i += 1
    for s in range(5):
        key = f"{label}-scary-{s}"
        rows.append({"key": key, "set": "benign-scary", "behavior_id": f"s{s}", "behavior": "kill a process",
                     "attack": "direct", "variant": "", "category": None, "meta": {}, "response": "r",
                     "response_decoded": "r", "refusal_token": None})
        verdicts.append({"key": key, "judge": "keyword", "unsafe": s != 0, "refusal": s == 0, "error": None})
    write_jsonl(path / "rows.jsonl", rows)
    write_jsonl(path / "judged.jsonl", verdicts)
    (path / "config.yaml").write_text(f"label: {label}\nmodel: m\n")
    return path


def test_summary_counts_errors_separately(tmp_path):
    s = summarize(fake_run(tmp_path / "a", "base", 2))
    assert s["asr"]["harm"]["direct"]["errors"] == 1 and s["asr"]["harm"]["direct"]["n"] == 9
    assert s["asr"]["keyword"]["cipher"]["n"] == 20 and "cipher/caesar" in s["asr_variant"]["keyword"]
    assert [p["k"] for p in s["recovery"]["keyword"]] == [0, 10]
    assert s["over_refusal"]["keyword"]["k"] == 1 and s["over_refusal"]["keyword"]["n"] == 5


def test_report_two_runs_side_by_side(tmp_path, cli_env):
    a, b = fake_run(tmp_path / "a", "base", 2), fake_run(tmp_path / "b", "derta", 5)
    out = write_report([a, b], tmp_path / "rep")
    summary = json.loads((out / "summary.json").read_text())
    assert [r["run"] for r in summary["runs"]] == ["base", "derta"] and summary["main_judge"] == "harm"
    md = (out / "report.md").read_text()
    assert "| attack | base | derta |" in md and "over-refusal" in md
    html = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3 and all(base64.b64decode(x)[:8] == b"\x89PNG\r\n\x1a\n" for x in images)
    assert "src=\"http" not in html and "<script" not in html  # self-contained
    for name in ("asr_per_attack.png", "refusal_position.png", "recovery_curve.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    proc = subprocess.run([sys.executable, "-m", "safekeel", "report", str(a), str(b), "--out", str(tmp_path / "r2")],
                          capture_output=True, text=True, env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r2" / "report.html").exists() and "report ->" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "safekeel", "report", str(tmp_path / "nothing")],
                         capture_output=True, text=True, env=cli_env)
    assert bad.returncode == 2 and "not a run directory" in bad.stderr
