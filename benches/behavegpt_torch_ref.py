"""PyTorch-eager reference for `benches/train.rs`: the identical BehaveGPT model and training step
(forward, CE at every position, backward, grad-norm clip 1.0, AdamW lr 1e-3 wd 0.01 on matrices
outside embeddings), on the same libtorch (2.11.0) and thread count (2).

The model is `crates/behavior-models/src/behavegpt.rs` in concat mode with the bench's sizes
(`input_offset = 0`, head width d): the four embeddings are concatenated and projected, scaled by
√d, learned positions are added, then pre-LN blocks (causal SDPA, exact GELU) and the MLP head.

Run (from the workspace root):
    PYTHONPATH=~/.cache/behavior-lab/torch-2.11.0 python3 benches/behavegpt_torch_ref.py
        [--malloc-cache] [--device cuda] [--bf16] [--steps N] [--configs a,b]

--malloc-cache  apply the glibc settings of `behavior_models::device::retain_freed_cpu_memory`
                (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1) before anything is allocated,
                for a like-for-like comparison with the bench's `_malloc_cache` rows.
--device cuda   run on CUDA device 0 (the bench's BEHAVIOR_BENCH_DEVICE=cuda rows).
--bf16          torch.autocast(bfloat16) around forward and loss (CUDA only).
Prints sequences/s per config (median of the timed steps after 3 warm-up steps).
"""
import argparse
import ctypes
import math
import time


def retain_freed_memory():
    libc = ctypes.CDLL("libc.so.6")
    ok = libc.mallopt(-4, 0) == 1 and libc.mallopt(-1, 2**31 - 1) == 1  # M_MMAP_MAX, M_TRIM_THRESHOLD
    if not ok:
        raise SystemExit("mallopt failed")


ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--malloc-cache", action="store_true")
ap.add_argument("--device", default="cpu")
ap.add_argument("--bf16", action="store_true")
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--configs", default="sasrec_size_d64_l2,d256_l4,d512_l4",
                help="comma-separated subset of the configs to run")
ARGS = ap.parse_args() if __name__ == "__main__" else ap.parse_args([])
if ARGS.malloc_cache:
    retain_freed_memory()

import torch  # noqa: E402  (after mallopt, so libtorch's first allocations already use it)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

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
        self.p, self.scale = p, math.sqrt(d)

    def forward(self, w, t, l, b):
        x = self.proj(torch.cat([self.w(w), self.t(t), self.l(l), self.b(b)], -1))
        x = x * self.scale + self.pos.weight[: w.shape[1]]
        x = F.dropout(x, self.p, self.training)
        for blk in self.blocks:
            x = blk(x)
        return self.hout(F.gelu(self.hfc(self.ln(x))))


def bench(name, d, layers, heads, dev):
    torch.manual_seed(0)
    m = BehaveGPT(d, layers, heads).to(dev).train()
    decay = [p for n, p in m.named_parameters() if p.dim() >= 2 and not isinstance(dict(m.named_modules()).get(n.rsplit(".", 1)[0]), nn.Embedding)]
    ids = {id(p) for p in decay}
    rest = [p for p in m.parameters() if id(p) not in ids]
    # foreach=False: the single-tensor update, as on CPU by default (and as our AdamW).
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=1e-3, foreach=False)
    o = dict(device=dev)
    w, t = torch.randint(7, (B, L), **o), torch.randint(48, (B, L), **o)
    lo, b, y = torch.randint(500, (B, L), **o), torch.randint(K, (B, L), **o), torch.randint(K, (B, L), **o)
    times = []
    for i in range(3 + ARGS.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=ARGS.bf16):
            loss = F.cross_entropy(m(w, t, lo, b).float().view(-1, K), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0, foreach=False)
        opt.step()
        loss.item()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    tag = f"{dev.type}{'_bf16' if ARGS.bf16 else ''}{'_malloc_cache' if ARGS.malloc_cache else ''}"
    print(f"torch {torch.__version__} {name} [{tag}]: {med * 1e3:.1f} ms/step, {B / med:.0f} sequences/s")


if __name__ == "__main__":
    torch.set_num_threads(2)
    dev = torch.device(ARGS.device)
    want = set(ARGS.configs.split(","))
    for name, d, layers, heads in [("sasrec_size_d64_l2", 64, 2, 2), ("d256_l4", 256, 4, 4), ("d512_l4", 512, 4, 8)]:
        if name in want:
            bench(name, d, layers, heads, dev)
