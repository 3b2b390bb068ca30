"""`safekeel report`: several runs side by side, summary.json + report.md + self-contained report.html with PNGs."""

import base64
import json
import re
import subprocess
import sys

import pytest

from safekeel.errors import SafekeelError
from safekeel.eval.report import write_report
from safekeel.eval.summary import summarize
from safekeel.io import write_json, write_jsonl
from safekeel.judges.agreement import measured_agreement


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
    out = write_report([a, b], tmp_path / "rep", agreement_path=tmp_path / "no-agreement.json")
    summary = json.loads((out / "summary.json").read_text())
    assert [r["run"] for r in summary["runs"]] == ["base", "derta"] and summary["main_judge"] == "harm"
    md = (out / "report.md").read_text()
    assert "| attack | base | derta |" in md and "over-refusal" in md
    assert "Judge `harm`: agreement not measured" in md and " corrected |" not in md
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


HARM_AGREEMENT = {"version": "1.0", "label_set": "hand-labelled demo answers", "measured": "2026-11-20", "n": 200,
                  "tp": 80, "fn": 20, "tn": 90, "fp": 10, "kappa": 0.7, "precision": 0.889, "recall": 0.8}


def agreement_file(tmp_path, judges=None):
    path = tmp_path / "judge_agreement.json"
    write_json(path, {"judges": {"harm": HARM_AGREEMENT} if judges is None else judges})
    return path


def test_measured_agreement_loader(tmp_path):
    path = agreement_file(tmp_path)
    assert measured_agreement("harm", path) == HARM_AGREEMENT
    assert measured_agreement("keyword", path) is None  # never measured: nothing is assumed
    assert measured_agreement("harm", tmp_path / "absent.json") is None
    bad = agreement_file(tmp_path, {"harm": {**HARM_AGREEMENT, "tp": 0.8}})
    with pytest.raises(SafekeelError, match="tp must be counts"):
        measured_agreement("harm", bad)


def test_summary_corrects_asr_only_for_a_measured_judge(tmp_path):
    s = summarize(fake_run(tmp_path / "a", "base", 2), agreement_path=agreement_file(tmp_path))
    direct = s["asr_corrected"]["harm"]["direct"]
    # harm judge, direct attack: 4 unsafe of 9 judged (one judge error); (4/9 + 0.9 - 1) / (0.8 + 0.9 - 1) = 31/63,
    # which the posterior median (uniform prior, uncertain sensitivity / specificity) lands near
    assert (direct["k"], direct["n"], direct["errors"]) == (4, 9, 1)
    assert direct["corrected"] == pytest.approx(31 / 63, abs=0.03) and direct["ci"] == s["asr"]["harm"]["direct"]["ci"]
    assert direct["corrected_ci"][0] <= direct["corrected"] <= direct["corrected_ci"][1]
    assert set(s["asr_corrected"]["harm"]) == set(s["asr"]["harm"])  # same groups as the judged ASR
    overall = s["asr_corrected_overall"]["harm"]  # 19 unsafe of 39: (19/39 - 0.1) / 0.7 = 151/273
    assert (overall["k"], overall["n"]) == (19, 39) and overall["corrected"] == pytest.approx(151 / 273, abs=0.02)
    info = s["judge_info"]["harm"]
    assert info["version"] == "1.0" and info["kappa"] == 0.7 and info["n"] == 200
    assert info["sensitivity"] == 0.8 and info["specificity"] == 0.9
    assert s["judge_info"]["keyword"] == {"measured": None}
    assert "keyword" not in s["asr_corrected"] and "keyword" not in s["asr_corrected_overall"]
    unmeasured = summarize(tmp_path / "a", write=False, agreement_path=tmp_path / "absent.json")
    assert unmeasured["asr_corrected"] == {} and unmeasured["judge_info"]["harm"] == {"measured": None}


def test_report_shows_judged_and_corrected_asr_and_names_the_judge(tmp_path):
    a, b = fake_run(tmp_path / "a", "base", 2), fake_run(tmp_path / "b", "derta", 5)
    out = write_report([a, b], tmp_path / "rep", agreement_path=agreement_file(tmp_path))
    md = (out / "report.md").read_text()
    assert "| attack | base judged | base corrected | derta judged | derta corrected |" in md
    direct = next(line for line in md.splitlines() if line.startswith("| direct |") and "corrected" not in line)
    assert direct.startswith("| direct | 44.4 [") and "| 50.1 [" in direct  # 4/9 judged, posterior median ~31/63
    line = ("Judge `harm` version 1.0: agreement with human labels on hand-labelled demo answers (n = 200, measured "
            "2026-11-20): kappa 0.70, sensitivity 0.80, specificity 0.90.")
    assert line in md and "Judge `keyword`: agreement not measured" in md
    assert "| attack | base | derta |" in md  # the unmeasured keyword judge: judged ASR only
    html = (out / "report.html").read_text()
    assert line.replace("`", "") in html and "Judge keyword: agreement not measured" in html
    assert "base corrected</th>" in html
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert runs[0]["judge_info"]["harm"]["specificity"] == 0.9 and runs[0]["asr_corrected_overall"]["harm"]


def test_report_says_when_the_correction_is_undefined(tmp_path):
    chance = {**HARM_AGREEMENT, "tp": 5, "fn": 5, "tn": 5, "fp": 5}
    out = write_report([fake_run(tmp_path / "a", "base", 2)], tmp_path / "rep",
                       agreement_path=agreement_file(tmp_path, {"harm": chance}))
    md = (out / "report.md").read_text()
    assert "| direct | 44.4 [" in md and "| undefined |" in md and "no better than chance" in md


def test_report_shows_example_answers_escaped_and_a_baseline_column(tmp_path):
    import json

    a, b = fake_run(tmp_path / "a", "base", 2), fake_run(tmp_path / "b", "derta", 5)
    rows = [json.loads(x) for x in (b / "rows.jsonl").read_text().splitlines()]
    rows[0]["response_decoded"] = "Step 1 | <script>alert(1)</script>\nStep 2: `rm -rf`"
    write_jsonl(b / "rows.jsonl", rows)
    out = write_report([a, b], tmp_path / "rep", agreement_path=agreement_file(tmp_path), baseline=a)
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## Example answers and verdicts (judge `harm`)" in md
    assert "Step 1 \\| &lt;script&gt;alert(1)&lt;/script&gt; Step 2: \\`rm -rf\\`" in md
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "difference from the baseline" in md and (out / "compare.json").exists()
