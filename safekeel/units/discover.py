"""Find the SSAH units of any Llama/Mistral/Qwen/Gemma-style decoder by structure, not by module names.

A unit lives in a depth-2 block f(X) = B·σ(A·X): channel j of B's input. One tiny forward pass records the order in
which every `nn.Linear` of each decoder layer is called; within one parent module the last-called Linear is the
output projection B and the earlier ones are the input projections A. A parent with three input projections (or one
fused q/k/v projection) is attention, its last input projection is v (models call q, k, v in that order); the other
block is the MLP (gate/up or a fused gate_up, or a plain fc1). Head counts and head_dim come from the config and are
checked against the weight shapes, so grouped-query attention maps each o_proj channel to its shared v row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .. import device as devices
from ..errors import SafekeelError


@dataclass
class UnitModule:
    """One block of units: `n_units` input channels of `output` (B), fed by the rows of `inputs` (A)."""

    key: str  # e.g. "layers.3.mlp" / "layers.3.attn"
    layer: int
    kind: str  # "mlp" | "attn"
    output: nn.Linear  # B: unit j = column j of its weight
    inputs: list[nn.Linear] = field(default_factory=list)  # A: unit j = rows j (+ offsets for fused projections)
    input_offsets: list[list[int]] = field(default_factory=list)  # row offsets of unit j inside each input
    n_heads: int = 0
    n_kv_heads: int = 0
    head_dim: int = 0
    v_proj: nn.Linear | None = None  # attention only: value projection (rows shared under GQA)
    v_offset: int = 0  # first v row inside a fused qkv projection

    @property
    def n_units(self) -> int:
        return self.output.in_features

    def v_rows(self, channels: torch.Tensor) -> torch.Tensor:
        """v_proj output rows feeding o_proj input channels `channels` (several channels share one row under GQA)."""
        heads = channels // self.head_dim
        group = self.n_heads // self.n_kv_heads
        return self.v_offset + (heads // group) * self.head_dim + channels % self.head_dim


def text_config(model):
    cfg = model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def decoder_layers(model) -> nn.ModuleList:
    """The longest ModuleList of identical blocks that contain Linear layers: the decoder stack."""
    best = None
    for _, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0:
            kinds = {type(m) for m in mod}
            if len(kinds) == 1 and any(isinstance(s, nn.Linear) for s in mod[0].modules()):
                if best is None or len(mod) > len(best):
                    best = mod
    if best is None:
        raise SafekeelError(f"{type(model).__name__}: no stack of decoder layers found (not a decoder LM?)")
    return best


def _call_order(model, layers: nn.ModuleList) -> list[list[tuple[str, nn.Linear]]]:
    order: list[list[tuple[str, nn.Linear]]] = [[] for _ in layers]
    handles = []
    for i, layer in enumerate(layers):
        for name, mod in layer.named_modules():
            if isinstance(mod, nn.Linear):
                def hook(m, args, i=i, name=name):
                    if all(m is not x for _, x in order[i]):
                        order[i].append((name, m))
                handles.append(mod.register_forward_pre_hook(hook))
    device = devices.input_device(model)
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([[1, 2, 3, 4]]).to(device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return order


def find_units(model) -> list[UnitModule]:
    """Every unit block of the model, layer by layer (MLP and attention)."""
    cached = getattr(model, "_safekeel_units", None)
    if cached is not None:
        return cached
    if any("lora_" in n for n, _ in model.named_parameters()):
        raise SafekeelError("units need plain Linear layers: merge the LoRA adapter first (merge_and_unload)")
    cfg = text_config(model)
    layers = decoder_layers(model)
    n_heads = getattr(cfg, "num_attention_heads", None)
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
    head_dim = getattr(cfg, "head_dim", None) or (cfg.hidden_size // n_heads if n_heads else None)
    units: list[UnitModule] = []
    for i, calls in enumerate(_call_order(model, layers)):
        groups: dict[str, list[nn.Linear]] = {}
        for name, mod in calls:
            groups.setdefault(name.rpartition(".")[0], []).append(mod)
        found = {}
        for linears in groups.values():
            if len(linears) < 2:
                continue
            out, ins = linears[-1], linears[:-1]
            attn = _is_attention(out, ins, n_heads, n_kv, head_dim)
            um = _attention(i, out, ins, n_heads, n_kv, head_dim) if attn else _mlp(i, out, ins)
            if um.kind in found:
                raise SafekeelError(f"layer {i}: more than one {um.kind} block found; unsupported architecture")
            found[um.kind] = um
        if set(found) != {"mlp", "attn"}:
            raise SafekeelError(f"layer {i}: expected one attention and one MLP block, found {sorted(found)}")
        units += [found["mlp"], found["attn"]]
    model._safekeel_units = units
    return units


def _is_attention(out: nn.Linear, ins: list[nn.Linear], n_heads, n_kv, head_dim) -> bool:
    if len(ins) == 3:
        return True
    fused_qkv = (n_heads or 0) * (head_dim or 0) + 2 * (n_kv or 0) * (head_dim or 0)
    return len(ins) == 1 and ins[0].out_features == fused_qkv and out.in_features == n_heads * head_dim


def _mlp(i: int, out: nn.Linear, ins: list[nn.Linear]) -> UnitModule:
    n = out.in_features
    offsets = []
    for a in ins:
        if a.out_features % n:
            raise SafekeelError(f"layer {i}: MLP input projection has {a.out_features} rows, not a multiple of {n}")
        offsets.append([k * n for k in range(a.out_features // n)])  # fused gate_up: rows j and n + j
    return UnitModule(f"layers.{i}.mlp", i, "mlp", out, list(ins), offsets)


def _attention(i: int, out: nn.Linear, ins: list[nn.Linear], n_heads, n_kv, head_dim) -> UnitModule:
    if not (n_heads and head_dim) or out.in_features != n_heads * head_dim:
        raise SafekeelError(f"layer {i}: o_proj has {out.in_features} inputs, config says {n_heads} heads x "
                            f"{head_dim} head_dim")
    kv_width = n_kv * head_dim
    if len(ins) == 3:
        v, v_offset = ins[2], 0
        if v.out_features != kv_width:
            raise SafekeelError(f"layer {i}: v_proj has {v.out_features} rows, expected {n_kv} kv heads x {head_dim}")
    else:
        v, v_offset = ins[0], out.in_features + kv_width
        if v.out_features != out.in_features + 2 * kv_width:
            raise SafekeelError(f"layer {i}: fused qkv projection has {v.out_features} rows, cannot locate v")
    if n_heads % n_kv:
        raise SafekeelError(f"layer {i}: {n_heads} query heads are not a multiple of {n_kv} kv heads")
    return UnitModule(f"layers.{i}.attn", i, "attn", out, [], [], n_heads, n_kv, head_dim, v, v_offset)


def unit_shapes(model) -> dict[str, int]:
    return {u.key: u.n_units for u in find_units(model)}
