import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import build_model, build_tokenizer, save_tiny  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test gets its own SAFEKEEL_HOME, except slow tests, which share the real cache (the prepared model)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny") / "chatml")


@pytest.fixture
def tiny_tokenizer():
    return build_tokenizer("chatml")


@pytest.fixture
def tiny_model(tiny_tokenizer):
    return build_model(tiny_tokenizer)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_env(tmp_path) -> dict:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["SAFEKEEL_HOME"] = env.get("SAFEKEEL_HOME") or str(tmp_path / "home")
    return env
