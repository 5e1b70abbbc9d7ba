"""ffmpeg itself as the HTTP client (issue 7): `ffmpeg -re ... -f mpegts -method PUT
-chunked_post 1 http://.../input` streams at the source's real-time rate, (1) remuxing the
3 s MPEG-TS fixture and (2) encoding a live lavfi source; meanwhile ffmpeg also reads
GET /output over HTTP. Checks: ffmpeg exits 0, the job succeeds with the right frame count,
the output ffmpeg read is 128x96 (32x24 x4) with every frame. The GET responses ffmpeg got
are taken from its trace log (`header='...'` lines) and checked against the OpenAPI
document; ffmpeg 5.1 never reads the answer to its PUT, so that one comes from the daemon's
access log.
Tiny model."""
import os
import re
import subprocess
import time

import harness as H


def ffmpeg_responses(log_path):
    """[(status, headers)] of the HTTP responses in an ffmpeg -loglevel debug log."""
    out, cur = [], None
    for line in open(log_path, "rb").read().decode("utf-8", "replace").splitlines():
        m = re.search(r"header='(.*)'$", line)
        if not m:
            continue
        h = m.group(1)
        if h.startswith("HTTP/"):
            cur = (int(h.split()[1]), {})
            out.append(cur)
        elif h == "" or cur is None:
            continue
        elif ":" in h:
            k, v = h.split(":", 1)
            cur[1][k.strip().lower()] = v.strip()
    return out


def body(t):
    d = H.Daemon(t.work, "ffmpeg", model="tiny", args=["--threads", "2"]).start()
    c = t.client(d)
    runs = [
        ("remux small.ts", ["-re", "-i", H.fixture("small.ts"), "-c", "copy"], 48),
        ("live lavfi source", ["-re", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24", "-t", "3",
                               "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"], 72),
    ]
    for label, src, frames in runs:
        jid = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
        up_log = os.path.join(t.work, f"ffmpeg-up-{frames}.log")
        dn_log = os.path.join(t.work, f"ffmpeg-down-{frames}.log")
        out_path = os.path.join(t.work, f"ffmpeg-out-{frames}.ts")
        up = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "debug", "-y", *src, "-f", "mpegts",
                               "-method", "PUT", "-chunked_post", "1", "-content_type", "video/mp2t",
                               f"{d.url}/v1/jobs/{jid}/input"],
                              stdout=subprocess.DEVNULL, stderr=open(up_log, "wb"))
        # ffmpeg as the reader of the output, started while the upload runs; retried until
        # the job has output (a GET before the first output byte may answer 200 and wait).
        time.sleep(1.0)
        dn = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "trace", "-y", "-i",
                               f"{d.url}/v1/jobs/{jid}/output", "-c", "copy", "-f", "mpegts", out_path],
                              stdout=subprocess.DEVNULL, stderr=open(dn_log, "wb"))
        rc_up = up.wait(timeout=120)
        t.eq(rc_up, 0, f"{label}: ffmpeg PUT client exit status")
        rc_dn = dn.wait(timeout=120)
        t.eq(rc_dn, 0, f"{label}: ffmpeg GET output client exit status")
        # ffmpeg 5.1 does not read the response of a chunked PUT (it closes after the last
        # chunk), so the daemon's access log says what the PUT got.
        m = re.findall(rf'"msg":"PUT /v1/jobs/{re.escape(jid)}/input (\d+) ', d.log_text())
        t.eq(m, ["204"], f"{label}: the daemon answered ffmpeg's PUT with 204 (access log)")
        resp = ffmpeg_responses(dn_log)
        t.check(resp and resp[-1][0] == 200, f"{label}: ffmpeg's GET output got 200", resp)
        for st, hd in resp:
            c.rec.add("GET", f"/v1/jobs/{jid}/output", st, hd, None, body_omitted=st == 200)
        j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=120)
        t.eq(j["state"], "succeeded", f"{label}: job succeeded")
        t.eq(j.get("frames_out"), frames, f"{label}: frames_out")
        p = H.ffprobe_video(out_path) if os.path.exists(out_path) else {}
        t.eq((p.get("width"), p.get("height"), p.get("frames")), (128, 96, frames),
             f"{label}: output read by ffmpeg: 128x96, {frames} frames")
        c.delete(f"/v1/jobs/{jid}")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("ffmpeg_client"), body)
