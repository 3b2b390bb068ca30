import subprocess
import sys

import pytest

from safekeel.errors import SafekeelError
from safekeel.models import load_model


def test_load_local_folder_and_unknown_model(tiny_dir):
    model, tok = load_model(str(tiny_dir))
    assert tok.pad_token is not None and model.config.num_hidden_layers == 2
    with pytest.raises(SafekeelError, match="cannot load model"):
        load_model(str(tiny_dir / "missing"))


def test_unknown_model_cli_exit_2(tmp_path, cli_env):
    proc = subprocess.run([sys.executable, "-m", "safekeel", "demo", "--model", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=cli_env)
    assert proc.returncode == 2 and "cannot load" in proc.stderr


@pytest.mark.slow
def test_prepare_default_then_offline_generation(tmp_path):
    env_run = [sys.executable, "-m", "safekeel", "models", "prepare", "smollm2-135m"]
    proc = subprocess.run(env_run, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    from safekeel.eval.generate import GenerationRequest, generate

    model, tok = load_model("smollm2-135m")  # HF_HUB_OFFLINE=1 is set for every test
    (answer,) = generate(model, tok, [GenerationRequest([{"role": "user", "content": "What is the capital of France?"}])],
                         max_new_tokens=24)
    assert "paris" in answer.lower()
