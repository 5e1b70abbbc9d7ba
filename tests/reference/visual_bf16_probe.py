"""Where the visual encoder's bf16 mode stands, and why it cannot sit closer to the torch bf16 run.
A diagnostic (not a ctest; tests/visual/test_visual.c quotes its figures).

Runs `infvsr run visual --device devsim --precision bf16` on the fixture's prepared image and
compares its tokens and context with
  - the f32 reference and the torch.bfloat16 run stored in the fixture (visual_ref.py --bf16);
  - "emul": the same model in PyTorch with the engine's rounding points, f32 math on bf16 values
    and one round-to-nearest-even to bf16 after every op (what devsim bf16 and the CUDA
    backend do);
  - "emul f64": emul with its math in float64 instead of float32. Same rounding points, so the
    distance emul f64 <-> emul is how far two faithful evaluations drift apart from rounding
    flips alone: the floor for any comparison between two bf16 runs of this network;
  - "emul torch-cpu": emul with the three ops where torch 1.13's CPU bf16 kernels round more
    often than once (LayerNorm as torch computes it, q * bf16(d^-0.5), mean as
    bf16(bf16(sum) / N)): its distance to the torch bf16 run shows what is left unexplained.

usage: visual_bf16_probe.py INFVSR FIXTURE_DIR CONFIG_JSON   (the fixture of visual_ref.py, seed 1234)
"""
import copy
import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
import visual_ref as vr  # noqa: E402


class Emulation:
    """The merged VisualEncoder evaluated op by op, rounding each op's result to bf16."""

    def __init__(self, model, vc, dtype=torch.float32, torch_cpu=False):
        self.m = copy.deepcopy(model).to(dtype)
        self.vc, self.dt, self.torch_cpu = vc, dtype, torch_cpu

    def r(self, t):
        return t.to(torch.bfloat16).to(self.dt)

    def lin(self, x, w, b):
        y = x @ self.r(w).t()
        return self.r(y if b is None else y + self.r(b))

    def ln(self, x, m):
        if self.torch_cpu:
            return F.layer_norm(x.bfloat16(), (x.shape[-1],), m.weight.bfloat16(), m.bias.bfloat16(),
                                vr.LN_EPS).to(self.dt)
        return self.r(F.layer_norm(x, (x.shape[-1],), self.r(m.weight), self.r(m.bias), vr.LN_EPS))

    def block(self, blk, x):
        r, h, c = self.r, blk.res, x.shape[-1]
        s = self.ln(x, blk.norm1).reshape(h, h, c)
        if blk.shift:
            s = torch.roll(s, (-blk.shift, -blk.shift), (0, 1))
        win = vr.window_partition(s, blk.ws)
        at = blk.attn
        nw, n, _ = win.shape
        d = c // at.heads
        qkv = self.lin(win, at.qkv.weight, at.qkv.bias).reshape(nw, n, 3, at.heads, d).permute(2, 0, 3, 1, 4)
        scale = r(torch.tensor(d ** -0.5, dtype=self.dt)) if self.torch_cpu else d ** -0.5
        q, k, v = r(qkv[0] * scale), qkv[1], qkv[2]
        a = r(q @ k.transpose(-2, -1))
        bias = r(at.relative_position_bias_table)[at.relative_position_index.reshape(-1)]
        a = r(a + bias.reshape(n, n, at.heads).permute(2, 0, 1)[None])
        if blk.attn_mask is not None:
            a = r(a + r(blk.attn_mask)[:, None])
        o = r(r(a.softmax(-1)) @ v).transpose(1, 2).reshape(nw, n, c)
        s = vr.window_reverse(self.lin(o, at.proj.weight, at.proj.bias), blk.ws, h, h)
        if blk.shift:
            s = torch.roll(s, (blk.shift, blk.shift), (0, 1))
        x = r(x + s.reshape(h * h, c))
        y = r(F.gelu(self.lin(self.ln(x, blk.norm2), blk.mlp.fc1.weight, blk.mlp.fc1.bias)))
        return r(x + self.lin(y, blk.mlp.fc2.weight, blk.mlp.fc2.bias))

    def __call__(self, image):
        r, sw, p = self.r, self.m.visual_encoder, self.vc["patch_size"]
        x = F.conv2d(r(image.to(self.dt))[None], r(sw.patch_embed.proj.weight), None, stride=p)[0]
        x = self.ln(r(x.flatten(1).t() + r(sw.patch_embed.proj.bias)), sw.patch_embed.norm)
        for st in sw.layers:
            for b in st.blocks:
                x = self.block(b, x)
            if st.downsample is not None:
                y = x.reshape(st.res, st.res, -1)
                y = torch.cat([y[0::2, 0::2], y[1::2, 0::2], y[0::2, 1::2], y[1::2, 1::2]], -1)
                y = self.ln(y.reshape((st.res // 2) ** 2, -1), st.downsample.norm)
                x = self.lin(y, st.downsample.reduction.weight, None)
        x = self.ln(x, sw.norm)
        mean = r(r(x.sum(0, keepdim=True)) / x.shape[0]) if self.torch_cpu else r(x.mean(0, keepdim=True))
        tok = torch.cat([mean, x], 0)
        return tok.float(), self.lin(tok, self.m.image_proj.weight, self.m.image_proj.bias).float()


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def main():
    exe, fix, cfg = sys.argv[1:4]
    with open(cfg) as f:
        vc = json.load(f)["visual"]
    ref = st_io.load(os.path.join(fix, "case.safetensors"))
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        st_io.save(inp, {"image": ref["image"]})
        subprocess.run([exe, "run", "visual", "--ram", os.path.join(fix, "ram.pth"), "--dape",
                        os.path.join(fix, "dape.pth"), "--config", cfg, "--in", inp, "--out", out,
                        "--device", "devsim", "--precision", "bf16"], check=True)
        ours = st_io.load(out)
    # the fixture's model, rebuilt exactly as visual_ref.py main() builds it
    model, gen = vr.build(vc, 1234)
    vr.ram_file_dict(model, gen)
    dape = vr.random_dape(vc, gen)
    runs = {"ours": (ours["tokens"], ours["context"]), "torch bf16": (ref["tokens_bf16"], ref["context_bf16"])}
    with torch.no_grad():
        vr.merge_dape(model, dape, vc)
        if not torch.equal(model(ref["image"])[1], ref["context"]):
            sys.exit("visual_bf16_probe: the rebuilt model does not reproduce the fixture (seed 1234 expected)")
        runs["emul"] = Emulation(model, vc)(ref["image"])
        runs["emul f64"] = Emulation(model, vc, torch.float64)(ref["image"])
        runs["emul torch-cpu"] = Emulation(model, vc, torch.float32, True)(ref["image"])
    f32 = (ref["tokens"], ref["context"])
    print("relative L2 distance, tokens / context")
    for name, (t, c) in runs.items():
        print(f"  {name:15s} vs f32 reference  {rel(t, f32[0]):.3e} / {rel(c, f32[1]):.3e}")
    for a, b in (("ours", "torch bf16"), ("ours", "emul"), ("emul f64", "emul"), ("emul", "torch bf16"),
                 ("emul torch-cpu", "torch bf16")):
        (ta, ca), (tb, cb) = runs[a], runs[b]
        print(f"  {a:15s} vs {b:15s} {rel(ta, tb):.3e} / {rel(ca, cb):.3e}")


if __name__ == "__main__":
    main()
