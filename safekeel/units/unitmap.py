"""Classify units into RU / ESU / EUU / CU and read/write the unit map artifact.

Classification (DESIGN §4): normalise the safety score S and utility score U (ranks in [0, 1], or divided by the
maximum), per block (`scope="layer"`) or over all blocks together (`scope="global"`); then, in that order,
  RU  = the `ru` fraction with the lowest S + U,
  ESU = the `esu` fraction (of the rest) with the highest S - U,
  EUU = the `euu` fraction (of the rest) with the highest U - S,
  CU  = everything else (complex units); `cu_top` marks the `cu_top` fraction of all units with the highest S
        among CU: the safety-critical CU that freezing keeps fixed together with ESU (paper: ESU + CU ≈ 7.5%).
Attention can be classified per channel or per head (`attn_granularity="head"`: channel scores summed per head, the
whole head gets one class).

The map: `unit_map.safetensors` with, per block `layers.<i>.mlp` / `layers.<i>.attn`, the tensors `<block>.class`
(uint8 ids, see CLASSES), `<block>.cu_top` (uint8 0/1), `<block>.score_safety`, `<block>.score_utility` (float32);
`unit_map.json` with the metadata (including `weights_sha256`, the hash of the weights the units were scored on);
`units_per_class.png`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import SafekeelError
from ..io import write_bytes, write_json

CLASSES = ("cu", "esu", "euu", "ru")  # class id = index
SELECTORS = ("esu", "euu", "ru", "cu", "cu_all")  # "cu" = the safety-critical top CU, "cu_all" = every complex unit


@dataclass
class UnitMap:
    classes: dict[str, torch.Tensor]  # block key -> uint8 class ids
    cu_top: dict[str, torch.Tensor]  # block key -> bool
    safety: dict[str, torch.Tensor]
    utility: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return list(self.classes)

    def select(self, names: list[str]) -> dict[str, torch.Tensor]:
        """Boolean mask per block of the units in the union of the named selectors."""
        bad = [n for n in names if n not in SELECTORS]
        if bad:
            raise SafekeelError(f"unknown unit class {', '.join(bad)} (use {', '.join(SELECTORS)}; 'cu' = the "
                                "safety-critical top CU, 'cu_all' = all complex units)")
        out = {}
        for k, cls in self.classes.items():
            m = torch.zeros(cls.shape, dtype=torch.bool)
            for n in names:
                m |= self.cu_top[k] if n == "cu" else cls == CLASSES.index("cu" if n == "cu_all" else n)
            out[k] = m
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for k, cls in self.classes.items():
            c = {name: int((cls == i).sum()) for i, name in enumerate(CLASSES)}
            c["cu_top"] = int(self.cu_top[k].sum())
            out[k] = c
        return out

    def check_model(self, model) -> None:
        """Raise SafekeelError unless every block of the model is in the map with the right number of units."""
        from .discover import unit_shapes

        shapes = unit_shapes(model)
        missing = sorted(set(shapes) - set(self.classes), key=_order)
        extra = sorted(set(self.classes) - set(shapes), key=_order)
        if missing or extra:
            raise SafekeelError(f"unit map does not fit this model: blocks missing {missing[:4]}, unknown "
                                f"{extra[:4]} (map made for {self.meta.get('model', '?')})")
        for k, n in shapes.items():
            if self.classes[k].numel() != n:
                raise SafekeelError(f"unit map does not fit this model: {k} has {self.classes[k].numel()} units in "
                                    f"the map, {n} in the model (map made for {self.meta.get('model', '?')})")


    def check_weights(self, model, allow_other: bool = False) -> None:
        """Raise SafekeelError unless the map was scored on exactly these weights (or `allow_other`).

        Units of one set of weights say nothing certain about another: a map scored on the base model, frozen while
        the DeRTa-trained model is fine-tuned, protects what the base model had, not what alignment added.
        """
        if allow_other:
            return
        want = self.meta.get("weights_sha256")
        hint = ("score units on this model (`safekeel units score --model ...` then `units classify`), or pass "
                "--unit-map-any-weights true to use the map anyway")
        if not want:
            raise SafekeelError(f"unit map records no weights hash, so it cannot be checked against this model: {hint}")
        got = weights_hash(model)
        if got != want:
            raise SafekeelError(f"unit map was scored on other weights (map {want[:12]}, this model {got[:12]}; map "
                                f"made for {self.meta.get('model', '?')}): {hint}")


def weights_hash(model) -> str:
    """sha256 of the parameters (names, shapes, exact values as fp32, which holds fp32, bf16 and fp16 weights
    exactly): the same checkpoint hashes alike in any of those dtypes, and weights that differ anywhere differ."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(f"{name}:{tuple(p.shape)}\x1f".encode())
        h.update(p.detach().to("cpu", torch.float32).contiguous().view(torch.int32).numpy().tobytes())
    return h.hexdigest()


def _order(key: str):
    parts = key.split(".")
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0, key)


def _normalise(x: torch.Tensor, how: str) -> torch.Tensor:
    x = x.to(torch.float64)
    if how == "rank":
        r = torch.empty_like(x)
        r[torch.argsort(x, stable=True)] = torch.arange(len(x), dtype=torch.float64)
        return r / max(len(x) - 1, 1)
    m = x.abs().max()
    return x / m if m > 0 else x


def classify_vector(s: torch.Tensor, u: torch.Tensor, esu: float, euu: float, ru: float, cu_top: float,
                    normalize: str = "rank") -> tuple[torch.Tensor, torch.Tensor]:
    """(class ids, cu_top mask) for one group of units; counts = round(fraction * n)."""
    n = len(s)
    ns, nu = _normalise(s, normalize), _normalise(u, normalize)
    cls = torch.full((n,), CLASSES.index("cu"), dtype=torch.uint8)
    free = torch.ones(n, dtype=torch.bool)

    def take(value: torch.Tensor, frac: float, cid: int, highest: bool) -> None:
        k = min(round(frac * n), int(free.sum()))
        if k <= 0:
            return
        v = torch.where(free, value if highest else -value, torch.tensor(-float("inf"), dtype=torch.float64))
        idx = torch.argsort(v, descending=True, stable=True)[:k]
        cls[idx] = cid
        free[idx] = False

    take(ns + nu, ru, CLASSES.index("ru"), highest=False)
    take(ns - nu, esu, CLASSES.index("esu"), highest=True)
    take(nu - ns, euu, CLASSES.index("euu"), highest=True)
    top = torch.zeros(n, dtype=torch.bool)
    k = min(round(cu_top * n), int(free.sum()))
    if k > 0:
        v = torch.where(free, ns, torch.tensor(-float("inf"), dtype=torch.float64))
        top[torch.argsort(v, descending=True, stable=True)[:k]] = True
    return cls, top


def classify(safety: dict[str, torch.Tensor], utility: dict[str, torch.Tensor], esu: float = 0.013,
             euu: float = 0.133, ru: float = 0.148, cu_top: float = 0.062, normalize: str = "rank",
             scope: str = "layer", attn_granularity: str = "channel", head_dim: dict[str, int] | None = None,
             meta: dict | None = None) -> UnitMap:
    """Classify every block's units; fractions hold per block (scope=layer) or over the whole model (global)."""
    for name, f in (("esu", esu), ("euu", euu), ("ru", ru), ("cu_top", cu_top)):
        if not 0 <= f <= 1:
            raise SafekeelError(f"fraction {name}={f} must be within [0, 1]")
    if esu + euu + ru + cu_top > 1:
        raise SafekeelError("fractions esu + euu + ru + cu_top exceed 1")
    keys = sorted(safety, key=_order)
    group = {}  # key -> channels per classified item (1, or head_dim for heads)
    s_items, u_items = {}, {}
    for k in keys:
        g = (head_dim or {}).get(k, 1) if (attn_granularity == "head" and k.endswith(".attn")) else 1
        group[k] = g
        s_items[k] = safety[k].to(torch.float64).reshape(-1, g).sum(1)
        u_items[k] = utility[k].to(torch.float64).reshape(-1, g).sum(1)
    classes, tops = {}, {}
    if scope == "layer":
        for k in keys:
            classes[k], tops[k] = classify_vector(s_items[k], u_items[k], esu, euu, ru, cu_top, normalize)
    elif scope == "global":
        cls, top = classify_vector(torch.cat([s_items[k] for k in keys]), torch.cat([u_items[k] for k in keys]),
                                   esu, euu, ru, cu_top, normalize)
        start = 0
        for k in keys:
            n = len(s_items[k])
            classes[k], tops[k] = cls[start:start + n], top[start:start + n]
            start += n
    else:
        raise SafekeelError(f"scope must be 'layer' or 'global', got {scope!r}")
    for k in keys:
        classes[k] = classes[k].repeat_interleave(group[k])
        tops[k] = tops[k].repeat_interleave(group[k])
    um = UnitMap(classes, tops, {k: safety[k].float() for k in keys}, {k: utility[k].float() for k in keys})
    um.meta = {**(meta or {}), "fractions": {"esu": esu, "euu": euu, "ru": ru, "cu_top": cu_top},
               "normalize": normalize, "scope": scope, "attn_granularity": attn_granularity,
               "classes": list(CLASSES), "counts": um.counts(), "totals": totals(um)}
    return um


def totals(um: UnitMap) -> dict[str, int]:
    n = sum(c.numel() for c in um.classes.values())
    out = {name: int(sum(int((c == i).sum()) for c in um.classes.values())) for i, name in enumerate(CLASSES)}
    out["cu_top"] = int(sum(int(t.sum()) for t in um.cu_top.values()))
    out["units"] = n
    return out


def save(um: UnitMap, out_dir: str | Path, plot: bool = True) -> Path:
    from safetensors.torch import save

    out = Path(out_dir)
    tensors = {}
    for k in um.keys:
        tensors[f"{k}.class"] = um.classes[k].to(torch.uint8).contiguous()
        tensors[f"{k}.cu_top"] = um.cu_top[k].to(torch.uint8).contiguous()
        tensors[f"{k}.score_safety"] = um.safety[k].float().contiguous()
        tensors[f"{k}.score_utility"] = um.utility[k].float().contiguous()
    write_bytes(out / "unit_map.safetensors", save(tensors, metadata={"safekeel": json.dumps(um.meta)}))
    write_json(out / "unit_map.json", um.meta)
    if plot:
        plot_counts(um, out / "units_per_class.png")
    return out / "unit_map.safetensors"


def load(path: str | Path) -> UnitMap:
    """Read a unit map (its folder or the .safetensors file); unreadable or inconsistent maps raise SafekeelError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_dir():
        p = p / "unit_map.safetensors"
    if not p.exists():
        raise SafekeelError(f"{p}: unit map not found")
    try:
        tensors = load_file(str(p))
        from safetensors import safe_open

        with safe_open(str(p), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("safekeel", "{}"))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise SafekeelError(f"{p}: not a readable unit map ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                            ) from None
    blocks = sorted({k.rsplit(".", 1)[0] for k in tensors}, key=_order)
    um = UnitMap({}, {}, {}, {}, meta)
    for b in blocks:
        try:
            cls, top = tensors[f"{b}.class"], tensors[f"{b}.cu_top"]
            s, u = tensors[f"{b}.score_safety"], tensors[f"{b}.score_utility"]
        except KeyError as e:
            raise SafekeelError(f"{p}: unit map block '{b}' lacks tensor {e}") from None
        if not (cls.ndim == 1 and cls.shape == top.shape == s.shape == u.shape):
            raise SafekeelError(f"{p}: unit map block '{b}' has tensors of different shapes")
        if int(cls.max()) >= len(CLASSES):
            raise SafekeelError(f"{p}: unit map block '{b}' has an unknown class id {int(cls.max())}")
        um.classes[b], um.cu_top[b], um.safety[b], um.utility[b] = cls, top.bool(), s, u
    if not blocks:
        raise SafekeelError(f"{p}: unit map holds no blocks")
    return um


def plot_counts(um: UnitMap, path: str | Path) -> None:
    """Stacked bars: units per class per layer, MLP and attention side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = um.counts()
    colors = {"esu": "#d62728", "euu": "#1f77b4", "ru": "#7f7f7f", "cu": "#bcbd22"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=False)
    for ax, kind in zip(axes, ("mlp", "attn"), strict=True):
        keys = [k for k in sorted(counts, key=_order) if k.endswith("." + kind)]
        layers = [_order(k)[0] for k in keys]
        bottom = [0] * len(keys)
        for name in ("esu", "euu", "ru", "cu"):
            vals = [counts[k][name] for k in keys]
            ax.bar(layers, vals, bottom=bottom, color=colors[name], label=name.upper())
            bottom = [a + b for a, b in zip(bottom, vals, strict=True)]
        ax.set_title(f"{kind} units per class")
        ax.set_xlabel("layer")
        ax.set_ylabel("units")
    axes[0].legend(loc="upper right")
    fig.suptitle(f"{um.meta.get('model', '')} {um.meta.get('method', '')}".strip())
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    import io as _io

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes(path, buf.getvalue())
