"""Fixture for tests/ops/test_resize_torch.c: random planes resized by
torch.nn.functional.interpolate(antialias=True) in f32 on the CPU (MODEL-SPEC §3).

Writes to OUT_DIR a manifest `cases.txt` ("name mode P Hi Wi Ho Wo" per line, mode as the
C enum: 0 nearest-exact, 1 bilinear AA, 2 bicubic AA) and, per case, `<name>.in.f32` and
`<name>.out.f32` (raw little-endian f32, [P, H, W])."""
import os
import sys

import torch
import torch.nn.functional as F

MODES = {0: "nearest-exact", 1: "bilinear", 2: "bicubic"}

# name, mode, P, Hi, Wi, Ho, Wo, use_scale_factor (the x4 path of video.py)
CASES = [
    ("bicubic_x4", 2, 3, 18, 32, 72, 128, True),
    ("bicubic_x4_odd", 2, 2, 7, 13, 28, 52, True),
    ("bilinear_480x200_to_384", 1, 3, 480, 200, 384, 384, False),  # H down, W up
    ("bilinear_180x320_to_384", 1, 3, 180, 320, 384, 384, False),  # H up, W up
    ("bilinear_500x700_to_384", 1, 1, 500, 700, 384, 384, False),  # both down
    ("bicubic_down", 2, 2, 50, 37, 23, 61, False),                  # H down, W up
    ("nearest_exact", 0, 2, 15, 22, 40, 9, False),
]


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    lines = []
    for name, mode, p, hi, wi, ho, wo, use_sf in CASES:
        x = torch.rand(p, hi, wi, generator=gen, dtype=torch.float32) * 2 - 0.5
        kw = {"mode": MODES[mode]}
        if mode != 0:
            kw.update(align_corners=False, antialias=True)
        if use_sf:
            y = F.interpolate(x[None], scale_factor=ho // hi, **kw)[0]
        else:
            y = F.interpolate(x[None], size=(ho, wo), **kw)[0]
        assert y.shape == (p, ho, wo), y.shape
        x.numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".in.f32"))
        y.contiguous().numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".out.f32"))
        lines.append(f"{name} {mode} {p} {hi} {wi} {ho} {wo}")
    with open(os.path.join(out_dir, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(CASES)} resize cases to {out_dir} (torch {torch.__version__})")


if __name__ == "__main__":
    main(sys.argv[1])
