"""PyTorch in bf16 on DiT-shaped work: the PyTorch bf16 column of bench_dit.py.

tests/reference/dit_ref.py computes in f32 (its bf16 mode rounds f32 tensors, exact but not
what a user's bf16 run costs), so the bf16 timing runs this plain torch.bfloat16 model with
the DiT's shapes and op sequence per block (MODEL-SPEC §4): modulated LayerNorm, q/k/v/o
1536x1536 linears with RMSNorm on q and k, self-attention over the chunk plus the cached
tokens, cross-attention over the 145 context tokens (k/v projected once per scene, as the
engine does), a 1536->8960->1536 GELU(tanh) FFN, gated residuals. Random weights: only the
time is used (the numbers are checked by the parity tests). Attention is matmul + softmax
(PyTorch 1.13 has no scaled_dot_product_attention); bf16 matmuls run on oneDNN
(ONEDNN_VERBOSE=1 shows brg:avx512_core_bf16 / avx512_core_amx_bf16)."""
import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, dim, ffn, heads):
        super().__init__()
        lin = lambda i, o: torch.nn.Linear(i, o)  # noqa: E731
        self.heads = heads
        self.q, self.k, self.v, self.o = lin(dim, dim), lin(dim, dim), lin(dim, dim), lin(dim, dim)
        self.cq, self.ck, self.cv, self.co = lin(dim, dim), lin(dim, dim), lin(dim, dim), lin(dim, dim)
        self.f1, self.f2 = lin(dim, ffn), lin(ffn, dim)
        self.gq, self.gk = torch.nn.Parameter(torch.ones(dim)), torch.nn.Parameter(torch.ones(dim))
        self.mod = torch.nn.Parameter(torch.randn(6, dim) * 0.02)

    def attn(self, q, k, v):
        n, d = q.shape
        h = self.heads
        q, k, v = (t.view(t.shape[0], h, d // h).transpose(0, 1) for t in (q, k, v))
        p = torch.softmax((q @ k.transpose(1, 2)) * (d // h) ** -0.5, dim=-1)
        return (p @ v).transpose(0, 1).reshape(n, d)

    def rms(self, x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * g

    def forward(self, x, cache, ckv):
        sh, sc, g1, sh2, sc2, g2 = self.mod
        h = F.layer_norm(x, x.shape[-1:]) * (1 + sc) + sh
        q, k, v = self.rms(self.q(h), self.gq), self.rms(self.k(h), self.gk), self.v(h)
        kk, vv = (k, v) if cache is None else (torch.cat([cache[0], k]), torch.cat([cache[1], v]))
        x = x + self.o(self.attn(q, kk, vv)) * g1
        x = x + self.co(self.attn(self.cq(F.layer_norm(x, x.shape[-1:])), *ckv))
        h = F.layer_norm(x, x.shape[-1:]) * (1 + sc2) + sh2
        x = x + self.f2(F.gelu(self.f1(h), approximate="tanh")) * g2
        return x, (k, v)


class Model(torch.nn.Module):
    def __init__(self, cfg, dtype):
        super().__init__()
        dim, ffn, heads = cfg["dim"], cfg["ffn_dim"], cfg["num_heads"]
        self.blocks = torch.nn.ModuleList(Block(dim, ffn, heads) for _ in range(cfg["num_layers"]))
        self.to(dtype)
        self.dtype = dtype

    @torch.no_grad()
    def context(self, ctx):
        return [(b.ck(ctx), b.cv(ctx)) for b in self.blocks]

    @torch.no_grad()
    def forward(self, x, caches, ckv):
        new = []
        for i, b in enumerate(self.blocks):
            x, kv = b(x, caches[i] if caches else None, ckv[i])
            new.append(kv)
        return x, new


def make(cfg, dtype, n, n_ctx=145, seed=3):
    """A model and its inputs: n tokens per chunk, n_ctx context tokens."""
    torch.manual_seed(seed)
    m = Model(cfg, dtype)
    ckv = m.context(torch.randn(n_ctx, cfg["dim"], dtype=dtype))
    xs = [torch.randn(n, cfg["dim"], dtype=dtype) for _ in range(2)]
    return m, ckv, xs


def chunk_ms(m, ckv, xs):
    """ms of chunk 0 (no cache) and chunk 1 (chunk 0 cached)."""
    import time
    out = []
    caches = None
    for i in range(2):
        t0 = time.perf_counter()
        _, caches = m(xs[i], caches, ckv)
        out.append((time.perf_counter() - t0) * 1e3)
    return out
