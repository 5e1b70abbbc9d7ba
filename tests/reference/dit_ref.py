"""PyTorch reference of the InfVSR causal Wan2.1 DiT (MODEL-SPEC.md §4, §2.5), written here
from the spec (not copied from any repository).

Parameters are held in bf16 (as InfVSR.ckpt stores them) with the exact state-dict key names
of MODEL-SPEC §4.9. Two precisions:
  f32  (default) every op computes in float32 with the weights upcast: the CPU backend's
       contract (the engine's f32 activation dtype).
  bf16 (bf16=True) the official pipeline's: the whole model runs in torch.bfloat16 on the GPU,
       so every op's output is rounded to bf16 (MODEL-SPEC §4.3, §4.8): Linear with f32
       accumulation and bias then one rounding, LayerNorm/RMSNorm statistics in f32 (RMSNorm
       rounded before and after the weight), RoPE and the sinusoid in float64 then rounded,
       attention with f32 softmax/accumulation and a bf16 output, and each elementwise torch
       op (1 + e, the product, the sum, GELU, SiLU) rounded on its own. Emulated here on f32
       tensors holding bf16 values (r() after each op), which is exact for those rules and
       does not depend on the CPU's bf16 kernels.

    model = WanDiT(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)
    pred, cache = model(latents[16,T,h,w] f32, start_frame, cache_or_None, ctx[Nctx,text_dim])
    restored = restore(latents, pred)
    # the official bf16 numerics:
    pred, cache = model(latents, start_frame, cache, ckv=model.context(ctx, bf16=True), bf16=True)
    restored = restore(latents, pred, bf16=True)
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# bf16(399) as the pipeline builds the timestep tensor (MODEL-SPEC §2.5).
TIMESTEP = 400.0
# Effective multiplier of the official GPU pipeline: bf16(0.4008152485) (MODEL-SPEC §2.5).
SIGMA_EFF = 0.400390625


def rounder(bf16):
    """The rounding applied after every op: to bf16 (values kept in f32 tensors) or none."""
    if bf16:
        return lambda t: t.to(torch.bfloat16).to(torch.float32)
    return lambda t: t


class Lin(nn.Module):
    """Linear layer with bf16 storage, f32 compute (keys: weight, bias)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=torch.bfloat16), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(n_out, dtype=torch.bfloat16), requires_grad=False)
        self.f32 = None  # optional pre-upcast copy (benchmarks), not part of the state dict

    def forward(self, x, r=rounder(False)):
        if self.f32 is not None:
            return r(F.linear(x, self.f32[0], self.f32[1]))
        return r(F.linear(x, self.weight.float(), self.bias.float()))


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim, dtype=torch.bfloat16), requires_grad=False)

    def forward(self, x, r=rounder(False)):
        return r(r(x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)) * self.weight.float())


class Attn(nn.Module):
    """q/k/v/o projections with RMSNorm over all channels of q and k (self_attn, cross_attn)."""

    def __init__(self, dim, eps):
        super().__init__()
        self.q, self.k, self.v, self.o = Lin(dim, dim), Lin(dim, dim), Lin(dim, dim), Lin(dim, dim)
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)


def sdpa(q, k, v, n_heads):
    """Softmax attention, no mask: q [Nq, H*D], k/v [Nk, H*D] -> [Nq, H*D]."""
    nq, c = q.shape
    d = c // n_heads
    qh = q.view(nq, n_heads, d).transpose(0, 1)
    kh = k.view(-1, n_heads, d).transpose(0, 1)
    vh = v.view(-1, n_heads, d).transpose(0, 1)
    s = torch.matmul(qh, kh.transpose(1, 2)) * (1.0 / math.sqrt(d))
    o = torch.matmul(torch.softmax(s, dim=-1), vh)
    return o.transpose(0, 1).reshape(nq, c)


def rope_split(head_dim):
    """(time, height, width) dims of the 3-D RoPE for one head, as Wan's rope_params split:
    d - 4*(d//6) for time, 2*(d//6) each for height and width (128 -> 44, 42, 42)."""
    s = 2 * (head_dim // 6)
    return head_dim - 2 * s, s, s


def rope_freqs(head_dim, start_frame, n_frames, gh, gw):
    """Per-token (cos, sin) [N, head_dim/2, 2] float64, tokens frame-major then row, column."""
    dt, dh, dw = rope_split(head_dim)

    def omega(d):
        return 1.0 / torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                               torch.arange(0, d, 2, dtype=torch.float64) / d)

    f = torch.arange(start_frame, start_frame + n_frames, dtype=torch.float64)
    y = torch.arange(gh, dtype=torch.float64)
    x = torch.arange(gw, dtype=torch.float64)
    at = torch.outer(f, omega(dt))  # [F, dt/2]
    ah = torch.outer(y, omega(dh))
    aw = torch.outer(x, omega(dw))
    ang = torch.cat([
        at[:, None, None, :].expand(n_frames, gh, gw, -1),
        ah[None, :, None, :].expand(n_frames, gh, gw, -1),
        aw[None, None, :, :].expand(n_frames, gh, gw, -1),
    ], dim=-1).reshape(n_frames * gh * gw, head_dim // 2)
    return torch.stack([torch.cos(ang), torch.sin(ang)], dim=-1)


def rope_apply(x, freqs, n_heads):
    """x [N, H*D] f32; rotation in float64, result f32."""
    n, c = x.shape
    d = c // n_heads
    xp = x.double().view(n, n_heads, d // 2, 2)
    cos = freqs[:, None, :, 0]
    sin = freqs[:, None, :, 1]
    a, b = xp[..., 0], xp[..., 1]
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return out.reshape(n, c).float()


class Block(nn.Module):
    def __init__(self, dim, ffn_dim, num_heads, eps):
        super().__init__()
        self.num_heads, self.eps = num_heads, eps
        self.modulation = nn.Parameter(torch.empty(1, 6, dim, dtype=torch.bfloat16), requires_grad=False)
        self.self_attn = Attn(dim, eps)
        self.cross_attn = Attn(dim, eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=True, dtype=torch.bfloat16)
        self.norm3.weight.requires_grad_(False)
        self.norm3.bias.requires_grad_(False)
        self.ffn = nn.Sequential(Lin(dim, ffn_dim), nn.GELU(approximate="tanh"), Lin(ffn_dim, dim))

    def cross_kv(self, c, r=rounder(False)):
        """Per-reference cross-attention keys and values of the embedded context c."""
        return self.cross_attn.norm_k(self.cross_attn.k(c, r), r), self.cross_attn.v(c, r)

    def forward(self, x, t_mod, freqs, cache, ckv, r=rounder(False)):
        dim = x.shape[1]
        mod = r(self.modulation.float()[0] + t_mod)  # [6, dim]
        e0, e1, e2, e3, e4, e5 = mod.unbind(0)
        sa = self.self_attn
        a = r(r(r(F.layer_norm(x, (dim,), eps=self.eps)) * r(1 + e1)) + e0)
        q = r(rope_apply(sa.norm_q(sa.q(a, r), r), freqs, self.num_heads))
        k = r(rope_apply(sa.norm_k(sa.k(a, r), r), freqs, self.num_heads))
        v = sa.v(a, r)
        kk = k if cache is None else torch.cat([cache[0], k], 0)
        vv = v if cache is None else torch.cat([cache[1], v], 0)
        x = r(x + r(e2 * sa.o(r(sdpa(q, kk, vv, self.num_heads)), r)))
        ca = self.cross_attn
        z = r(F.layer_norm(x, (dim,), self.norm3.weight.float(), self.norm3.bias.float(), self.eps))
        x = r(x + ca.o(r(sdpa(ca.norm_q(ca.q(z, r), r), ckv[0], ckv[1], self.num_heads)), r))
        f = r(r(r(F.layer_norm(x, (dim,), eps=self.eps)) * r(1 + e4)) + e3)
        h = r(self.ffn[1](self.ffn[0](f, r)))
        x = r(x + r(e5 * self.ffn[2](h, r)))
        return x, (k, v)


class Head(nn.Module):
    def __init__(self, dim, out_dim):
        super().__init__()
        self.modulation = nn.Parameter(torch.empty(1, 2, dim, dtype=torch.bfloat16), requires_grad=False)
        self.head = Lin(dim, out_dim * 4)


class PatchEmbed(nn.Module):
    """Conv3d(in_dim -> dim, kernel = stride = (1,2,2)) stored as the official 5-D weight."""

    def __init__(self, in_dim, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, in_dim, 1, 2, 2, dtype=torch.bfloat16), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(dim, dtype=torch.bfloat16), requires_grad=False)


def sinusoid(freq_dim, t, r=rounder(False)):
    """[cos(t w_k)] ++ [sin(t w_k)], w_k = 10000^(-k/half), float64 then f32 (then r)."""
    half = freq_dim // 2
    w = torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                  -torch.arange(half, dtype=torch.float64) / half)
    a = t * w
    return r(torch.cat([torch.cos(a), torch.sin(a)]).float()[None])


class WanDiT(nn.Module):
    def __init__(self, dim=1536, ffn_dim=8960, num_heads=12, num_layers=30, in_dim=16, out_dim=16,
                 freq_dim=256, text_dim=512, eps=1e-6):
        super().__init__()
        self.dim, self.num_heads, self.freq_dim, self.eps = dim, num_heads, freq_dim, eps
        self.in_dim, self.out_dim = in_dim, out_dim
        self.patch_embedding = PatchEmbed(in_dim, dim)
        self.text_embedding = nn.Sequential(Lin(text_dim, dim), nn.GELU(approximate="tanh"), Lin(dim, dim))
        self.time_embedding = nn.Sequential(Lin(freq_dim, dim), nn.SiLU(), Lin(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), Lin(dim, dim * 6))
        self.blocks = nn.ModuleList([Block(dim, ffn_dim, num_heads, eps) for _ in range(num_layers)])
        self.head = Head(dim, out_dim)

    def upcast_weights(self):
        """Keeps an f32 copy of every Linear (benchmarks: measure GEMMs, not casts)."""
        for m in self.modules():
            if isinstance(m, Lin):
                m.f32 = (m.weight.float(), m.bias.float())

    def time_constants(self, r=rounder(False)):
        te, tp = self.time_embedding, self.time_projection
        e = te[2](r(te[1](te[0](sinusoid(self.freq_dim, TIMESTEP, r), r))), r)  # [1, dim]
        t_mod = tp[1](r(tp[0](e)), r).view(6, self.dim)
        return e, t_mod

    def context(self, ctx, bf16=False):
        """Embedded context c and per-block cross K/V (recomputed when the reference changes)."""
        r = rounder(bf16)
        tx = self.text_embedding
        c = tx[2](r(tx[1](tx[0](r(ctx.float()), r))), r)
        return [b.cross_kv(c, r) for b in self.blocks]

    @torch.no_grad()
    def forward(self, latents, start_frame, cache, ctx=None, ckv=None, bf16=False):
        """latents [in_dim, T, h, w] f32 -> (pred [out_dim, T, h, w] f32, new cache: per block
        (k post-RoPE, v) of this chunk only). bf16: the official rounding (module docstring)."""
        r = rounder(bf16)
        if ckv is None:
            ckv = self.context(ctx, bf16)
        cin, nf, h, w = latents.shape
        gh, gw = h // 2, w // 2
        # patchify: token (f, y, x) frame-major; input vector index c*4 + dy*2 + dx
        p = r(latents.float()).view(cin, nf, gh, 2, gw, 2).permute(1, 2, 4, 0, 3, 5).reshape(-1, cin * 4)
        pe = self.patch_embedding
        x = r(F.linear(p, pe.weight.float().reshape(self.dim, -1), pe.bias.float()))
        e, t_mod = self.time_constants(r)
        freqs = rope_freqs(self.dim // self.num_heads, start_frame, nf, gh, gw)
        new_cache = []
        for i, blk in enumerate(self.blocks):
            x, kv = blk(x, t_mod, freqs, None if cache is None else cache[i], ckv[i], r)
            new_cache.append(kv)
        hm = r(self.head.modulation.float()[0] + e)  # rows: shift, scale
        out = self.head.head(r(r(r(F.layer_norm(x, (self.dim,), eps=self.eps)) * r(1 + hm[1])) + hm[0]), r)
        # unpatchify: channel j = (dy*2 + dx)*out_dim + c -> pred[c, f, 2y+dy, 2x+dx]
        pred = out.view(nf, gh, gw, 2, 2, self.out_dim).permute(5, 0, 1, 3, 2, 4).reshape(self.out_dim, nf, h, w)
        return pred.contiguous(), new_cache


def restore(latents, pred, bf16=False):
    """One-step flow-matching x0 estimate: latents - sigma * pred in f32; in bf16 the product
    rounded to bf16, then the sum (MODEL-SPEC §2.4 step 7)."""
    if bf16:
        r = rounder(True)
        return r(r(latents.float()) + r(pred * -SIGMA_EFF))
    return latents.float() - SIGMA_EFF * pred


def from_config(cfg):
    """WanDiT from the "dit" object of config/models/*.json."""
    return WanDiT(dim=cfg["dim"], ffn_dim=cfg["ffn_dim"], num_heads=cfg["num_heads"],
                  num_layers=cfg["num_layers"], in_dim=cfg["in_dim"], out_dim=cfg["out_dim"],
                  freq_dim=cfg["freq_dim"], text_dim=cfg["text_dim"], eps=cfg["eps"])
