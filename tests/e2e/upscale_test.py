#!/usr/bin/python3
"""`infvsr make-tiny-model` and `infvsr upscale` end to end, checked with ffprobe/ffmpeg.

usage: upscale_test.py INFVSR_BINARY WORK_DIR REPO_DIR

- make-tiny-model: the four files + model.json (same architecture as config/models/infvsr-tiny.json)
  + README.txt saying RANDOM WEIGHTS; same seed -> same bytes, other seed -> other bytes.
- upscale of an H.264 + AAC MP4: dimensions x4, frame count, frame rate, frame timestamps,
  audio packets bit-identical (ffmpeg -c copy -f md5); MKV with a subtitle stream: subtitle
  packets identical too; y4m from a pipe ('-'); FFV1/MKV with --max-frames; --json lines.
- bad inputs (random bytes, truncated MP4, zero-frame y4m, absurd dimensions, a resolution
  change mid-stream, no video stream, a missing model directory, an existing OUT): exit 1,
  a clear message, nothing under the output name (nor a temporary file next to it).
- devices: --device devsim gives the same bytes as --device cpu (f32); devsim in bf16 runs
  and stays close; --json reports the backend, model and session bytes and the traffic: per
  chunk exactly the u8 LR frames in and the u8 SR frames out, plus the DiT's RoPE angle rows
  (under 2 KiB a chunk; test_session.c checks their exact count); --device cuda on a build
  without CUDA or a machine without a usable GPU (and bf16 with --device auto there): exit 3,
  a message naming the reason, no output file; an unknown device or precision: exit 2.
Prints "N passed, N failed"; exit status 0 only when nothing failed."""
import glob
import hashlib
import json
import os
import random
import subprocess
import sys

TOOL, WORK, REPO = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
MODEL = os.path.join(WORK, "tiny")
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)
    return cond


def run(*args, ok=True, stdin=None):
    p = subprocess.run([str(a) for a in args], cwd=WORK, capture_output=True, text=True, stdin=stdin)
    if ok and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(map(str, args)), p.returncode, p.stderr))
    return p


def ffmpeg(*args):
    run("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args)


def streams(path):
    out = run("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", path).stdout
    return json.loads(out)["streams"]


def frame_times(path):
    out = run("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
              "frame=best_effort_timestamp_time", "-of", "csv=p=0", path).stdout
    return [round(float(line.split(",")[0]), 4) for line in out.split()]


def packets_md5(path, sel):
    p = run("ffmpeg", "-v", "error", "-i", path, "-map", "0:" + sel, "-c", "copy", "-f", "md5", "-", ok=False)
    return p.stdout.strip() if p.returncode == 0 else None


def leftovers(out):
    return [p for p in [out] + glob.glob(out + ".tmp-*") if os.path.exists(p)]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def upscale(src, out, *extra, ok=True, stdin=None):
    return run(TOOL, "upscale", src, out, "--model-dir", MODEL, "--threads", "2", *extra, ok=ok, stdin=stdin)


def test_make_tiny_model():
    run(TOOL, "make-tiny-model", MODEL, "--seed", "3")
    names = ["InfVSR.safetensors", "Wan2.1_VAE.safetensors", "ram_swin_large_14m.safetensors",
             "DAPE.safetensors", "model.json", "README.txt"]
    check(all(os.path.isfile(os.path.join(MODEL, n)) for n in names), "make-tiny-model writes " + ", ".join(names))
    check("RANDOM WEIGHTS" in open(os.path.join(MODEL, "README.txt")).read(), "README.txt says RANDOM WEIGHTS")
    got = json.load(open(os.path.join(MODEL, "model.json")))
    want = json.load(open(os.path.join(REPO, "config", "models", "infvsr-tiny.json")))
    check(all(got[k] == want[k] for k in ("dit", "vae", "visual")), "model.json = config/models/infvsr-tiny.json")
    check("RANDOM" in got["description"] and "random" in got["name"], "model.json labelled random")
    again = os.path.join(WORK, "tiny_again")
    other = os.path.join(WORK, "tiny_other")
    run(TOOL, "make-tiny-model", again, "--seed", "3")
    run(TOOL, "make-tiny-model", other, "--seed", "4")
    for n in names[:4]:
        check(sha(os.path.join(MODEL, n)) == sha(os.path.join(again, n)), "same seed, same bytes: " + n)
        check(sha(os.path.join(MODEL, n)) != sha(os.path.join(other, n)), "other seed, other bytes: " + n)


def test_upscale_mp4_audio():
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=48000", "-t", "0.8", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-shortest", "in.mp4")
    p = upscale("in.mp4", "out.mp4", "--json")
    lines = [json.loads(l) for l in p.stdout.splitlines()]
    check(lines and lines[-1]["event"] == "done" and lines[-1]["frames"] == 20, "JSON progress ends with done: %s"
          % (lines[-1] if lines else p.stdout))
    check(any(l["event"] == "progress" for l in lines), "JSON progress lines")
    si, so = streams(os.path.join(WORK, "in.mp4")), streams(os.path.join(WORK, "out.mp4"))
    vi = [s for s in si if s["codec_type"] == "video"][0]
    vo = [s for s in so if s["codec_type"] == "video"][0]
    check((vo["width"], vo["height"]) == (4 * vi["width"], 4 * vi["height"]), "dims x4: %sx%s" % (vo["width"], vo["height"]))
    check(vo["nb_read_frames"] == vi["nb_read_frames"] == "20", "frame count %s -> %s" % (vi["nb_read_frames"], vo["nb_read_frames"]))
    check(vo["r_frame_rate"] == vi["r_frame_rate"], "fps %s -> %s" % (vi["r_frame_rate"], vo["r_frame_rate"]))
    check(vo["codec_name"] == "h264" and vo["pix_fmt"] == "yuv420p", "H.264 yuv420p: %s %s" % (vo["codec_name"], vo["pix_fmt"]))
    check(frame_times(os.path.join(WORK, "in.mp4")) == frame_times(os.path.join(WORK, "out.mp4")), "frame timestamps kept")
    check(any(s["codec_type"] == "audio" for s in so), "audio stream present")
    a_in, a_out = packets_md5("in.mp4", "a:0"), packets_md5("out.mp4", "a:0")
    check(a_in is not None and a_in == a_out, "audio packets bit-identical: %s vs %s" % (a_in, a_out))
    p = upscale("in.mp4", "out.mp4", ok=False)
    check(p.returncode == 1 and "exists" in p.stderr, "existing OUT refused without --force: " + p.stderr.strip())
    p = upscale("in.mp4", "out444.mp4", "--yuv444p", "--max-frames", "9", "--quiet")
    so = streams(os.path.join(WORK, "out444.mp4"))
    vo = [s for s in so if s["codec_type"] == "video"][0]
    check(vo["pix_fmt"] == "yuv444p" and vo["nb_read_frames"] == "9", "--yuv444p --max-frames 9: %s %s"
          % (vo["pix_fmt"], vo["nb_read_frames"]))
    check(p.stdout == "" and p.stderr == "", "--quiet prints nothing: %r %r" % (p.stdout, p.stderr))


def test_upscale_mkv_subtitles_ffv1_y4m():
    with open(os.path.join(WORK, "subs.srt"), "w") as f:
        f.write("1\n00:00:00,000 --> 00:00:00,400\nhello\n\n2\n00:00:00,400 --> 00:00:00,700\nworld\n")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=24x16:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=44100",
           "-i", "subs.srt", "-t", "0.5", "-map", "0:v", "-map", "1:a", "-map", "2:s", "-c:v", "libx264",
           "-c:a", "libopus", "-c:s", "srt", "in.mkv")
    upscale("in.mkv", "out_ffv1.mkv", "--codec", "ffv1", "--no-scene-detection")
    so = streams(os.path.join(WORK, "out_ffv1.mkv"))
    vo = [s for s in so if s["codec_type"] == "video"][0]
    check(vo["codec_name"] == "ffv1" and (vo["width"], vo["height"]) == (96, 64) and vo["nb_read_frames"] == "15",
          "FFV1 96x64 15 frames: %s %sx%s %s" % (vo["codec_name"], vo["width"], vo["height"], vo["nb_read_frames"]))
    for sel in ("a:0", "s:0"):
        a, b = packets_md5("in.mkv", sel), packets_md5("out_ffv1.mkv", sel)
        check(a is not None and a == b, "%s packets bit-identical: %s vs %s" % (sel, a, b))
    # y4m through a pipe
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=16x16:rate=24", "-frames:v", "11", "-pix_fmt", "yuv420p", "in.y4m")
    with open(os.path.join(WORK, "in.y4m"), "rb") as f:
        upscale("-", "out.y4m", stdin=f)
    vo = streams(os.path.join(WORK, "out.y4m"))[0]
    check((vo["width"], vo["height"], vo["nb_read_frames"]) == (64, 64, "11"),
          "y4m from stdin: %sx%s %s frames" % (vo["width"], vo["height"], vo["nb_read_frames"]))
    # same input, same model -> same bytes (DESIGN.md invariant); y4m is raw, so the file is the frames
    upscale("in.y4m", "out_again.y4m")
    check(sha(os.path.join(WORK, "out.y4m")) == sha(os.path.join(WORK, "out_again.y4m")), "deterministic output")
    upscale("in.y4m", "out_x2.y4m", "--scale", "2")
    vo = streams(os.path.join(WORK, "out_x2.y4m"))[0]
    check((vo["width"], vo["height"], vo["nb_read_frames"]) == (32, 32, "11"), "--scale 2: %sx%s" % (vo["width"], vo["height"]))


def write_bytes(name, data):
    with open(os.path.join(WORK, name), "wb") as f:
        f.write(data)


def test_bad_inputs():
    rnd = random.Random(5)
    write_bytes("random.bin", bytes(rnd.getrandbits(8) for _ in range(100000)))
    a = open(os.path.join(WORK, "in.mp4"), "rb").read()
    write_bytes("trunc.mp4", a[: len(a) // 2])
    write_bytes("zero.y4m", b"YUV4MPEG2 W32 H24 F25:1 Ip A1:1 C420jpeg\n")
    write_bytes("huge.y4m", b"YUV4MPEG2 W90000 H90000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1000))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-t", "0.4", "-c:v", "libx264", "-f", "mpegts", "s1.ts")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=24x16:rate=25", "-t", "0.4", "-c:v", "libx264", "-f", "mpegts", "s2.ts")
    write_bytes("change.ts", open(os.path.join(WORK, "s1.ts"), "rb").read() + open(os.path.join(WORK, "s2.ts"), "rb").read())
    ffmpeg("-f", "lavfi", "-i", "sine", "-t", "0.5", "-c:a", "aac", "audio.m4a")
    cases = [("random.bin", "not a recognised media format"), ("trunc.mp4", "truncated"),
             ("zero.y4m", "no decodable frame"), ("huge.y4m", "cannot open the container"),
             ("change.ts", "resolution changes at frame 10"), ("audio.m4a", "no video stream"),
             ("missing.mp4", "cannot open")]
    for src, msg in cases:
        out = os.path.join(WORK, "bad_%s.mp4" % os.path.splitext(src)[0])
        p = upscale(src, out, ok=False)
        check(p.returncode == 1 and "error:" in p.stderr and msg in p.stderr,
              "%s: want exit 1 and '%s', got %d: %s" % (src, msg, p.returncode, p.stderr.strip()))
        check(not leftovers(out), "%s: nothing left under %s" % (src, out))
    p = run(TOOL, "upscale", "in.mp4", "bad_model.mp4", "--model-dir", os.path.join(WORK, "nomodel"), ok=False)
    check(p.returncode == 1 and "does not exist" in p.stderr, "missing model dir: " + p.stderr.strip())
    os.makedirs(os.path.join(WORK, "emptymodel"), exist_ok=True)
    p = run(TOOL, "upscale", "in.mp4", "bad_model.mp4", "--model-dir", os.path.join(WORK, "emptymodel"), ok=False)
    check(p.returncode == 1 and "InfVSR.ckpt, Wan2.1_VAE.pth, ram_swin_large_14m.pth, DAPE.pth" in p.stderr,
          "empty model dir lists the missing files: " + p.stderr.strip())
    check(not leftovers(os.path.join(WORK, "bad_model.mp4")), "model error leaves no output")
    p = run(TOOL, "upscale", "in.mp4", ok=False)
    check(p.returncode == 2, "usage error exit 2")


def done_line(p):
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    return lines[-1] if lines and lines[-1]["event"] == "done" else None


def y4m_frames(path):
    """The frame payloads of a y4m file."""
    data = open(os.path.join(WORK, path), "rb").read()
    return data.split(b"FRAME\n")[1:]


def test_devices():
    # 11 frames of 16x16 (one 9-frame chunk, one 2-frame chunk) on each device.
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=16x16:rate=24", "-frames:v", "11", "-pix_fmt", "yuv420p", "dev.y4m")
    runs = {}
    for dev, prec in (("cpu", "auto"), ("devsim", "auto"), ("devsim", "bf16"), ("cpu", "bf16")):
        out = "dev_%s_%s.y4m" % (dev, prec)
        p = upscale("dev.y4m", out, "--device", dev, "--precision", prec, "--json")
        runs[(dev, prec)] = (out, done_line(p))
    cpu, sim, bf = runs[("cpu", "auto")], runs[("devsim", "auto")], runs[("devsim", "bf16")]
    check(sha(os.path.join(WORK, cpu[0])) == sha(os.path.join(WORK, sim[0])), "--device devsim: same bytes as cpu")
    a, b = y4m_frames(cpu[0]), y4m_frames(bf[0])
    diff = [abs(x - y) for fa, fb in zip(a, b) for x, y in zip(fa, fb)]
    mean = sum(diff) / max(1, len(diff))
    check(len(a) == len(b) == 11 and mean < 1.0, "devsim bf16: 11 frames, mean |diff| vs f32 %.3f (< 1)" % mean)
    c = y4m_frames(runs[("cpu", "bf16")][0])
    diff = [abs(x - y) for fa, fc in zip(a, c) for x, y in zip(fa, fc)]
    mean = sum(diff) / max(1, len(diff))
    check(len(c) == 11 and mean < 1.0, "cpu bf16: 11 frames, mean |diff| vs f32 %.3f (< 1)" % mean)
    lr_bytes, sr_bytes = 16 * 16 * 3, 64 * 64 * 3
    for (dev, prec), (out, d) in runs.items():
        what = "--json on %s/%s" % (dev, prec)
        if not check(d is not None, what + ": a done line"):
            continue
        be = d["backend"]
        check(be["name"] == dev and be["precision"] == ("bf16" if prec == "bf16" else "f32"),
              what + ": backend %s" % be)
        check(d["session_bytes"] > 0 and d["session_bytes"] == d["vae_cache_bytes"] + d["dit_bytes"] +
              d["buffer_bytes"], what + ": session bytes %s" % d["session_bytes"])
        check(d["model_bytes"] > 0, what + ": model bytes %s" % d["model_bytes"])
        rope = d["bytes_to_device"] - d["frames"] * lr_bytes
        check(0 < rope <= 2048 * d["chunks"], what + ": %d B in = %d LR frames x %d B + %d B of RoPE rows"
              % (d["bytes_to_device"], d["frames"], lr_bytes, rope))
        check(d["bytes_from_device"] == d["frames"] * sr_bytes, what + ": %d B out = %d SR frames x %d B"
              % (d["bytes_from_device"], d["frames"], sr_bytes))
        check(d["bytes_per_chunk"]["to_device"] == d["bytes_to_device"] / d["chunks"] and d["chunks"] == 2,
              what + ": per chunk %s" % d["bytes_per_chunk"])
    # devsim holds the weights in its own memory; the cpu reads most of them from the mapping.
    check(sim[1] and cpu[1] and sim[1]["model_bytes"] > cpu[1]["model_bytes"],
          "model bytes: devsim %s > cpu %s" % (sim[1] and sim[1]["model_bytes"], cpu[1] and cpu[1]["model_bytes"]))
    # Devices that are not there: exit 3, a clear reason, nothing written.
    # The reason names CUDA: a build without it, no usable device, device 1 not present.
    for args, reason in ((("--device", "cuda"), ("CUDA",)), (("--device", "cuda:1"), ("CUDA",))):
        out = os.path.join(WORK, "nodev.mp4")
        p = upscale("dev.y4m", out, *args, ok=False)
        if p.returncode == 0:
            print("skip %s: this build has CUDA and a usable GPU" % " ".join(args))
            os.remove(out)
            continue
        check(p.returncode == 3 and any(r in p.stderr for r in reason) and "--device" in p.stderr,
              "%s: want exit 3 naming the reason, got %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
        check(not leftovers(out), "%s: nothing left under %s" % (" ".join(args), out))
    for args, msg in ((("--device", "tpu"), "unknown"), (("--precision", "fp8"), "--precision")):
        out = os.path.join(WORK, "nodev.mp4")
        p = upscale("dev.y4m", out, *args, ok=False)
        check(p.returncode == 2 and msg in p.stderr and not leftovers(out),
              "%s: want exit 2 and '%s', got %d: %s" % (" ".join(args), msg, p.returncode, p.stderr.strip()))
    # The cpu's instruction set forced by INFVSR_CPU_ISA: an unknown name is a usage error; a
    # level the CPU lacks (amx here unless the machine has it) exits 3 like a missing device;
    # the portable avx2 level always runs.
    env = dict(os.environ)
    for isa, want, msg in (("avx1024", 2, "INFVSR_CPU_ISA"), ("amx", 3, "not available"), ("avx2", 0, "")):
        env["INFVSR_CPU_ISA"] = isa
        out = os.path.join(WORK, "isa.y4m")
        p = subprocess.run([TOOL, "upscale", "dev.y4m", out, "--model-dir", MODEL, "--threads", "2", "--device", "cpu",
                            "--precision", "bf16"], cwd=WORK, capture_output=True, text=True, env=env)
        if isa == "amx" and p.returncode == 0:
            # this CPU has AMX: the forced level runs like the portable one (and leaves its
            # output, which the next run must not find)
            check(os.path.getsize(out) > 0, "INFVSR_CPU_ISA=amx: ran but wrote nothing")
            os.remove(out)
            print("INFVSR_CPU_ISA=amx: this CPU has AMX: ran (exit 0)")
            continue
        check(p.returncode == want and msg in p.stderr and (want == 0 or not leftovers(out)),
              "INFVSR_CPU_ISA=%s: want exit %d and '%s', got %d: %s" % (isa, want, msg, p.returncode, p.stderr.strip()))


def main():
    os.makedirs(WORK, exist_ok=True)
    for f in glob.glob(os.path.join(WORK, "*.mp4")) + glob.glob(os.path.join(WORK, "*.mkv")) + \
            glob.glob(os.path.join(WORK, "*.y4m")):
        os.remove(f)
    for t in (test_make_tiny_model, test_upscale_mp4_audio, test_upscale_mkv_subtitles_ffv1_y4m, test_bad_inputs,
              test_devices):
        before = failed
        try:
            t()
        except Exception as e:  # a crash of one test is a failure, not the end of the run
            check(False, "%s raised %s" % (t.__name__, e))
        print("%s %s" % ("ok  " if failed == before else "FAIL", t.__name__))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
