"""PyTorch reference of the InfVSR visual encoder: RAM Swin-L with the DAPE LoRA merged into q and v,
plus image_proj (MODEL-SPEC.md sections 2.1, 3.2 and 6). Written here from the spec, not copied
(no timm): parameter names are exactly the ones of section 6.4 so that state_dict() round-trips
through the official checkpoint layouts.

Numerics (what the C engine matches): everything in f32; the merged qkv weight is computed in f32
(W + B.A / 8 on the q and v rows) and then rounded once to bf16 (round-to-nearest-even), exactly
as the official loader stores it. The reference image is not rounded to bf16 (f32 vs f32 parity).
With --bf16 the fixture also holds tokens_bf16/context_bf16: the same model run the way the
official pipeline runs it, model.to(torch.bfloat16) on the f32 image cast to bf16, so every op
(conv, linear, LayerNorm, q * scale, q k^T, + bias, + mask, softmax, a v, GELU, mean) rounds to
bf16 (what the C engine's bf16 mode is compared with).

Usage as a fixture generator:
    visual_ref.py OUTDIR --config config/models/infvsr-tiny.json [--name tiny] [--errors]
writes OUTDIR/<name>/{ram.pth, dape.pth, case.safetensors} and with --errors also the broken
checkpoints the C error tests load (see write_error_files)."""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LN_EPS = 1e-5
MASK_VALUE = -100.0


# ---------------------------------------------------------------- reference preparation (2.1, 3.2)

def prepare_reference(frame_u8, img_size):
    """uint8 (H, W, 3) RGB -> normalised f32 (3, img_size, img_size)."""
    x = frame_u8.permute(2, 0, 1).to(torch.float32)
    x = x / 255.0 * 2.0 - 1.0          # model range, three fp32 ops in this order
    x = x / 2.0 + 0.5                  # back to [0, 1] for the reference frame
    x = F.interpolate(x[None], size=(img_size, img_size), mode="bilinear", align_corners=False,
                      antialias=True)[0]
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return (x - mean) / std


# ---------------------------------------------------------------- Swin pieces (6.2)

def relative_position_index(ws):
    """idx(i, j) = (dr + ws - 1) * (2 ws - 1) + (dc + ws - 1) over the ws*ws tokens of a window."""
    r = torch.arange(ws * ws) // ws
    c = torch.arange(ws * ws) % ws
    dr = r[:, None] - r[None, :]
    dc = c[:, None] - c[None, :]
    return (dr + ws - 1) * (2 * ws - 1) + (dc + ws - 1)


def shift_mask(res, ws, shift):
    """(nW, ws*ws, ws*ws): 0 inside one region label, -100 across labels (labels on the rolled grid)."""
    bands = torch.zeros(res, dtype=torch.long)
    bands[res - ws:res - shift] = 1
    bands[res - shift:] = 2
    labels = bands[:, None] * 3 + bands[None, :]                      # (res, res)
    win = window_partition(labels[:, :, None], ws)[:, :, 0]          # (nW, ws*ws)
    diff = win[:, :, None] != win[:, None, :]
    return torch.where(diff, torch.tensor(MASK_VALUE), torch.tensor(0.0))


def window_partition(x, ws):
    """(H, W, C) -> (nW, ws*ws, C), windows row-major, tokens row-major inside each window."""
    h, w, c = x.shape
    x = x.reshape(h // ws, ws, w // ws, ws, c).permute(0, 2, 1, 3, 4)
    return x.reshape(-1, ws * ws, c)


def window_reverse(x, ws, h, w):
    c = x.shape[-1]
    x = x.reshape(h // ws, w // ws, ws, ws, c).permute(0, 2, 1, 3, 4)
    return x.reshape(h, w, c)


class Mlp(torch.nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.fc1 = torch.nn.Linear(c, hidden)
        self.fc2 = torch.nn.Linear(hidden, c)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))   # exact erf GELU


class WindowAttention(torch.nn.Module):
    def __init__(self, c, heads, ws):
        super().__init__()
        self.heads, self.ws = heads, ws
        self.relative_position_bias_table = torch.nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        self.qkv = torch.nn.Linear(c, 3 * c)
        self.proj = torch.nn.Linear(c, c)
        self.register_buffer("relative_position_index", relative_position_index(ws), persistent=True)

    def forward(self, x, mask):
        # x: (nW, N, C); mask: (nW, N, N) or None
        nw, n, c = x.shape
        d = c // self.heads
        qkv = self.qkv(x).reshape(nw, n, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * d ** -0.5, qkv[1], qkv[2]                       # (nW, h, N, d)
        a = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        a = a + bias.reshape(n, n, self.heads).permute(2, 0, 1)[None]
        if mask is not None:
            a = a + mask[:, None]
        a = a.softmax(-1)
        out = (a @ v).transpose(1, 2).reshape(nw, n, c)
        return self.proj(out)


class SwinBlock(torch.nn.Module):
    def __init__(self, c, heads, ws, shift, res, mlp_ratio):
        super().__init__()
        self.ws, self.shift, self.res = ws, shift, res
        self.norm1 = torch.nn.LayerNorm(c, eps=LN_EPS)
        self.attn = WindowAttention(c, heads, ws)
        self.norm2 = torch.nn.LayerNorm(c, eps=LN_EPS)
        self.mlp = Mlp(c, mlp_ratio * c)
        if shift:
            self.register_buffer("attn_mask", shift_mask(res, ws, shift), persistent=True)
        else:
            self.attn_mask = None

    def forward(self, x):
        # x: (H*W, C)
        h = w = self.res
        s = self.norm1(x).reshape(h, w, -1)
        if self.shift:
            s = torch.roll(s, shifts=(-self.shift, -self.shift), dims=(0, 1))
        s = window_reverse(self.attn(window_partition(s, self.ws), self.attn_mask), self.ws, h, w)
        if self.shift:
            s = torch.roll(s, shifts=(self.shift, self.shift), dims=(0, 1))
        x = x + s.reshape(h * w, -1)
        return x + self.mlp(self.norm2(x))


class PatchMerging(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = torch.nn.LayerNorm(4 * c, eps=LN_EPS)
        self.reduction = torch.nn.Linear(4 * c, 2 * c, bias=False)

    def forward(self, x, res):
        x = x.reshape(res, res, -1)
        x = torch.cat([x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.reshape((res // 2) ** 2, -1)))


class Stage(torch.nn.Module):
    def __init__(self, c, depth, heads, ws, res, mlp_ratio, last):
        super().__init__()
        if res <= ws:           # the window covers the whole map: no shift, no mask
            ws, shifts = res, [0] * depth
        else:
            shifts = [0 if i % 2 == 0 else ws // 2 for i in range(depth)]
        self.res = res
        self.blocks = torch.nn.ModuleList(SwinBlock(c, heads, ws, s, res, mlp_ratio) for s in shifts)
        self.downsample = None if last else PatchMerging(c)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.downsample(x, self.res) if self.downsample is not None else x


class PatchEmbed(torch.nn.Module):
    def __init__(self, p, c):
        super().__init__()
        self.proj = torch.nn.Conv2d(3, c, kernel_size=p, stride=p)
        self.norm = torch.nn.LayerNorm(c, eps=LN_EPS)

    def forward(self, img):
        y = self.proj(img[None])[0]                    # (C, H/p, W/p)
        return self.norm(y.flatten(1).transpose(0, 1))  # (HW, C), row-major tokens


class SwinTransformer(torch.nn.Module):
    def __init__(self, vc):
        super().__init__()
        c = vc["embed_dim"]
        res = vc["img_size"] // vc["patch_size"]
        self.patch_embed = PatchEmbed(vc["patch_size"], c)
        self.layers = torch.nn.ModuleList()
        for s in range(4):
            self.layers.append(Stage(c, vc["depths"][s], vc["num_heads"][s], vc["window_size"], res,
                                     vc["mlp_ratio"], s == 3))
            if s < 3:
                c, res = 2 * c, res // 2
        self.norm = torch.nn.LayerNorm(c, eps=LN_EPS)

    def forward(self, img):
        x = self.patch_embed(img)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)                                          # (144, C_last)
        return torch.cat([x.mean(0, keepdim=True), x], dim=0)     # (145, C_last)


class VisualEncoder(torch.nn.Module):
    """The part of RAM InfVSR uses: visual_encoder.* and image_proj.*"""

    def __init__(self, vc):
        super().__init__()
        self.visual_encoder = SwinTransformer(vc)
        c_last = vc["embed_dim"] * 8
        self.image_proj = torch.nn.Linear(c_last, vc["out_dim"])

    def forward(self, img):
        tokens = self.visual_encoder(img)
        return tokens, self.image_proj(tokens)


# ---------------------------------------------------------------- DAPE merge (6.3)

def qkv_blocks(vc):
    for s in range(4):
        for b in range(vc["depths"][s]):
            yield s, b, vc["embed_dim"] << s


def lora_merge_f32(w_qkv, lora_a, lora_b, r):
    """W + [B_q A_q; 0; B_v A_v] / r in f32 (lora_alpha = 1, scaling = 1/r)."""
    c = w_qkv.shape[1]
    w = w_qkv.clone()
    w[0:c] += (lora_b[0:c] @ lora_a[0:r]) / r
    w[2 * c:3 * c] += (lora_b[c:2 * c] @ lora_a[r:2 * r]) / r
    return w


def merge_dape(model, dape, vc):
    """In place: merged qkv, rounded once to bf16 and kept as f32 values."""
    r = vc["lora_rank"]
    for s, b, _ in qkv_blocks(vc):
        p = f"visual_encoder.layers.{s}.blocks.{b}.attn.qkv."
        qkv = model.visual_encoder.layers[s].blocks[b].attn.qkv
        merged = lora_merge_f32(qkv.weight.data, dape[p + "lora_A"], dape[p + "lora_B"], r)
        qkv.weight.data = merged.to(torch.bfloat16).to(torch.float32)


# ---------------------------------------------------------------- random weights and files

def randomize(model, gen):
    """Random f32 weights scaled so activations stay O(1) through the 24 residual blocks."""
    for name, p in model.named_parameters():
        if name.endswith("relative_position_bias_table"):
            p.data = torch.randn(p.shape, generator=gen) * 0.5
        elif "norm" in name and name.endswith("weight"):
            p.data = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
        elif name.endswith("bias"):
            p.data = 0.05 * torch.randn(p.shape, generator=gen)
        else:
            fan_in = p[0].numel()
            p.data = torch.randn(p.shape, generator=gen) / math.sqrt(fan_in)


def random_dape(vc, gen):
    r, out = vc["lora_rank"], {}
    for s, b, c in qkv_blocks(vc):
        p = f"visual_encoder.layers.{s}.blocks.{b}.attn.qkv."
        out[p + "lora_A"] = torch.randn(2 * r, c, generator=gen) / math.sqrt(c)
        out[p + "lora_B"] = torch.randn(2 * c, r, generator=gen)   # nonzero B: the merge matters
    out["unrelated.lora_scale"] = torch.ones(3)
    return out


def ram_file_dict(model, gen):
    """ram_swin_large_14m.pth layout: {"model": {...visual_encoder/image_proj + buffers + RAM heads}}"""
    sd = {k: v.clone() for k, v in model.state_dict().items()}   # includes index/mask buffers
    sd["tagging_head.weight"] = torch.randn(7, 5, generator=gen)
    sd["label_embed"] = torch.randn(11, 4, generator=gen)
    return {"model": sd, "epoch": 1}


def write_error_files(d, sd_ram, dape, vc):
    """Broken checkpoints for the C error tests and a flat-layout copy (tiny config only)."""
    last = f"visual_encoder.layers.1.blocks.1.attn.qkv."
    bad = dict(dape)
    del bad[last + "lora_B"]
    torch.save(bad, os.path.join(d, "dape_missing_b.pth"))
    bad = dict(dape)
    bad[last + "lora_A"] = bad[last + "lora_A"][:vc["lora_rank"]].clone()   # rank 4 for r = 8
    torch.save(bad, os.path.join(d, "dape_rank_half.pth"))
    m = dict(sd_ram["model"])
    k = "visual_encoder.layers.2.blocks.0.attn.qkv.weight"
    m[k] = m[k][:-1].clone()
    torch.save({"model": m, "epoch": 1}, os.path.join(d, "ram_bad_qkv.pth"))
    m = dict(sd_ram["model"])
    del m["visual_encoder.norm.bias"]
    torch.save({"model": m, "epoch": 1}, os.path.join(d, "ram_missing_key.pth"))
    # flat layout (no "model." prefix, safetensors): accepted by the loader as well
    flat = {k: v.contiguous() for k, v in sd_ram["model"].items()}
    st_io.save(os.path.join(d, "ram_flat.safetensors"), flat)
    m = dict(sd_ram["model"])
    m["visual_encoder.layers.0.blocks.0.attn.extra"] = torch.zeros(2)
    torch.save({"model": m, "epoch": 1}, os.path.join(d, "ram_unexpected_key.pth"))


def build(vc, seed):
    gen = torch.Generator().manual_seed(seed)
    model = VisualEncoder(vc).eval()
    randomize(model, gen)
    return model, gen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--config", required=True, help="model config JSON (its 'visual' object is used)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--frame", default="90x160", help="HxW of the random uint8 reference frame")
    ap.add_argument("--errors", action="store_true",
                    help="also write the broken checkpoints, the flat copy and the no-DAPE context")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bf16", action="store_true",
                    help="also run the merged model in torch.bfloat16 (tokens_bf16, context_bf16)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    with open(a.config) as f:
        vc = json.load(f)["visual"]
    d = os.path.join(a.outdir, a.name) if a.name else a.outdir
    os.makedirs(d, exist_ok=True)

    model, gen = build(vc, a.seed)
    sd_ram = ram_file_dict(model, gen)
    dape = random_dape(vc, gen)
    torch.save(sd_ram, os.path.join(d, "ram.pth"))
    torch.save(dape, os.path.join(d, "dape.pth"))
    if a.errors:
        write_error_files(d, sd_ram, dape, vc)

    h, w = (int(v) for v in a.frame.split("x"))
    frame = torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8)
    probe = "visual_encoder.layers.0.blocks.1.attn.qkv."
    merged_f32 = lora_merge_f32(model.state_dict()[probe + "weight"], dape[probe + "lora_A"],
                                dape[probe + "lora_B"], vc["lora_rank"])
    extra = {}
    with torch.no_grad():
        image = prepare_reference(frame, vc["img_size"])
        if a.errors:   # the tiny fixture also covers loading without DAPE (qkv as stored)
            extra["context_no_dape"] = model(image)[1].contiguous()
        merge_dape(model, dape, vc)
        tokens, context = model(image)
        if a.bf16:   # last: converts the model in place
            tb, cb = model.to(torch.bfloat16)(image.to(torch.bfloat16))
            extra["tokens_bf16"] = tb.float().contiguous()
            extra["context_bf16"] = cb.float().contiguous()
    st_io.save(os.path.join(d, "case.safetensors"), {
        "frame": frame, "image": image.contiguous(), "tokens": tokens.contiguous(),
        "context": context.contiguous(), "merged_qkv_l0b1_f32": merged_f32.contiguous(), **extra,
    })
    print(f"visual_ref: wrote {d} (context {tuple(context.shape)}, |ctx| rms "
          f"{context.pow(2).mean().sqrt().item():.3f}, tokens rms {tokens.pow(2).mean().sqrt().item():.3f})")


if __name__ == "__main__":
    main()
