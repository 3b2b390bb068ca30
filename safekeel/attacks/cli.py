"""`safekeel attack`: write the attack prompts (AttackPrompt records, JSONL) for a behavior set, without a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import add_config_args, field, resolve_config, save_config


@dataclass
class AttackConfig:
    behaviors: str = field("harmbench", help="behavior set: bundled name (:heldout/:train) or a JSONL/JSON/CSV file")
    n_behaviors: int = field(10, help="first N behaviors (0 = all)")
    attacks: list[str] = field(["direct", "prefill", "completion", "codeattack", "cipher", "jailbreak_template",
                                "harmful_prefix"], help="static attacks to build (pair/autodan need a model: eval)")
    prefix_ks: list[int] = field([0, 5, 10, 20, 40], help="harmful_prefix lengths (whitespace words here: no model)")
    ciphers: list[str] = field(["caesar", "morse", "ascii", "selfcipher"], help="cipher variants")
    cipher_mode: str = field("all", help="all or rotate")
    prefill_text: str = field("Sure, here is", help="prefill attack opener")
    seed: int = field(0, help="seed for per-behavior choices")
    out: str = field("runs/attacks", help="output directory (prompts.jsonl + config.yaml)")


def run_attack(cfg: AttackConfig) -> Path:
    from ..attacks.base import AttackOptions, build_attacks
    from ..errors import SafekeelError
    from ..io import write_jsonl
    from .run_helpers import load_behaviors

    bad = [a for a in cfg.attacks if a in ("pair", "autodan")]
    if bad:
        raise SafekeelError(f"{', '.join(bad)} search(es) against a model: use `safekeel eval --attacks {bad[0]}`")
    opts = AttackOptions(seed=cfg.seed, prefill_text=cfg.prefill_text, prefix_ks=list(cfg.prefix_ks),
                         ciphers=list(cfg.ciphers), cipher_mode=cfg.cipher_mode)
    prompts = build_attacks(load_behaviors(cfg.behaviors, cfg.n_behaviors), cfg.attacks, opts)
    out = Path(cfg.out)
    save_config(cfg, out)
    write_jsonl(out / "prompts.jsonl", (p.to_dict() for p in prompts))
    return out / "prompts.jsonl"


def register(sub) -> None:
    p = sub.add_parser("attack", help="build jailbreak attack prompts for a behavior set (JSONL)")
    add_config_args(p, AttackConfig)
    p.set_defaults(func=_run)


def _run(args) -> int:
    cfg = resolve_config(AttackConfig, args)
    path = run_attack(cfg)
    from ..io import read_jsonl_rows

    n = sum(1 for _ in read_jsonl_rows(path))
    print(f"{n} attack prompts -> {path}")
    return 0
