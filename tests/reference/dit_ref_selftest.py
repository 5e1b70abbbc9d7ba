"""Checks the DiT reference itself against numbers stated in MODEL-SPEC.md, so the parity tests
compare against the right architecture: 825 keys with the §4.9 shapes, 1 413 491 776
parameters (46 440 704 per block), the RoPE split 44/42/42 for head dim 128, and the
timestep/sigma constants of §2.5."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dit_ref  # noqa: E402

failures = 0


def check(cond, what):
    global failures
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    failures += not cond


# Parameters are torch.empty (not touched), so building the full model costs no real memory.
m = dit_ref.WanDiT()
sd = m.state_dict()
check(len(sd) == 825, "825 state-dict keys (got %d)" % len(sd))
total = sum(v.numel() for v in sd.values())
check(total == 1413491776, "1 413 491 776 parameters (got %d)" % total)
blk = sum(v.numel() for k, v in sd.items() if k.startswith("blocks.0."))
check(blk == 46440704, "46 440 704 parameters per block (got %d)" % blk)
expect = {
    "patch_embedding.weight": (1536, 16, 1, 2, 2), "text_embedding.0.weight": (1536, 512),
    "time_embedding.0.weight": (1536, 256), "time_projection.1.weight": (9216, 1536),
    "head.modulation": (1, 2, 1536), "head.head.weight": (64, 1536), "head.head.bias": (64,),
    "blocks.29.modulation": (1, 6, 1536), "blocks.29.self_attn.norm_q.weight": (1536,),
    "blocks.29.cross_attn.k.weight": (1536, 1536), "blocks.29.norm3.bias": (1536,),
    "blocks.29.ffn.0.weight": (8960, 1536), "blocks.29.ffn.2.weight": (1536, 8960),
}
for k, shape in expect.items():
    check(k in sd and tuple(sd[k].shape) == shape, "%s %s" % (k, shape))
check(all(v.dtype == torch.bfloat16 for v in sd.values()), "all parameters bf16")
check(not any(("norm1" in k or "norm2" in k or k.startswith("head.norm")) for k in sd), "no affine norm1/norm2/head.norm")
check(dit_ref.rope_split(128) == (44, 42, 42), "RoPE split 44/42/42 for head dim 128")
check(dit_ref.rope_split(64) == (24, 20, 20), "RoPE split 24/20/20 for head dim 64 (tiny)")
f = dit_ref.rope_freqs(128, 5, 2, 3, 4)
check(tuple(f.shape) == (2 * 3 * 4, 64, 2) and f.dtype == torch.float64, "RoPE table [N, 64, 2] f64")
# token (f=1, y=2, x=3): index (1*3 + 2)*4 + 3 = 23; time pair 1, height pair 22, width pair 43
ang = torch.atan2(f[23, :, 1], f[23, :, 0])
check(abs(float(ang[0]) - (6.0 - 2 * 3.141592653589793)) < 1e-12, "time pair 0 angle = start_frame + f")
a1 = torch.tensor(6.0 * 10000 ** (-2 / 44), dtype=torch.float64)
check(abs(float(f[23, 1, 0] - torch.cos(a1))) < 1e-12 and abs(float(f[23, 1, 1] - torch.sin(a1))) < 1e-12,
      "time pair 1 angle = 6 * 10000^(-2/44)")
check(abs(float(ang[22]) - 2.0) < 1e-12 and abs(float(ang[43]) - 3.0) < 1e-12, "height/width pair 0 = y, x")
check(torch.tensor([399.0]).to(torch.bfloat16).item() == dit_ref.TIMESTEP, "bf16(399) == 400")
check(torch.tensor(0.4008152485).to(torch.bfloat16).item() == dit_ref.SIGMA_EFF, "bf16(sigma) == 0.400390625")
s = dit_ref.sinusoid(256, 400.0)
check(abs(float(s[0, 0]) - float(torch.cos(torch.tensor(400.0, dtype=torch.float64)))) < 1e-7 and
      abs(float(s[0, 128 + 1]) - float(torch.sin(torch.tensor(400.0 * 10000 ** (-1 / 128), dtype=torch.float64)))) < 1e-7,
      "sinusoid = [cos(t w_k)] ++ [sin(t w_k)], w_k = 10000^(-k/128)")
print("%d failures" % failures)
sys.exit(1 if failures else 0)
