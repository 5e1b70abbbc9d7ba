"""Streaming acceptance (issue 7): `curl -T -` uploads an 8 s MPEG-TS clip (192 frames,
32x24) from a pipe that a feeder thread fills slowly (about 10 s for the whole clip), while a
second HTTP client reads GET /output concurrently. Asserted with timestamps:
  - the first output byte arrives BEFORE the feeder has even written the last input byte;
  - the output bytes received before that moment already decode to >= 1 frame (ffprobe);
  - curl really used chunked transfer encoding (its -v trace);
  - the streamed output is complete (192 frames, 128x96) and equals the stored file
    served after completion, and so does what a second reader joining mid-stream got;
  - the spool holds <id>.out.part while the job runs and <id>.out only once it succeeded
    (pipeline.h: rename on finish).
Tiny model."""
import os
import subprocess
import threading
import time

import harness as H

PACE_S = 10.0 * H.SLOWDOWN  # seconds over which the feeder writes the clip (x3 in sanitizer builds)


def body(t):
    d = H.Daemon(t.work, "stream", model="tiny", args=["--threads", "2"]).start()
    c = t.client(d)
    r = c.create_job({"output": {"container": "mpegts"}})
    jid = r.json()["id"]
    with open(H.fixture("small_long.ts"), "rb") as f:
        data = f.read()

    url = f"{d.url}/v1/jobs/{jid}/input"
    trace = os.path.join(t.work, "curl-trace.txt")
    curl = subprocess.Popen(["curl", "-sS", "-v", "-T", "-", "-H", "Content-Type: video/mp2t",
                             "-o", os.path.join(t.work, "curl-body.txt"),
                             "-w", "%{http_code} %{content_type}\n", url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(trace, "wb"))
    times = {}

    def feeder():
        piece = 2048
        n = (len(data) + piece - 1) // piece
        times["feed_start"] = time.time()
        for i in range(n):
            curl.stdin.write(data[i * piece:(i + 1) * piece])
            curl.stdin.flush()
            time.sleep(PACE_S / n)
        curl.stdin.close()
        times["feed_end"] = time.time()

    got = bytearray()
    marks = []  # (time, bytes so far)

    def reader():
        deadline = time.time() + 60
        while True:
            conn, resp = c.open_output(jid)
            if resp.status == 200:
                break
            body_ = resp.read()
            c.rec.add("GET", f"/v1/jobs/{jid}/output", resp.status, H._headers_dict(resp.msg), body_)
            conn.close()
            if time.time() > deadline:
                times["reader_error"] = f"{resp.status} {body_[:200]!r}"
                return
            time.sleep(0.05)
        while True:
            b = resp.read1(65536)
            if not b:
                break
            now = time.time()
            if "first_byte" not in times:
                times["first_byte"] = now
                times["spool_while_running"] = d.spool_files()
            got.extend(b)
            marks.append((now, len(got)))
        times["output_end"] = time.time()
        c.record_stream("GET", f"/v1/jobs/{jid}/output", resp, len(got))
        conn.close()

    late = {}

    def late_reader():
        # joins mid-stream: must still get the output from byte 0 (it equals the full file)
        r_, _ = c.read_output_when_ready(jid, timeout=60)
        late["r"] = r_

    tf = threading.Thread(target=feeder)
    tr = threading.Thread(target=reader)
    tf.start()
    time.sleep(0.2)
    tr.start()
    time.sleep(PACE_S * 0.6)
    tl = threading.Thread(target=late_reader)
    tl.start()
    tf.join()
    out = curl.stdout.read()
    curl.wait(timeout=60)
    times["curl_exit"] = time.time()
    tr.join(120)
    status_line = out.decode().strip()
    t.eq(status_line.split(" ")[0], "204", "curl -T - upload answered 204")
    st_, hd_ = H.curl_trace_response(trace)
    c.rec.add("PUT", f"/v1/jobs/{jid}/input", st_ or 0, hd_, open(os.path.join(t.work, "curl-body.txt"), "rb").read())
    tr_text = open(trace, "rb").read().decode("utf-8", "replace")
    t.check("> transfer-encoding: chunked" in tr_text.lower(), "curl sent Transfer-Encoding: chunked")
    t.check("reader_error" not in times, "output GET answered 200", times.get("reader_error"))

    t0 = times["feed_start"]
    rel = {k: round(v - t0, 3) for k, v in times.items() if isinstance(v, float)}
    H.log(f"timeline (s from the first input byte): {rel}")
    fb, fe = times.get("first_byte"), times["feed_end"]
    t.check(fb is not None and fb < fe, "first output byte arrived before the upload ended",
            f"first byte at {rel.get('first_byte')} s, upload ended at {rel['feed_end']} s")
    before = bytes(got[:max([n for (tm, n) in marks if tm < fe], default=0)])
    p = H.ffprobe_video(before, t.work) if before else {"frames": 0}
    H.log(f"{len(before)} output bytes before the upload ended -> {p}")
    t.check(p.get("frames", 0) >= 1, "output received before the upload ended holds >= 1 decodable frame",
            f"{len(before)} bytes, ffprobe {p}")

    j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=120)
    t.eq(j["state"], "succeeded", "job succeeded")
    p = H.ffprobe_video(bytes(got), t.work)
    t.eq((p.get("width"), p.get("height"), p.get("frames")), (128, 96, 192),
         "streamed output: 128x96, 192 frames")
    running = times.get("spool_while_running", [])
    t.check(f"{jid}.out.part" in running and f"{jid}.out" not in running,
            "while the job runs its output is <id>.out.part (no <id>.out yet)", running)
    done_files = d.spool_files()
    t.check(f"{jid}.out" in done_files and f"{jid}.out.part" not in done_files,
            "after success the output was renamed to <id>.out", done_files)
    full, _ = c.read_output(jid)
    t.eq(full.status, 200, "GET output after completion 200")
    t.check(full.body == bytes(got), "streamed output equals the stored output",
            f"streamed {len(got)} bytes, stored {len(full.body)} bytes")
    tl.join(60)
    lr = late.get("r")
    t.check(lr is not None and lr.status == 200 and lr.body == full.body,
            "a second reader joining mid-stream got the whole output from byte 0",
            f"{getattr(lr, 'status', None)}, {len(getattr(lr, 'body', b''))} vs {len(full.body)} bytes")
    c.delete(f"/v1/jobs/{jid}")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("streaming_curl"), body)
