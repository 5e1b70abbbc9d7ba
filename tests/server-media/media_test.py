#!/usr/bin/python3
"""Media I/O tests (server/media) driven through tests/server-media/media_tool.c.

Generates inputs with the ffmpeg CLI (testsrc2 + sine audio, mp4/mkv/y4m, odd sizes, a
subtitle track), decodes and re-encodes them without a model, and checks the result with
ffprobe/ffmpeg: size, frame count, frame rate, frame timestamps, pixel format, audio and
subtitle packets bit-identical, RGB bit-exact with `ffmpeg -pix_fmt rgb24`, FFV1 lossless.
Bad inputs must fail with a clear message and leave no file under the output name.

usage: media_test.py MEDIA_TOOL WORK_DIR        (prints "N passed, N failed")
"""
import glob
import json
import os
import subprocess
import sys

TOOL, WORK = sys.argv[1], sys.argv[2]
passed, failed = 0, 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)
    return cond


def run(*args, ok=True):
    p = subprocess.run([str(a) for a in args], cwd=WORK, capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(map(str, args)), p.returncode, p.stderr))
    return p


def ffmpeg(*args):
    run("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args)


def kv(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def probe_streams(path):
    out = run("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", path).stdout
    return json.loads(out)["streams"]


def frame_times(path):
    out = run("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
              "frame=best_effort_timestamp_time", "-of", "csv=p=0", path).stdout
    return [float(line.split(",")[0]) for line in out.split()]


def packets_md5(path, sel):
    p = run("ffmpeg", "-v", "error", "-i", path, "-map", "0:" + sel, "-c", "copy", "-f", "md5", "-", ok=False)
    return p.stdout.strip() if p.returncode == 0 else None


def cli_rgb_md5(path):
    out = run("ffmpeg", "-v", "error", "-i", path, "-map", "0:v:0", "-fps_mode", "passthrough",
              "-pix_fmt", "rgb24", "-f", "md5", "-").stdout
    return out.strip().split("=")[1]


def leftovers(out):
    return [p for p in [out] + glob.glob(out + ".tmp-*") if os.path.exists(p)]


def make_inputs():
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(WORK, "subs.srt"), "w") as f:
        f.write("1\n00:00:00,100 --> 00:00:00,900\nhello\n\n2\n00:00:01,000 --> 00:00:01,200\nworld\n")
    # even size, 25 fps, AAC audio, MP4 (index at the end, as ffmpeg writes it)
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-shortest", "a.mp4")
    # odd size, NTSC rate, 4:4:4, AAC audio + SubRip subtitles, Matroska
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30000/1001", "-f", "lavfi",
           "-i", "sine=frequency=300:sample_rate=44100", "-i", "subs.srt", "-frames:v", "40", "-t", "1.4",
           "-map", "0:v", "-map", "1:a", "-map", "2:s", "-vf", "scale=161:121", "-c:v", "libx264", "-pix_fmt", "yuv444p",
           "-c:a", "aac", "-c:s", "srt", "b.mkv")
    # y4m, 24 fps, no audio
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=24", "-frames:v", "30", "-pix_fmt", "yuv420p", "c.y4m")
    # tagged BT.709 limited range H.264 (the reader must pick the matrix from the tag)
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x96:rate=25", "-frames:v", "12", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
           "e709.mkv")
    ffmpeg("-i", "a.mp4", "-c", "copy", "-movflags", "+faststart", "a_fast.mp4")
    # more colour cases: full range (MJPEG, H.264 tagged pc), 10-bit BT.2020, VP9
    src = ["-f", "lavfi", "-i", "testsrc2=s=128x96:r=25", "-frames:v", "10"]
    ffmpeg(*src, "-c:v", "mjpeg", "mjpeg.avi")
    ffmpeg(*src, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-color_range", "pc", "full.mkv")
    ffmpeg(*src, "-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-colorspace", "bt2020nc",
           "-color_primaries", "bt2020", "-color_trc", "smpte2084", "bt2020_10bit.mkv")
    ffmpeg(*src, "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "vp9.webm")


def test_decode_bit_exact():
    for f in ["a.mp4", "b.mkv", "c.y4m", "e709.mkv", "mjpeg.avi", "full.mkv", "bt2020_10bit.mkv", "vp9.webm"]:
        p = run(TOOL, "rgbmd5", f)
        check(kv(p.stdout).get("md5") == cli_rgb_md5(f), "rgb of %s equals ffmpeg -pix_fmt rgb24" % f)


def test_info():
    a = kv(run(TOOL, "info", "a.mp4").stdout)
    check(a["width"] == "320" and a["height"] == "240" and a["fps"] == "25" and a["nframes"] == "50",
          "info a.mp4: %s" % a)
    check(a["copy_streams"] == "1", "a.mp4 has one audio stream to copy")
    b = kv(run(TOOL, "info", "b.mkv").stdout)
    check(b["width"] == "161" and b["height"] == "121" and b["fps_q"] == "30000/1001", "info b.mkv: %s" % b)
    check(b["copy_streams"] == "2", "b.mkv has audio + subtitles to copy")


def test_transcode(src, codec, ext, lossless=False):
    out = "out_%s_%s%s.%s" % (os.path.splitext(src)[0], codec, "_ll" if lossless else "", ext)
    args = [TOOL, "transcode", src, out, codec] + (["--lossless"] if lossless else [])
    p = run(*args, ok=False)
    name = "%s -> %s" % (src, out)
    if not check(p.returncode == 0, name + ": " + p.stderr.strip()):
        return
    res = kv(p.stdout)
    sin, sout = probe_streams(src), probe_streams(out)
    vin = [s for s in sin if s["codec_type"] == "video"][0]
    vout = [s for s in sout if s["codec_type"] == "video"]
    if not check(len(vout) == 1, name + ": one video stream"):
        return
    vout = vout[0]
    n_in = int(vin["nb_read_frames"])
    check(int(vout["nb_read_frames"]) == n_in == int(res["frames"]),
          name + ": frame count %s / %s / %s" % (vin["nb_read_frames"], vout["nb_read_frames"], res["frames"]))
    check((vout["width"], vout["height"]) == (vin["width"], vin["height"]), name + ": size")
    check(vout["r_frame_rate"] == vin["r_frame_rate"],
          name + ": rate %s vs %s" % (vout["r_frame_rate"], vin["r_frame_rate"]))
    odd = vin["width"] % 2 or vin["height"] % 2
    want_pix = "bgr0" if codec == "ffv1" else "yuv444p" if (odd or lossless) else "yuv420p"
    check(vout["pix_fmt"] == want_pix, name + ": pix_fmt %s, want %s" % (vout["pix_fmt"], want_pix))
    tin, tout = frame_times(src), frame_times(out)
    # Intervals are kept everywhere. Absolute times are kept in MP4 (edit lists carry a
    # negative audio start); Matroska cannot store negative times, so its muxer shifts
    # every stream by the same constant when the audio starts before 0, and y4m stores a
    # rate only.
    check(len(tin) == len(tout) and all(abs((x - tin[0]) - (y - tout[0])) <= 1.5e-3 for x, y in zip(tin, tout)),
          name + ": frame intervals %s... vs %s..." % (tin[:4], tout[:4]))
    if ext == "mp4":
        check(all(abs(x - y) <= 1.5e-3 for x, y in zip(tin, tout)),
              name + ": frame timestamps %s... vs %s..." % (tin[:4], tout[:4]))
    if codec == "ffv1":
        check(run(TOOL, "rgbmd5", out).stdout == run(TOOL, "rgbmd5", src).stdout, name + ": FFV1 is lossless")
    check(kv(run(TOOL, "rgbmd5", out).stdout)["md5"] == cli_rgb_md5(out), name + ": decode bit-exact")
    for kind, sel in [("audio", "a"), ("subtitle", "s")]:
        has_in = any(s["codec_type"] == kind for s in sin)
        has_out = any(s["codec_type"] == kind for s in sout)
        # y4m holds video only; MP4 cannot hold SubRip (the writer drops it)
        expect = has_in and codec != "y4m" and not (kind == "subtitle" and ext == "mp4")
        check(has_out == expect, name + ": %s stream present=%s, expected %s" % (kind, has_out, expect))
        if expect and has_out:
            m_in, m_out = packets_md5(src, sel), packets_md5(out, sel)
            check(m_in is not None and m_in == m_out, name + ": %s packets identical (%s vs %s)" % (kind, m_in, m_out))


def test_custom_io():
    ref = kv(run(TOOL, "rgbmd5", "a.mp4").stdout)["md5"]
    for f in ["a_fast.mp4", "b.mkv", "c.y4m"]:
        p = run(TOOL, "rgbmd5", f, "--io", ok=False)
        want = ref if f == "a_fast.mp4" else kv(run(TOOL, "rgbmd5", f).stdout)["md5"]
        check(p.returncode == 0 and kv(p.stdout).get("md5") == want, "custom IO %s: %s" % (f, p.stderr.strip()))
    p = run(TOOL, "rgbmd5", "a.mp4", "--io-seek", ok=False)
    check(p.returncode == 0 and kv(p.stdout).get("md5") == ref, "custom IO with seek, index at the end: " + p.stderr.strip())
    p = run(TOOL, "rgbmd5", "a.mp4", "--io", ok=False)
    check(p.returncode == 1 and "faststart" in p.stderr, "streamed MP4 with the index at the end: " + p.stderr.strip())
    p = run(TOOL, "transcode", "b.mkv", "io_b.mkv", "h264", "--io", ok=False)
    check(p.returncode == 0 and kv(p.stdout).get("frames") == "40", "custom IO transcode: " + p.stderr.strip())


def write_bytes(name, data):
    with open(os.path.join(WORK, name), "wb") as f:
        f.write(data)


def test_bad_inputs():
    import random
    rnd = random.Random(5)
    write_bytes("random.bin", bytes(rnd.getrandbits(8) for _ in range(200000)))
    a = open(os.path.join(WORK, "a.mp4"), "rb").read()
    write_bytes("trunc.mp4", a[: len(a) // 2])
    fast = open(os.path.join(WORK, "a_fast.mp4"), "rb").read()
    write_bytes("trunc_fast.mp4", fast[: len(fast) * 2 // 3])
    b = open(os.path.join(WORK, "b.mkv"), "rb").read()
    write_bytes("trunc.mkv", b[: len(b) * 6 // 10])
    write_bytes("zero.y4m", b"YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg\n")
    write_bytes("huge.y4m", b"YUV4MPEG2 W9000 H9000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1000))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-t", "0.4", "-c:v", "libx264", "-f", "mpegts", "s1.ts")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-t", "0.4", "-c:v", "libx264", "-f", "mpegts", "s2.ts")
    write_bytes("change.ts", open(os.path.join(WORK, "s1.ts"), "rb").read() + open(os.path.join(WORK, "s2.ts"), "rb").read())
    ffmpeg("-f", "lavfi", "-i", "sine", "-t", "1", "-c:a", "aac", "audio.m4a")
    ffmpeg("-i", "a.mp4", "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "list.m3u8")
    write_bytes("list.ffconcat", b"ffconcat version 1.0\nfile a.mp4\n")
    cases = [("random.bin", "not a recognised media format"), ("list.m3u8", "a playlist or a list of other files (hls)"),
             ("list.ffconcat", "a playlist or a list of other files (concat)"), ("trunc.mp4", "truncated"),
             ("trunc_fast.mp4", "after frame"), ("trunc.mkv", "truncated video: frames end at"), ("zero.y4m", "no decodable frame"),
             ("huge.y4m", "outside the limits"), ("change.ts", "resolution changes at frame 10"),
             ("audio.m4a", "no video stream"), ("missing.mp4", "cannot open")]
    for src, msg in cases:
        for codec, ext in [("h264", "mp4"), ("ffv1", "mkv")]:
            out = "bad_%s.%s" % (os.path.splitext(src)[0], ext)
            p = run(TOOL, "transcode", src, out, codec, ok=False)
            check(p.returncode == 1 and "error:" in p.stderr and msg in p.stderr,
                  "%s: want an error with '%s', got rc %d: %s" % (src, msg, p.returncode, p.stderr.strip()))
            check(not leftovers(os.path.join(WORK, out)), "%s: nothing left under %s" % (src, out))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-f", "lavfi", "-i", "sine", "-t", "0.5",
           *sum([["-map", "1:a"] for _ in range(17)], []), "-map", "0:v", "-c:v", "libx264", "-c:a", "aac",
           "many_streams.mkv")
    p = run(TOOL, "rgbmd5", "many_streams.mkv", ok=False)
    check(p.returncode == 1 and "more than 16 streams" in p.stderr, "17 streams: " + p.stderr.strip())
    for args in [["a.mp4"], ["b.mkv", "--io"]]:
        p = run(TOOL, "rgbmd5", *args, "--interrupt", ok=False)
        check(p.returncode == 1 and "error: cancelled" in p.stderr, "interrupt %s: %s" % (args, p.stderr.strip()))
    for args, msg in [(["list.ffconcat", "--io"], "a playlist or a list of other files (concat)"),
                      (["a.mp4", "--formats", "matroska,webm"],
                       "(mov,mp4,m4a,3gp,3g2,mj2), not one of the accepted video containers (matroska,webm)")]:
        p = run(TOOL, "rgbmd5", *args, ok=False)
        check(p.returncode == 1 and msg in p.stderr, "%s: %s" % (args, p.stderr.strip()))
    p = run(TOOL, "rgbmd5", "b.mkv", "--formats", "matroska,webm", ok=False)
    check(p.returncode == 0, "whitelisted format is read: " + p.stderr.strip())
    p = run(TOOL, "abort", "aborted.mp4", ok=False)
    check(p.returncode == 0 and not leftovers(os.path.join(WORK, "aborted.mp4")), "abort leaves no file")


def test_memory_does_not_grow():
    """Peak RSS of a 10x longer transcode (with audio) stays within 4 MB (a leaked frame
    per frame would add 8 MB)."""
    rss = {}
    for secs in (2, 20):
        src = "long%d.mp4" % secs
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-f", "lavfi", "-i",
               "sine=frequency=500:sample_rate=48000", "-t", str(secs), "-c:v", "libx264", "-preset", "ultrafast",
               "-c:a", "aac", "-shortest", src)
        p = run(TOOL, "transcode", src, "out_" + src, "h264", ok=False)
        if not check(p.returncode == 0 and kv(p.stdout)["frames"] == str(25 * secs), src + ": " + p.stderr):
            return
        rss[secs] = int(kv(p.stdout)["peak_rss_kb"])
        if kv(p.stdout)["asan"] == "1":
            print("peak RSS check skipped under AddressSanitizer (LeakSanitizer covers leaks there)")
            return
    print("peak RSS: 50 frames %d kB, 500 frames %d kB" % (rss[2], rss[20]))
    check(rss[20] <= rss[2] + 4096, "memory grows with length: %s" % rss)


def test_chunks_real_video():
    """Reader -> chunker -> FFV1 writer on an H.264 video with real cuts (testsrc2, HD bars,
    a Mandelbrot zoom, an 8-frame colour scene, testsrc): the chunk list equals the Python
    reference run on the ffmpeg CLI's rgb24 frames, and every frame reaches the writer once,
    in order, with its timestamp."""
    import numpy as np
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
    import scene_ref
    parts = ["testsrc2=s=160x120:r=25:d=2", "smptehdbars=s=160x120:r=25:d=1",
             "mandelbrot=s=160x120:r=25,trim=duration=2", "rgbtestsrc=s=160x120:r=25:d=0.32",
             "testsrc=s=160x120:r=25:d=1.2"]
    graph = ";".join("%s,format=yuv420p,setsar=1[p%d]" % (src, i) for i, src in enumerate(parts))
    graph += ";" + "".join("[p%d]" % i for i in range(len(parts))) + "concat=n=%d:v=1:a=0[v];sine=d=7[s]" % len(parts)
    ffmpeg("-filter_complex", graph, "-map", "[v]", "-map", "[s]", "-c:v", "libx264", "-c:a", "aac", "-shortest",
           "cuts.mp4")
    p = run(TOOL, "chunks", "cuts.mp4", "cuts_out.mkv", ok=False)
    if not check(p.returncode == 0, "chunks: " + p.stderr.strip()):
        return
    got = [[int(x) for x in v.split(",")] for k, v in (l.split("=") for l in p.stdout.split()) if k == "chunk"]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", os.path.join(WORK, "cuts.mp4"), "-map", "0:v",
                          "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
                         capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 120, 160, 3)
    _, cuts, want = scene_ref.schedule(list(frames))
    want = [[a, b, int(c), int(d)] for a, b, c, d in want]
    print("real video: %d frames, cuts %s, %d chunks" % (len(frames), cuts, len(want)))
    check(len(cuts) >= 2, "the test video has cuts: %s" % cuts)
    check(got == want, "chunks on a real video: %s vs reference %s" % (got, want))
    check(run(TOOL, "rgbmd5", "cuts_out.mkv").stdout == run(TOOL, "rgbmd5", "cuts.mp4").stdout,
          "every frame written once, in order, unchanged")
    tin, tout = frame_times("cuts.mp4"), frame_times("cuts_out.mkv")
    check(len(tin) == len(tout) and all(abs((x - tin[0]) - (y - tout[0])) <= 1.5e-3 for x, y in zip(tin, tout)),
          "chunked output keeps the frame timing")
    check(packets_md5("cuts.mp4", "a") == packets_md5("cuts_out.mkv", "a"), "chunked output keeps the audio")


def test_corrupted_inputs():
    """Byte-flipped and chopped copies of the valid inputs: each run either decodes or fails
    with an "error:" line; never a crash, a sanitizer report, or a hang."""
    import random
    rnd = random.Random(11)
    bad = []
    for src in ["a_fast.mp4", "b.mkv", "c.y4m", "mjpeg.avi"]:
        data = open(os.path.join(WORK, src), "rb").read()
        for k in range(12):
            buf = bytearray(data)
            if k % 3 == 2:
                buf = buf[: rnd.randrange(16, len(buf))]
            for _ in range(rnd.choice([1, 8, 64])):
                pos = rnd.randrange(len(buf))
                buf[pos] = rnd.randrange(256)
            name = "fuzz_%d_%s" % (k, src)
            write_bytes(name, bytes(buf))
            try:
                p = subprocess.run([TOOL, "rgbmd5", name] + (["--io"] if k % 2 else []), cwd=WORK,
                                   capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                bad.append("%s: timeout" % name)
                continue
            if p.returncode not in (0, 1) or (p.returncode == 1 and "error:" not in p.stderr) \
                    or "Sanitizer" in p.stderr or "runtime error" in p.stderr:
                bad.append("%s: rc %d %s" % (name, p.returncode, p.stderr[-300:]))
    check(not bad, "corrupted inputs: %s" % bad)


def test_corrupted_ts_copy():
    """MPEG-TS with AAC whose 188-byte packets are shuffled or bit-flipped (as the daemon's
    fuzz test does): the copied audio packets get non-monotonic timestamps or broken AAC, and
    a corrupt stream can even add streams while it is demuxed. Each transcode must succeed
    (bad copied packets fixed up or dropped, as the ffmpeg CLI does) or fail as a decoding
    error; never "writing a ... packet failed" and never a sanitizer report."""
    import random
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-shortest", "-f", "mpegts", "small.ts")
    data = open(os.path.join(WORK, "small.ts"), "rb").read()
    rnd = random.Random(20261124)
    bad, repaired = [], 0
    for k in range(16):
        b = bytearray(data)
        if k % 2 == 0:  # shuffle a run of 40 transport packets
            pk = [bytes(b[i:i + 188]) for i in range(0, len(b) - len(b) % 188, 188)]
            j = rnd.randrange(len(pk))
            seg = pk[j:j + 40]
            rnd.shuffle(seg)
            pk[j:j + 40] = seg
            b = bytearray(b"".join(pk))
        else:  # bit flips
            for _ in range(rnd.randint(1, 200)):
                i = rnd.randrange(len(b))
                b[i] ^= 1 << rnd.randrange(8)
        name = "tsfuzz_%d.ts" % k
        write_bytes(name, bytes(b))
        for ext in ["ts", "mkv"]:
            out = "tsfuzz_%d_out.%s" % (k, ext)
            p = subprocess.run([TOOL, "transcode", name, out, "h264"], cwd=WORK, capture_output=True, text=True,
                               timeout=60)
            if "Sanitizer" in p.stderr or "runtime error" in p.stderr or p.returncode not in (0, 1) \
                    or "packet failed" in p.stderr or (p.returncode == 1 and "error:" not in p.stderr):
                bad.append("%s -> %s: rc %d %s" % (name, ext, p.returncode, p.stderr[-300:]))
            elif p.returncode == 0:
                r = kv(p.stdout)
                repaired += int(r["copied_fixed"]) + int(r["copied_dropped"])
    check(not bad, "corrupted MPEG-TS with copied audio: %s" % bad)
    check(repaired > 0, "corrupted MPEG-TS: some copied packets were fixed up or dropped (%d)" % repaired)


def main():
    make_inputs()
    test_info()
    test_decode_bit_exact()
    for src in ["a.mp4", "b.mkv", "c.y4m"]:
        test_transcode(src, "h264", "mp4")
        test_transcode(src, "ffv1", "mkv")
        test_transcode(src, "y4m", "y4m")
    test_transcode("b.mkv", "h264", "mkv")
    test_transcode("a.mp4", "h264", "mp4", lossless=True)
    test_custom_io()
    test_memory_does_not_grow()
    test_chunks_real_video()
    test_bad_inputs()
    test_corrupted_inputs()
    test_corrupted_ts_copy()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
