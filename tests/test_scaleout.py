"""The shipped `accelerate launch` configs load with accelerate's own parser and say what they promise."""

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("ddp_cpu", "MULTI_CPU"), ("fsdp2", "FSDP"),
                                        ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED")])
def test_accelerate_configs_load(name, kind):
    cfg = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert cfg.distributed_type.name == kind
    if name == "fsdp2":
        assert cfg.fsdp_config["fsdp_version"] == 2
    if name.startswith("zero"):
        assert cfg.deepspeed_config["zero_stage"] == int(name[-1])
    if name == "ddp_cpu":
        assert cfg.use_cpu and cfg.num_processes == 2
