"""The PyTorch reference of the agent's model, for `make bench`: the same nanoGPT-shaped
decoder (byte vocabulary, pre-norm blocks, exact GELU, tied head, GPT-2 init with the
scaled residual projections), the same AdamW (betas 0.9/0.95, weight decay 0.1 on
matrices, gradient clipping to norm 1.0), trained on windows of the same corpus.
Prints one JSON line: tokens per second, peak resident memory, first and last loss.

Attention uses `F.scaled_dot_product_attention(is_causal=True)`, as nanoGPT does: the
comparison is against what a PyTorch user would run.
"""

import argparse
import gzip
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.attn_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class Gpt(nn.Module):
    def __init__(self, vocab, block, n_layer, n_head, d):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(block, d)
        self.h = nn.ModuleList(Block(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "ln" in name:
                nn.init.ones_(p)
            elif name.endswith("proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))
            else:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def peak_rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--context", type=int, required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--corpus", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    text = torch.frombuffer(bytearray(gzip.open(a.corpus).read()), dtype=torch.uint8).long()
    model = Gpt(256, a.context, a.layers, a.heads, a.width)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-3,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    gen = torch.Generator().manual_seed(7)

    def batch():
        starts = torch.randint(0, len(text) - a.context - 1, (a.batch,), generator=gen)
        x = torch.stack([text[s : s + a.context] for s in starts])
        y = torch.stack([text[s + 1 : s + a.context + 1] for s in starts])
        return x, y

    def step():
        x, y = batch()
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    first = step()  # warm-up, as the candle side
    t0 = time.perf_counter()
    for _ in range(a.steps):
        last = step()
    secs = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "tokens_per_s": a.steps * a.batch * a.context / secs,
                "peak_rss_kib": peak_rss_kib(),
                "first_loss": first,
                "last_loss": last,
                "threads": torch.get_num_threads(),
                "pid": os.getpid(),
            }
        )
    )


if __name__ == "__main__":
    main()
