"""PyTorch reference of the Wan 2.1 causal video VAE, written from MODEL-SPEC.md section 5.

Parameter names follow Appendix A exactly (encoder.downsamples.3.residual.2.weight, ...), so
`model.state_dict()` is a valid Wan2.1_VAE.pth state dict. The base width is configurable
(96 for the real model, 8 for the tiny test model of config/models/infvsr-tiny.json).

Streaming (sections 5.2, 5.6, 5.7) keeps one cache per cached convolution, keyed by a slot NAME
("enc.downsamples.3.residual.2"), not by call order, and runs in the model's dtype: float32,
or bfloat16 after `model.to(torch.bfloat16)` the way the official pipeline runs it (section
5.10): latent constants cast to bf16 at use, bf16 blend masks, and the tiled blend
accumulated in bf16 (section 5.8).
Tiling (section 5.8) is `StreamingVAE(..., tile_threshold=..., tile=..., stride=...)`.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

CACHE_T = 2
Z_DIM = 16

LATENT_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
LATENT_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916]


def latent_constants():
    """offset = bf16(mean), inv_std = bf16(fp32(1/std)) (section 5.5), returned as f32 values."""
    mean = torch.tensor(LATENT_MEAN, dtype=torch.float32)
    inv = 1.0 / torch.tensor(LATENT_STD, dtype=torch.float32)
    return (mean.to(torch.bfloat16).float().view(Z_DIM, 1, 1, 1),
            inv.to(torch.bfloat16).float().view(Z_DIM, 1, 1, 1))


class CausalConv3d(nn.Conv3d):
    """Conv3d with explicit causal padding: 2*pt zero frames in front, none after."""

    def __init__(self, cin, cout, k, stride=1, padding=0):
        k = (k, k, k) if isinstance(k, int) else k
        p = (padding, padding, padding) if isinstance(padding, int) else padding
        super().__init__(cin, cout, k, stride=stride, padding=0)
        self.pad = (p[2], p[2], p[1], p[1], 2 * p[0], 0)

    def forward(self, x, cache=None):
        pad = list(self.pad)
        if cache is not None and self.pad[4] > 0:
            x = torch.cat([cache, x], dim=1)
            pad[4] -= cache.shape[1]
        # x is [C, T, H, W]: F.pad / conv3d want a batch axis.
        return super().forward(F.pad(x.unsqueeze(0), pad)).squeeze(0)


class RMSNorm(nn.Module):
    def __init__(self, dim, images=False):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones((dim, 1, 1) if images else (dim, 1, 1, 1)))

    def forward(self, x):  # channel axis 0
        g = self.gamma.view(-1, *([1] * (x.dim() - 1)))
        return F.normalize(x, dim=0, eps=1e-12) * self.scale * g


def cached_conv(conv, x, caches, slot):
    """Stream view of a 3x3x3 causal conv: the cache holds the last 2 frames of the input
    stream (1 frame after a 1-frame first call, absent before the first call)."""
    old = caches.get(slot)
    new = x[:, -CACHE_T:].clone()
    if new.shape[1] < 2 and old is not None:
        new = torch.cat([old[:, -1:], new], dim=1)
    y = conv(x, old)
    caches[slot] = new
    return y


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(cin), nn.SiLU(), CausalConv3d(cin, cout, 3, padding=1),
            RMSNorm(cout), nn.SiLU(), nn.Dropout(0.0), CausalConv3d(cout, cout, 3, padding=1))
        self.shortcut = CausalConv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, caches, name):
        h = self.shortcut(x)
        for i, layer in enumerate(self.residual):
            if isinstance(layer, CausalConv3d):
                x = cached_conv(layer, x, caches, f"{name}.residual.{i}")
            else:
                x = layer(x)
        return x + h


class AttentionBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x, caches, name):
        c, t, h, w = x.shape
        frames = x.permute(1, 0, 2, 3)                      # [T, C, H, W]
        n = self.norm(frames.transpose(0, 1)).transpose(0, 1)
        qkv = self.to_qkv(n).reshape(t, 3 * c, h * w).permute(0, 2, 1)  # [T, HW, 3C]
        q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1) @ v  # single head
        a = a.permute(0, 2, 1).reshape(t, c, h, w)
        return x + self.proj(a).permute(1, 0, 2, 3)


class Resample(nn.Module):
    def __init__(self, dim, mode):
        super().__init__()
        self.mode = mode
        if mode in ("upsample2d", "upsample3d"):
            self.resample = nn.Sequential(nn.Identity(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))

    def spatial(self, x):
        f = x.permute(1, 0, 2, 3)                           # frames as a batch
        if self.mode.startswith("up"):
            f = f.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest x2, exact
        f = self.resample(f)
        return f.permute(1, 0, 2, 3).contiguous()

    def forward(self, x, caches, name):
        slot = f"{name}.time_conv"
        if self.mode == "upsample3d":
            old = caches.get(slot)
            if old is None:
                caches[slot] = "Rep"        # first call of the stream: pass-through
            else:
                new = x[:, -CACHE_T:].clone()
                if new.shape[1] < 2:
                    prev = torch.zeros_like(new) if isinstance(old, str) else old[:, -1:]
                    new = torch.cat([prev, new], dim=1)
                y = self.time_conv(x) if isinstance(old, str) else self.time_conv(x, old)
                caches[slot] = new
                c = x.shape[0]
                t = y.shape[1]
                x = torch.stack([y[:c], y[c:]], dim=2).reshape(c, 2 * t, *y.shape[2:])
            return self.spatial(x)
        x = self.spatial(x)
        if self.mode == "downsample3d":
            old = caches.get(slot)
            if old is None:
                caches[slot] = x.clone()     # first call: store, skip the time conv
            else:
                new = x[:, -1:].clone()
                x = self.time_conv(torch.cat([old[:, -1:], x], dim=1))
                caches[slot] = new
        return x


def _run_layers(layers, x, caches, name):
    for i, layer in enumerate(layers):
        x = layer(x, caches, f"{name}.{i}")
    return x


def _run_head(head, x, caches, name):
    x = head[1](head[0](x))
    return cached_conv(head[2], x, caches, f"{name}.2")


class Encoder3d(nn.Module):
    def __init__(self, dim, z_dim=Z_DIM, dim_mult=(1, 2, 4, 4), num_res_blocks=2,
                 temporal_downsample=(False, True, True)):
        super().__init__()
        dims = [dim * u for u in [1] + list(dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        down = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(num_res_blocks):
                down.append(ResidualBlock(cin, cout))
                cin = cout
            if i != len(dim_mult) - 1:
                down.append(Resample(cout, "downsample3d" if temporal_downsample[i] else "downsample2d"))
        self.downsamples = nn.Sequential(*down)
        self.middle = nn.Sequential(ResidualBlock(cout, cout), AttentionBlock(cout), ResidualBlock(cout, cout))
        self.head = nn.Sequential(RMSNorm(cout), nn.SiLU(), CausalConv3d(cout, 2 * z_dim, 3, padding=1))

    def forward(self, x, caches):
        x = cached_conv(self.conv1, x, caches, "enc.conv1")
        x = _run_layers(self.downsamples, x, caches, "enc.downsamples")
        x = _run_layers(self.middle, x, caches, "enc.middle")
        return _run_head(self.head, x, caches, "enc.head")


class Decoder3d(nn.Module):
    def __init__(self, dim, z_dim=Z_DIM, dim_mult=(1, 2, 4, 4), num_res_blocks=2,
                 temporal_upsample=(True, True, False)):
        super().__init__()
        dims = [dim * u for u in [dim_mult[-1]] + list(dim_mult)[::-1]]
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]),
                                    ResidualBlock(dims[0], dims[0]))
        up = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            if i in (1, 2, 3):
                cin = cin // 2
            for _ in range(num_res_blocks + 1):
                up.append(ResidualBlock(cin, cout))
                cin = cout
            if i != len(dim_mult) - 1:
                up.append(Resample(cout, "upsample3d" if temporal_upsample[i] else "upsample2d"))
        self.upsamples = nn.Sequential(*up)
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], 3, 3, padding=1))

    def forward(self, x, caches):
        x = cached_conv(self.conv1, x, caches, "dec.conv1")
        x = _run_layers(self.middle, x, caches, "dec.middle")
        x = _run_layers(self.upsamples, x, caches, "dec.upsamples")
        return _run_head(self.head, x, caches, "dec.head")


class VideoVAE(nn.Module):
    def __init__(self, dim=96, dim_mult=(1, 2, 4, 4), num_res_blocks=2):
        super().__init__()
        self.encoder = Encoder3d(dim, Z_DIM, dim_mult, num_res_blocks)
        self.conv1 = CausalConv3d(2 * Z_DIM, 2 * Z_DIM, 1)
        self.conv2 = CausalConv3d(Z_DIM, Z_DIM, 1)
        self.decoder = Decoder3d(dim, Z_DIM, dim_mult, num_res_blocks)


def random_weights_(model, seed):
    """Random weights that keep activations O(1): convs ~ N(0, 1/fan_in), small biases,
    gammas near 1; the decoder head is scaled so decoded frames are mostly inside [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
        model.decoder.head[2].weight.mul_(0.3)


def _ramp(n, at_start, at_end, bw):
    r = torch.ones(n)
    ramp = (torch.arange(bw, dtype=torch.float32) + 1) / bw
    if not at_start:
        r[:bw] = ramp
    if not at_end:
        r[-bw:] = ramp.flip(0)
    return r


def tile_spans(n, tile, stride):
    """Section 5.8 grid along one axis (latent units): list of [start, end)."""
    spans = []
    for s in range(0, n, stride):
        if s - stride >= 0 and s - stride + tile >= n:
            continue
        spans.append((s, min(s + tile, n)))
    return spans


class StreamingVAE:
    """One scene's streaming state for a padded frame size H x W (multiples of 16)."""

    def __init__(self, model, height, width, tile_threshold=1024, tile=128, stride=110):
        self.m = model
        self.dtype = next(model.parameters()).dtype
        self.h, self.w = height // 8, width // 8
        self.offset, self.inv_std = (c.to(self.dtype) for c in latent_constants())
        if height > tile_threshold:
            rows, cols = tile_spans(self.h, tile, stride), tile_spans(self.w, tile, stride)
            self.tiles = [(r0, r1, c0, c1) for (r0, r1) in rows for (c0, c1) in cols]
        else:
            self.tiles = [(0, self.h, 0, self.w)]
        self.bw = tile - stride
        self.reset()

    def reset(self):
        self.enc = [dict() for _ in self.tiles]
        self.dec = [dict() for _ in self.tiles]

    def _mask(self, t, factor):
        r0, r1, c0, c1 = t
        bw = self.bw * factor
        rr = _ramp((r1 - r0) * factor, r0 == 0, r1 >= self.h, bw)
        cr = _ramp((c1 - c0) * factor, c0 == 0, c1 >= self.w, bw)
        # The reference casts the blend mask to bf16 (section 5.8); keep that rounding.
        return torch.minimum(rr[:, None], cr[None, :]).to(torch.bfloat16).to(self.dtype)

    @torch.no_grad()
    def encode_chunk(self, frames, first):
        """frames [3, L', H, W] f32 -> normalised latents [16, T, H/8, W/8]."""
        if first:
            self.reset()
        L = frames.shape[1]
        calls = ([[0]] + [list(range(i, i + 4)) for i in range(1, L, 4)]) if first else \
            [list(range(i, i + 4)) for i in range(0, L, 4)]
        single = len(self.tiles) == 1
        vals = wts = None
        for ti, t in enumerate(self.tiles):
            r0, r1, c0, c1 = t
            x = frames[:, :, 8 * r0:8 * r1, 8 * c0:8 * c1]
            feats = torch.cat([self.m.encoder(x[:, c[0]:c[-1] + 1], self.enc[ti]) for c in calls], dim=1)
            mu = self.m.conv1(feats)[:Z_DIM]
            lat = (mu - self.offset) * self.inv_std
            if single:
                return lat
            if vals is None:
                vals = torch.zeros(Z_DIM, lat.shape[1], self.h, self.w, dtype=self.dtype)
                wts = torch.zeros(1, 1, self.h, self.w, dtype=self.dtype)
            mask = self._mask(t, 1)
            vals[:, :, r0:r1, c0:c1] += lat * mask
            wts[:, :, r0:r1, c0:c1] += mask
        return vals / wts

    @torch.no_grad()
    def decode_chunk(self, latents):
        """latents [16, T, h, w] -> frames [3, T_px, H, W] clamped to [-1, 1]."""
        vals = wts = None
        for ti, t in enumerate(self.tiles):
            r0, r1, c0, c1 = t
            z = latents[:, :, r0:r1, c0:c1] / self.inv_std + self.offset
            z = self.m.conv2(z)
            out = torch.cat([self.m.decoder(z[:, i:i + 1], self.dec[ti]) for i in range(z.shape[1])], dim=1)
            if len(self.tiles) == 1:
                return out.clamp(-1, 1)
            if vals is None:
                vals = torch.zeros(3, out.shape[1], 8 * self.h, 8 * self.w, dtype=self.dtype)
                wts = torch.zeros(1, 1, 8 * self.h, 8 * self.w, dtype=self.dtype)
            mask = self._mask(t, 8)
            vals[:, :, 8 * r0:8 * r1, 8 * c0:8 * c1] += out * mask
            wts[:, :, 8 * r0:8 * r1, 8 * c0:8 * c1] += mask
        return (vals / wts).clamp(-1, 1)
