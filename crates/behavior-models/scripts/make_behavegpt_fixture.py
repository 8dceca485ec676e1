"""Golden fixture for `crates/behavior-models/tests/behavegpt_golden.rs`: a tiny BehaveGPT in PyTorch
eager, in both combine modes, with seeded weights under the exact Rust parameter names, a fixed
left-padded input batch with mixed padding (rows with 0, 3, 6 and 8 of 8 positions PAD) and the
expected logits at every position.

Rerun (from the workspace root; needs torch 2.11 and the `safetensors` + `numpy` Python packages):

    pip install --target /work/pyenv/golden safetensors numpy
    PYTHONPATH=/root/.cache/behavior-lab/torch-2.11.0:/work/pyenv/golden:benches \
        python3 crates/behavior-models/scripts/make_behavegpt_fixture.py

Writes into `crates/behavior-models/tests/fixtures/behavegpt/`:
  `{sum,concat}.json`              BehaveGptConfig (serde field names, deny_unknown_fields)
  `{sum,concat}.safetensors`       weights, f32, names as in `BehaveGpt::new` (`emb.*`, `blocks.{i}.*`, `head.*`)
  `{sum,concat}_io.safetensors`    inputs `weekday, slot, loc, behaviour` (i64 [B, L]) and `logits` (f32 [B, L, K])

The decoder block (`Attention`, `Block`) is imported from `benches/behavegpt_torch_ref.py`; only its
parameter names differ from Rust (`fc`/`out` vs `mlp.fc`/`mlp.proj`), which `rust_names` maps. The
top level is written here because the bench's `BehaveGPT` differs from the Rust model: it has no
sum mode, no √d scaling of the event embedding, no `input_offset` rows, no padding mask, a fixed
head width and module-level K/L. This file follows `src/behavegpt.rs`:
  x = combine(E_w, E_t, E_l, E_b) * sqrt(d) + pos[max_len-L:]   (combine: sum, or Linear(4d→d) of the concat
      w‖t‖l‖b; positions right-aligned, so left padding does not shift them; = pos[:L] for L = max_len)
  key_padding_mask = (behaviour == PAD) (token ids: input_offset > 0)
  attn_mask[b, 0, i, j] = (j <= i) and (not key_padding_mask[b, j] or j == i)   (True = attend; the
      diagonal keeps pad query rows non-empty, so no NaN)
  blocks (pre-LN, SDPA with that boolean attn_mask instead of is_causal, exact-erf GELU, LN eps 1e-5);
      the bench `Block`'s forward has no mask argument, so `masked_block` runs its sub-modules
  head: LayerNorm → Linear(d→hh) → GELU → Linear(hh→K)
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "benches"))
from behavegpt_torch_ref import Block  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "behavegpt")

BASE = dict(
    n_behaviours=20,
    input_offset=3,  # PAD=0, MASK=1, UNK=2 precede the classes in the behaviour table
    n_locations=10,
    n_slots=12,
    n_weekdays=7,
    max_len=8,
    d_model=32,
    n_layers=2,
    n_heads=4,
    ff_mult=4,  # the bench Block hard-codes 4d
    dropout=0.1,  # ignored: the forward runs in eval mode
)


class BehaveGpt(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["d_model"]
        assert c["ff_mult"] == 4
        self.combine = c["combine"]
        self.w = nn.Embedding(c["n_weekdays"], d)
        self.t = nn.Embedding(c["n_slots"], d)
        self.l = nn.Embedding(c["n_locations"], d)
        self.b = nn.Embedding(c["n_behaviours"] + c["input_offset"], d)
        self.proj = nn.Linear(4 * d, d) if self.combine == "concat" else None
        self.pos = nn.Embedding(c["max_len"], d)
        self.blocks = nn.ModuleList([Block(d, c["n_heads"], c["dropout"]) for _ in range(c["n_layers"])])
        hh = c["head_hidden"] or d
        self.ln = nn.LayerNorm(d)
        self.hfc, self.hout = nn.Linear(d, hh), nn.Linear(hh, c["n_behaviours"])
        self.scale = math.sqrt(d)
        self.max_len, self.input_offset = c["max_len"], c["input_offset"]

    def forward(self, w, t, l, b):
        L = w.shape[1]
        e = [self.w(w), self.t(t), self.l(l), self.b(b)]
        x = self.proj(torch.cat(e, -1)) if self.proj is not None else e[0] + e[1] + e[2] + e[3]
        x = x * self.scale + self.pos.weight[self.max_len - L :]
        mask = attn_mask(b == PAD) if self.input_offset > 0 else None
        for blk in self.blocks:
            x = masked_block(blk, x, mask) if mask is not None else blk(x)
        return self.hout(F.gelu(self.hfc(self.ln(x))))


PAD = 0  # behavior-data's vocab::PAD


def attn_mask(key_padding_mask):
    """[B, L] True at PAD → boolean SDPA mask [B, 1, L, L], True = may attend: causal and key not
    padding, plus the diagonal (a pad query attends to itself instead of to nothing)."""
    B, L = key_padding_mask.shape
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    eye = torch.eye(L, dtype=torch.bool)
    return causal & (~key_padding_mask[:, None, None, :] | eye)


def masked_block(blk, x, mask):
    """The bench `Block` (eval mode) with SDPA given `attn_mask=mask` instead of `is_causal=True`."""
    a = blk.attn
    B, L, d = x.shape
    q, k, v = a.qkv(blk.ln1(x)).view(B, L, 3, a.h, d // a.h).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    x = x + a.proj(y.transpose(1, 2).reshape(B, L, d))
    return x + blk.out(F.gelu(blk.fc(blk.ln2(x))))


def rust_names(m):
    """PyTorch state dict → Rust VarStore names."""
    top = {"w": "emb.weekday", "t": "emb.slot", "l": "emb.loc", "b": "emb.behaviour", "proj": "emb.proj",
           "pos": "emb.pos", "ln": "head.ln", "hfc": "head.fc", "hout": "head.out"}
    blk = {"ln1": "ln1", "ln2": "ln2", "attn.qkv": "attn.qkv", "attn.proj": "attn.proj", "fc": "mlp.fc", "out": "mlp.proj"}
    out = {}
    for n, p in m.state_dict().items():
        mod, leaf = n.rsplit(".", 1)
        if mod.startswith("blocks."):
            _, i, rest = mod.split(".", 2)
            name = f"blocks.{i}.{blk[rest]}.{leaf}"
        else:
            name = f"{top[mod]}.{leaf}"
        assert name not in out, name
        out[name] = p.detach().to(torch.float32).contiguous().clone()
    return out


def randomise(m, g):
    """Non-trivial values everywhere (biases and norm gains too, so a missed load shows)."""
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:  # LayerNorm gains
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif n.split(".")[0] in ("w", "t", "l", "b", "pos"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))


def inputs(c, g):
    B, L = 4, c["max_len"]
    o = c["input_offset"]
    w = torch.randint(c["n_weekdays"], (B, L), generator=g)
    t = torch.randint(c["n_slots"], (B, L), generator=g)
    lo = torch.randint(c["n_locations"], (B, L), generator=g)
    b = torch.randint(o, o + c["n_behaviours"], (B, L), generator=g)
    b[1, :3] = 0  # left PAD (token id 0), as behavior-data windows are padded
    b[2, :6] = 0  # mostly PAD
    b[3, :] = 0  # all PAD (a window without history): finite logits, nothing real
    b[0, 4] = 2  # an UNK
    b[2, 7] = 1  # a MASK
    b[0, 7] = o + c["n_behaviours"] - 1  # the last class row
    return dict(weekday=w, slot=t, loc=lo, behaviour=b)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for combine, head_hidden, seed in (("sum", 0, 1), ("concat", 48, 2)):
        c = dict(BASE, combine=combine, head_hidden=head_hidden)
        g = torch.Generator().manual_seed(seed)
        m = BehaveGpt(c).eval()
        randomise(m, g)
        x = inputs(c, g)
        with torch.no_grad():
            y = m(x["weekday"], x["slot"], x["loc"], x["behaviour"]).to(torch.float32).contiguous()
        assert torch.isfinite(y).all(), "non-finite logits"
        # The twin's own padding check: each padded row's real positions match the row unpadded.
        with torch.no_grad():
            for r, n_pad in ((1, 3), (2, 6)):
                alone = m(*(x[k][r : r + 1, n_pad:] for k in ("weekday", "slot", "loc", "behaviour")))
                d = (alone[0] - y[r, n_pad:]).abs().max().item()
                assert d < 1e-5, f"row {r}: padding changed the real logits by {d}"
        save_file(rust_names(m), os.path.join(OUT, f"{combine}.safetensors"))
        save_file({**{k: v.contiguous() for k, v in x.items()}, "logits": y}, os.path.join(OUT, f"{combine}_io.safetensors"))
        with open(os.path.join(OUT, f"{combine}.json"), "w") as f:
            json.dump(c, f, indent=2)
            f.write("\n")
        print(f"{combine}: logits {tuple(y.shape)} |max| {y.abs().max():.3f} std {y.std():.3f}, "
              f"{sum(p.numel() for p in m.parameters())} params")


if __name__ == "__main__":
    main()
