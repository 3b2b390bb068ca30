import argparse
from dataclasses import dataclass

import pytest
import yaml

from safekeel.config import add_config_args, field, resolve_config, save_config
from safekeel.errors import ConfigError


@dataclass
class Cfg:
    model: str = field("m", help="model")
    lr: float = field(1e-4)
    steps: int = field(10)
    bf16: bool = field(False)
    targets: list[str] = field(["q_proj", "v_proj"])
    adapter: str | None = field(None)
    data: str | None = field(None, required=True)


def parse(argv, yaml_path=None):
    p = argparse.ArgumentParser()
    add_config_args(p, Cfg)
    args = p.parse_args(argv + (["--config", str(yaml_path)] if yaml_path else []) + ["--data", "d.jsonl"])
    return resolve_config(Cfg, args)


def test_defaults_yaml_then_cli_override(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lr: 2e-5\nsteps: 3\ntargets: [a, b, c]\n")
    cfg = parse(["--steps", "7", "--bf16", "true"], y)
    assert cfg.lr == pytest.approx(2e-5) and cfg.steps == 7 and cfg.bf16 is True
    assert cfg.targets == ["a", "b", "c"] and cfg.model == "m" and cfg.adapter is None
    assert parse(["--targets", "x,y"]).targets == ["x", "y"]
    assert parse(["--bf16"]).bf16 is True and parse(["--bf16", "false"]).bf16 is False


def test_unknown_yaml_key_and_bad_type_are_config_errors(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lrr: 1\n")
    with pytest.raises(ConfigError, match="unknown key 'lrr'"):
        parse([], y)
    with pytest.raises(ConfigError, match="'steps' expects int"):
        parse(["--steps", "many"])
    with pytest.raises(ConfigError, match="true/false"):
        parse(["--bf16", "maybe"])


def test_resolved_config_saved_and_reloads(tmp_path):
    cfg = parse(["--steps", "5"])
    path = save_config(cfg, tmp_path / "run")
    saved = yaml.safe_load(path.read_text())
    assert saved["steps"] == 5 and saved["targets"] == ["q_proj", "v_proj"]
    assert resolve_config(Cfg, yaml_path=str(path)) == cfg


def test_required_field_must_be_given():
    p = argparse.ArgumentParser()
    add_config_args(p, Cfg)
    with pytest.raises(ConfigError, match="missing value for: --data"):
        resolve_config(Cfg, p.parse_args([]))
