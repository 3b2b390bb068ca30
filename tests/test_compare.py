"""`safekeel compare`: paired differences between runs on the same behaviors, seeds kept paired."""

import json
import subprocess
import sys

import pytest

from safekeel.eval.compare import compare


def make_run(path, unsafe: dict, refused: dict | None = None):
    """A run directory with one direct row per behavior and harm-clf / keyword verdicts."""
    path.mkdir(parents=True)
    rows, judged = [], []
    for b, u in unsafe.items():
        key = f"{path.name}-{b}"
        rows.append({"key": key, "behavior_id": b, "behavior": f"request {b}", "attack": "direct", "variant": None,
                     "meta": {}, "set": "harmful", "sample": 0, "response_decoded": "x", "refusal_token": None})
        judged.append({"key": key, "judge": "harm-clf", "unsafe": u, "refusal": None, "score": float(u)})
        r = (refused or {}).get(b, not u)
        judged.append({"key": key, "judge": "keyword", "unsafe": not r, "refusal": r, "score": 0.0})
    (path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "judged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in judged))
    return path


def test_paired_difference_of_two_runs(tmp_path):
    """Baseline unsafe on b0-b7 of 10; the run on b0-b1 only: -60 points, 6 discordant pairs all one way,
    McNemar p = 2 / 2^6."""
    base = make_run(tmp_path / "base", {f"b{i}": i < 8 for i in range(10)})
    run = make_run(tmp_path / "derta", {f"b{i}": i < 2 for i in range(10)})
    res = compare([run], base, n_boot=500)["runs"][str(run)]
    d = res["asr"]["direct"]
    assert d["diff"] == pytest.approx(-0.6) and d["n_pairs"] == 10
    assert d["p_mcnemar"] == pytest.approx(2 / 64)
    assert d["ci"][1] < 0  # decided: every resample of behaviors keeps the run below the baseline
    assert res["refusal"]["direct"]["diff"] == pytest.approx(0.6)
    assert res["asr"]["all attacks"]["diff"] == pytest.approx(-0.6)


def test_seed_folders_pair_seed_by_seed_and_a_one_seed_baseline_stands_beside_each(tmp_path):
    base = make_run(tmp_path / "base", {f"b{i}": True for i in range(10)})
    arm = tmp_path / "arm"
    make_run(arm / "seed-0", {f"b{i}": i < 5 for i in range(10)})
    make_run(arm / "seed-1", {f"b{i}": i < 9 for i in range(10)})
    d = compare([arm], base, n_boot=300)["runs"][str(arm)]["asr"]["direct"]
    assert d["per_seed"] == {"0": -0.5, "1": -0.1} and d["diff"] == pytest.approx(-0.3)
    assert d["behaviors"] == 10 and d["n_pairs"] == 20


def test_only_common_behaviors_are_compared_and_none_in_common_is_an_error(tmp_path):
    base = make_run(tmp_path / "base", {"a": True, "b": True})
    run = make_run(tmp_path / "run", {"b": False, "c": False})
    assert compare([run], base, n_boot=100)["runs"][str(run)]["asr"]["direct"]["n_pairs"] == 1
    other = make_run(tmp_path / "other", {"z": False})
    from safekeel.errors import SafekeelError

    with pytest.raises(SafekeelError, match="no behavior in common"):
        compare([other], base)


def test_cli_writes_compare_json_and_markdown(tmp_path, cli_env):
    base = make_run(tmp_path / "base", {f"b{i}": i < 8 for i in range(10)})
    run = make_run(tmp_path / "derta", {f"b{i}": i < 2 for i in range(10)})
    out = tmp_path / "cmp"
    p = subprocess.run([sys.executable, "-m", "safekeel", "compare", str(run), "--baseline", str(base),
                        "--out", str(out), "--n_boot", "200"], capture_output=True, text=True, env=cli_env)
    assert p.returncode == 0, p.stderr
    assert json.loads((out / "compare.json").read_text())["runs"][str(run)]["asr"]["direct"]["diff"] == -0.6
    assert "-60.0 [" in (out / "compare.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "safekeel", "compare", str(run)], capture_output=True, text=True,
                         env=cli_env)
    assert bad.returncode == 2 and "--baseline" in bad.stderr
