"""PyTorch side of tests/bench/bench_visual.sh: one full visual encode (reference preparation +
Swin-L with the merged DAPE LoRA + image_proj, f32, CPU) timed REPEATS times with N threads.
Prints "torch_encode_s median=... min=... threads=N repeats=R"; with a fifth argument bf16 the
model and the prepared image in torch.bfloat16 (the reference preparation stays f32, as the
official pipeline's), printed as "torch_bf16_encode_s ...".

usage: bench_visual.py FIXTURE_DIR CONFIG_JSON N_THREADS REPEATS [bf16]"""
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import st_io  # noqa: E402
import visual_ref  # noqa: E402


def main():
    d, cfg_path, threads, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    with open(cfg_path) as f:
        vc = json.load(f)["visual"]
    model = visual_ref.VisualEncoder(vc).eval()
    sd = torch.load(os.path.join(d, "ram.pth"))["model"]
    sd = {k: v for k, v in sd.items() if k.startswith(("visual_encoder.", "image_proj."))}
    model.load_state_dict(sd, strict=True)
    visual_ref.merge_dape(model, torch.load(os.path.join(d, "dape.pth")), vc)
    frame = st_io.load(os.path.join(d, "case.safetensors"))["frame"]
    bf16 = len(sys.argv) > 5 and sys.argv[5] == "bf16"
    dt = torch.bfloat16 if bf16 else torch.float32
    model = model.to(dt)
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t = time.perf_counter()
            model(visual_ref.prepare_reference(frame, vc["img_size"]).to(dt))
            times.append(time.perf_counter() - t)
    print(f"{'torch_bf16' if bf16 else 'torch'}_encode_s median={statistics.median(times):.4f} min={min(times):.4f} threads={threads} "
          f"repeats={repeats}")


if __name__ == "__main__":
    main()
