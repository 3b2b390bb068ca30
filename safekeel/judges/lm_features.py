"""Hidden-state features of a causal LM for the learned judge: what the model "thinks" of an answer in context.

The request is rendered with the model's chat template as the user turn and the answer follows as the assistant
turn; the feature is the mean hidden state over the answer's tokens at one middle layer. Only the layers up to that
one run (no LM head), and rows are batched by length, which is what makes a 135M model usable as a judge on a CPU.
Long requests keep their head and tail (a jailbreak template often states the task at its end); long answers keep
their beginning, where a "harm first, apology later" answer has its harm.
"""

from __future__ import annotations

import numpy as np

from .. import device as devices


class LMFeatures:
    def __init__(self, model: str = "smollm2-135m", layer: int | tuple[int, ...] = 16, max_request: int = 96,
                 max_response: int = 160, batch_size: int = 8, loaded=None, device: str = "auto"):
        import torch

        from ..models import load_model

        # fp32 on every device: the classifier on top was fitted on fp32 features, bf16 would shift them
        self.model, self.tok = loaded or load_model(model, dtype="float32", device=device)
        layers = (layer,) if isinstance(layer, int) else tuple(layer)
        self.id = f"{model}-L{'+'.join(map(str, layers))}-q{max_request}-r{max_response}"
        base = self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.model
        if not all(0 < n <= base.config.num_hidden_layers for n in layers):
            raise ValueError(f"layers {layers} outside 1..{base.config.num_hidden_layers}")
        self.base, self.layers = base, layers
        self.max_request, self.max_response, self.batch_size = max_request, max_response, batch_size
        self._captured: dict[int, object] = {}
        for n in layers:  # several layers only to compare them (benchmarks); the judge reads one
            base.layers[n - 1].register_forward_hook(
                lambda _m, _i, out, n=n: self._captured.__setitem__(n, out[0] if isinstance(out, tuple) else out))
        self.torch = torch

    def _ids(self, request: str, response: str) -> tuple[list[int], int]:
        """(input ids, index where the answer starts)."""
        req = self.tok(request, add_special_tokens=False)["input_ids"]
        if len(req) > self.max_request:
            half = self.max_request // 2
            req = req[:half] + req[-half:]
        msgs = [{"role": "user", "content": self.tok.decode(req)}]
        prompt = self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        if isinstance(prompt, dict) or hasattr(prompt, "input_ids"):
            prompt = prompt["input_ids"]
        resp = self.tok(response if response.strip() else "(empty)", add_special_tokens=False)["input_ids"]
        return list(prompt) + resp[:self.max_response], len(prompt)

    def __call__(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        torch = self.torch
        encoded = [self._ids(q, r) for q, r in pairs]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        out = np.zeros((len(pairs), self.base.config.hidden_size * len(self.layers)), dtype=np.float32)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        saved = self.base.config.num_hidden_layers
        self.base.config.num_hidden_layers = max(self.layers)  # the decoder loop stops at the last layer read
        try:
            with torch.no_grad():
                for s in range(0, len(order), self.batch_size):
                    idx = order[s:s + self.batch_size]
                    width = max(len(encoded[i][0]) for i in idx)
                    ids = torch.full((len(idx), width), pad, dtype=torch.long)
                    att = torch.zeros((len(idx), width), dtype=torch.long)
                    span = torch.zeros((len(idx), width, 1))
                    for row, i in enumerate(idx):
                        seq, start = encoded[i]
                        ids[row, :len(seq)] = torch.tensor(seq)
                        att[row, :len(seq)] = 1
                        span[row, start:len(seq)] = 1
                    dev = devices.input_device(self.base)
                    self.base(input_ids=ids.to(dev), attention_mask=att.to(dev), use_cache=False)
                    span = span.to(dev)
                    pooled = [(self._captured[n].float() * span).sum(1) / span.sum(1).clamp(min=1)
                              for n in self.layers]
                    out[idx] = torch.cat(pooled, dim=1).cpu().numpy()
        finally:
            self.base.config.num_hidden_layers = saved
        return out
