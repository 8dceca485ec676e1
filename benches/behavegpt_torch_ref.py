"""PyTorch-eager reference for `benches/train.rs`: the identical BehaveGPT model and training step
(forward, CE at every position, backward, grad-norm clip 1.0, AdamW lr 1e-3 wd 0.01 on matrices
outside embeddings), on CPU with 2 threads, on the same libtorch (2.11.0).

Run:  PYTHONPATH=/root/.cache/behavior-lab/torch-2.11.0 python3 benches/behavegpt_torch_ref.py
Prints sequences/s per config (median of 10 timed steps after 3 warm-up steps).
"""
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

K, L, B = 3700, 50, 256


class Attention(nn.Module):
    def __init__(self, d, h, p):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.h, self.p = h, p

    def forward(self, x):
        b, l, d = x.shape
        q, k, v = self.qkv(x).view(b, l, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).reshape(b, l, d)
        return F.dropout(self.proj(y), self.p, self.training)


class Block(nn.Module):
    def __init__(self, d, h, p):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, h, p)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.p = p

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + F.dropout(self.out(F.gelu(self.fc(self.ln2(x)))), self.p, self.training)


class BehaveGPT(nn.Module):
    def __init__(self, d, layers, heads, p=0.1, locs=500, slots=48):
        super().__init__()
        self.w, self.t = nn.Embedding(7, d), nn.Embedding(slots, d)
        self.l, self.b = nn.Embedding(locs, d), nn.Embedding(K, d)
        self.proj = nn.Linear(4 * d, d)
        self.pos = nn.Embedding(L, d)
        self.blocks = nn.ModuleList([Block(d, heads, p) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.hfc, self.hout = nn.Linear(d, d), nn.Linear(d, K)
        self.p = p

    def forward(self, w, t, l, b):
        x = self.proj(torch.cat([self.w(w), self.t(t), self.l(l), self.b(b)], -1)) + self.pos.weight[: w.shape[1]]
        x = F.dropout(x, self.p, self.training)
        for blk in self.blocks:
            x = blk(x)
        return self.hout(F.gelu(self.hfc(self.ln(x))))


def bench(name, d, layers, heads):
    torch.manual_seed(0)
    m = BehaveGPT(d, layers, heads).train()
    decay = [p for n, p in m.named_parameters() if p.dim() >= 2 and not isinstance(dict(m.named_modules()).get(n.rsplit(".", 1)[0]), nn.Embedding)]
    ids = {id(p) for p in decay}
    rest = [p for p in m.parameters() if id(p) not in ids]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=1e-3)
    w, t = torch.randint(7, (B, L)), torch.randint(48, (B, L))
    lo, b, y = torch.randint(500, (B, L)), torch.randint(K, (B, L)), torch.randint(K, (B, L))
    times = []
    for i in range(13):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(m(w, t, lo, b).view(-1, K), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        loss.item()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(f"torch {torch.__version__} {name}: {med * 1e3:.1f} ms/step, {B / med:.0f} sequences/s")


if __name__ == "__main__":
    torch.set_num_threads(2)
    bench("sasrec_size_d64_l2", 64, 2, 2)
    bench("d256_l4", 256, 4, 4)
