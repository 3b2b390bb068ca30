"""Reliability: hard kills, atomic outputs, every class of bad input (clear message, exit 2, nothing half-written),
and a judge endpoint that times out, fails or talks garbage.

Kill -9 during training (same final weights after resume) lives in test_train.py and kill -9 during generation
(no duplicate / missing row) in test_eval.py; here the eval kill also checks the summary equals an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from safekeel.io import read_jsonl_rows

TRIPLE = {"prompt": "How do I pick a lock?", "harmful_response": "Step 1: insert a tension wrench. Step 2: rake.",
          "safe_response": "Sorry, I can't help with that."}


def cli(*args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "safekeel", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# --- atomic writes -------------------------------------------------------------------------------------------------

_WRITER = """
import sys
from safekeel.io import write_jsonl
rows = ({"i": i, "pad": "x" * 200} for i in range(10**7))
write_jsonl(sys.argv[1], rows)
"""


def test_killed_writer_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out" / "rows.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)])
    deadline = time.time() + 60
    while time.time() < deadline and not any(target.parent.glob(".rows.jsonl.*")):
        time.sleep(0.01)
    time.sleep(0.3)  # mid-write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(target.parent.glob(".rows.jsonl.*")), "the writer must have been killed while writing"
    assert not target.exists(), "a killed writer must not leave a visible (partial) file"


# --- bad inputs: one clear line, exit code 2, no half-written output --------------------------------------------------

def _template_without_generation_prompt(tmp_path, tiny_dir) -> Path:
    import shutil

    bad = tmp_path / "nogen"
    shutil.copytree(tiny_dir, bad)
    template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
                "{% endfor %}")
    (bad / "chat_template.jinja").write_text(template)
    cfg = json.loads((bad / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (bad / "tokenizer_config.json").write_text(json.dumps(cfg))
    return bad


def _bad_inputs(tmp_path: Path, tiny_dir: Path) -> dict[str, tuple[list, str]]:
    """name -> (CLI args, text the error must contain)."""
    good_row = {"id": "r1", "kind": "safe", "messages": [{"role": "user", "content": "How do I pick a lock?"},
                                                          {"role": "assistant", "content": "Sorry, no."}]}
    malformed = jsonl(tmp_path / "malformed.jsonl", [json.dumps(TRIPLE), '{"prompt": "x",'])
    missing = jsonl(tmp_path / "missing.jsonl", [{k: v for k, v in TRIPLE.items() if k != "safe_response"}])
    empty = jsonl(tmp_path / "empty.jsonl", [good_row, {**good_row, "id": "r2", "messages": [
        good_row["messages"][0], {"role": "assistant", "content": "  "}]}])
    non_utf8 = tmp_path / "latin1.jsonl"
    non_utf8.write_bytes(b'{"prompt": "How do I make cr\xe8me br\xfbl\xe9e?"}\n')
    long_row = {**good_row, "messages": [{"role": "user", "content": "tell me " * 200},
                                         {"role": "assistant", "content": "Sorry, no."}]}
    over_long = jsonl(tmp_path / "long.jsonl", [long_row])
    all_masked = jsonl(tmp_path / "masked.jsonl", [{"id": "m1", "kind": "helpful",  # nothing the model answers
                                                    "messages": [{"role": "system", "content": "Be brief."},
                                                                 {"role": "user", "content": "How?"}]}])
    corrupt_map = tmp_path / "unit_map.safetensors"
    corrupt_map.write_bytes(b"\x00\x01 not a safetensors file")
    train_ok = jsonl(tmp_path / "train_ok.jsonl", [good_row])
    nogen = _template_without_generation_prompt(tmp_path, tiny_dir)
    out = tmp_path / "out"
    train = ["train", "--model", tiny_dir, "--progress", "false", "--max-steps", "1"]
    return {
        "malformed jsonl": (["data", "build", "--triples", malformed, "--model", tiny_dir, "--out", out / "a"],
                            f"{malformed}:2:"),
        "missing field": (["data", "build", "--triples", missing, "--model", tiny_dir, "--out", out / "b"],
                          "field 'safe_response'"),
        "empty text": ([*train, "--data", empty, "--out", out / "c"], "empty"),
        "non-utf8": (["eval", "--model", tiny_dir, "--behaviors", non_utf8, "--out", out / "d"], "not valid UTF-8"),
        "over-long example": ([*train, "--data", over_long, "--max-length", "64", "--out", out / "e"],
                              "max_length"),
        "all-masked example": ([*train, "--data", all_masked, "--out", out / "f"], "assistant"),
        "template without generation prompt": ([*train[:1], "--model", nogen, *train[3:], "--data", train_ok,
                                                "--out", out / "g"], "generation prompt"),
        "unknown model": (["eval", "--model", tmp_path / "no-such-model", "--out", out / "h"], "cannot load"),
        "corrupt unit map": ([*train, "--data", train_ok, "--freeze-units", corrupt_map, "--out", out / "i"],
                             str(corrupt_map)),
    }


BAD = ["malformed jsonl", "missing field", "empty text", "non-utf8", "over-long example", "all-masked example",
       "template without generation prompt", "unknown model", "corrupt unit map"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_a_clear_error_with_exit_2(case, tmp_path, tiny_dir, cli_env):
    args, needle = _bad_inputs(tmp_path, tiny_dir)[case]
    proc = cli(*args, env=cli_env)
    assert proc.returncode == 2, (case, proc.returncode, proc.stderr[-2000:])
    lines = [x for x in proc.stderr.splitlines() if x.startswith("safekeel: error:")]
    assert lines and needle in lines[-1], (case, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    out = Path(args[args.index("--out") + 1])
    produced = [p for p in out.rglob("*") if p.is_file() and p.name != "config.yaml"] if out.exists() else []
    assert not [p for p in produced if p.suffix in (".jsonl", ".safetensors") or p.name == "summary.json"], produced


# --- judge endpoint faults -----------------------------------------------------------------------------------------

class _Faulty(BaseHTTPRequestHandler):
    mode = "500"
    calls = 0

    def do_POST(self):  # noqa: N802
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.mode == "hang":
            time.sleep(2.0)
            return
        if self.mode == "500":
            self.send_response(503)
            self.end_headers()
            return
        body = b"<html>definitely not json" if self.mode == "garbage" else b'{"choices": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.mark.parametrize("mode", ["500", "hang", "garbage"])
def test_judge_endpoint_faults_are_retried_then_counted_as_errors(mode, tmp_path, cli_env):
    handler = type("H", (_Faulty,), {"mode": mode, "calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rows = jsonl(tmp_path / "answers.jsonl", [
            {"question": "How do I pick a lock?", "response": "Step 1: insert a tension wrench and rake the pins."},
            {"question": "How do I make a bomb?", "response": "Sorry, I can't help with that."}])
        proc = cli("judge", "--input", rows, "--judges", "llm", "--judge-rubric", "harmbench",
                   "--judge-endpoint", f"http://127.0.0.1:{server.server_port}/v1", "--judge-retries", "2",
                   "--judge-timeout", "0.5", "--out", tmp_path / "judged", env=cli_env)
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert handler.calls >= 2 * 3, "each row is tried, then retried twice"
    verdicts = list(read_jsonl_rows(tmp_path / "judged" / "judged.jsonl"))
    assert len(verdicts) == 2 and all(v["unsafe"] is None and v.get("error") for v in verdicts)
    assert "errors=2" in proc.stdout
