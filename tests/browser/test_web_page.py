"""The web page in headless Chromium against the real daemon on the tiny model (issue 20
acceptance). MODE (argv[1]):

basic   no auth. A generated clip (ffmpeg testsrc2, 32x24, 24 frames, MPEG-TS) is chosen in
        the page's file field and upscaled through the page (tus upload, SSE progress): the
        status reaches Done, the upload shows 100 %, the before/after images load with the
        after image exactly 4x the before in both sides, the slider moves the split by
        keyboard, the job is listed, the output downloaded through the page's link has 24
        frames at 128x96 (ffprobe) and plays (video metadata loads). Page weight and load
        time on loopback are measured in the browser (Navigation/Resource Timing) and must
        be under 200 KB and 1 s (cold loads in fresh browser contexts: up to 3 tries, so a
        machine busy with other tests does not fail it; each try is printed); a screenshot
        goes to the test's folder.
resume  auth on (the token typed into the page's field). The page is loaded through a proxy
        that cuts the tus PATCH connection after 40 % of the clip: the page's tus-js-client
        resumes from the server's offset and the job still completes with every frame.

Every API response the page received is checked against proto/openapi.yaml. If Chromium
cannot start here, the test exits 77 (ctest: skipped) saying why."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.environ.get("SERVER_SRC", os.path.join(os.path.dirname(__file__), "..", "server")))
import harness as H  # noqa: E402

MODE = sys.argv[1] if len(sys.argv) > 1 else "basic"
BROWSER_NODE_MODULES = os.environ.get("BROWSER_NODE_MODULES", "")
SKIP = 77


def make_clip(work):
    path = os.path.join(work, "clip.ts")
    # noise on top of testsrc2 so the clip has some bytes to cut in the middle of (~100 KB)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24",
                    "-vf", "noise=alls=60:allf=t", "-frames:v", "24", "-c:v", "libx264", "-qp", "4",
                    "-pix_fmt", "yuv420p", "-f", "mpegts", path], check=True, timeout=120)
    return path


def body(t):
    import shutil
    if not shutil.which("chromium") and not os.environ.get("CHROMIUM"):
        print("SKIP: Debian's chromium is not installed (deploy/install-deps.sh installs it)")
        sys.exit(SKIP)
    clip = make_clip(t.work)
    want = H.ffprobe_video(clip)
    t.eq(want["frames"], 24, "the generated clip has 24 frames")
    args, token = [], None
    if MODE == "resume":
        tokens = os.path.join(t.work, "tokens")
        with open(tokens, "w") as f:
            f.write("tokWeb web\n")
        args, token = ["--tokens-file", tokens], "tokWeb"
    d = H.Daemon(t.work, MODE, args=args).start()
    out = os.path.join(t.work, "page")
    env = dict(os.environ, NODE_PATH=BROWSER_NODE_MODULES,
               PAGE_DEADLINE_MS=str(int(300000 * H.SLOWDOWN)))
    cmd = ["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "page_test.mjs"), MODE, d.url, clip, out]
    if token:
        cmd.append(token)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600 * H.SLOWDOWN)
    sys.stderr.write(p.stderr[-4000:])
    line = (p.stdout.strip().splitlines() or ["{}"])[-1]
    try:
        r = json.loads(line)
    except ValueError:
        r = {"error": p.stdout[-2000:]}
    if p.returncode == 2 and r.get("skip"):
        print(f"SKIP: {r.get('error')}")
        sys.exit(SKIP)
    H.log(json.dumps({k: v for k, v in r.items() if k != "requests"}, indent=1))
    t.check(p.returncode == 0 and r.get("ok"), "the page test ran to the end", r.get("error"))
    t.check(str(r.get("status", "")).startswith("Done: 24 frames"), "the page says Done with 24 frames", r.get("status"))
    t.check("100 %" in str(r.get("upload_text")), "upload progress reached 100 %", r.get("upload_text"))
    t.check(str(r.get("frames_text", "")).startswith("24 / 24 frames"), "frame progress 24 / 24", r.get("frames_text"))
    imgs = r.get("images") or [[0, 0], [0, 0]]
    t.eq(imgs[0], [32, 24], "the before image is the input frame (32x24)")
    t.eq(imgs[1], [imgs[0][0] * 4, imgs[0][1] * 4], "the after image is 4x the before image")
    t.check(r.get("clip_at_home") != r.get("clip_at_end") and "0%" in str(r.get("clip_at_home")),
            "the slider moves the split with Home/End", (r.get("clip_at_home"), r.get("clip_at_end")))
    t.check(r.get("listed"), "the job is listed in the page's job table")
    dl = H.ffprobe_video(r["download"]) if r.get("download") else {"frames": 0}
    t.eq((dl.get("frames"), dl.get("width"), dl.get("height")), (24, 128, 96),
         "the downloaded output has 24 frames at 128x96 (ffprobe)")
    t.check(r.get("video_ready") is True, "the output plays in the page (video metadata loaded)", r.get("video_ready"))
    t.check(not r.get("console_errors"), "no console errors on the page", r.get("console_errors"))
    t.eq(r.get("first_tab_focus"), "token", "keyboard: the first Tab reaches the labelled token field")
    nav = r.get("nav") or {}
    H.log(f"  page: {nav.get('files')} files, {nav.get('transfer_bytes')} bytes transferred, "
          f"load event at {nav.get('load_ms', 0):.0f} ms; cold loads tried: "
          f"{[round(x.get('load_ms', 0)) for x in r.get('loads') or []]} ms")
    t.check(0 < nav.get("transfer_bytes", 0) < 200 * 1024, "the page weighs under 200 KB transferred",
            nav.get("transfer_bytes"))
    t.check(0 < nav.get("load_ms", 1e9) < 1000, "the page loads in under 1 s on loopback", nav.get("load_ms"))
    if MODE == "resume":
        t.check(r.get("cut") is True, "the proxy cut the PATCH connection mid-upload", r.get("cut_at"))
        reqs = r.get("requests", [])
        t.check(any(x.startswith("HEAD /v1/uploads/") for x in reqs) and
                sum(x.startswith("PATCH /v1/uploads/") for x in reqs) >= 1,
                "tus-js-client asked the offset (HEAD) and PATCHed again", reqs)
        offs = [o for o in (r.get("patch_offsets") or []) if o]
        t.check(offs and offs[-1] > 0 and offs[-1] < r.get("clip_bytes", 0),
                "a PATCH after the cut started from the server's offset, not from 0", r.get("patch_offsets"))
    shot = r.get("screenshot")
    t.check(shot and os.path.getsize(shot) > 1000, "a screenshot was written to the build folder", shot)
    # every API response the page got, against the OpenAPI document
    t.rec.path = os.path.join(out, "responses.jsonl")


if __name__ == "__main__":
    H.run_main(H.Suite(f"web_page_{MODE}"), body)
