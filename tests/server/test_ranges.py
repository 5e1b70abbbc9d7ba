"""Byte ranges of a completed output (issue 7: "serves byte ranges once stored"): the full
GET (200) is the reference; bytes=0-99, bytes=100-, bytes=-50, bytes=N-N (last byte) and a
range running past the end (clamped) answer 206 with exactly those bytes and a correct
Content-Range; bytes=len- answers 416 with Content-Range "bytes */len"; a malformed Range
is ignored (200, whole file, RFC 9110). Null model (x4 nearest neighbour)."""
import harness as H


def body(t):
    d = H.Daemon(t.work, "ranges", model="null").start()
    c = t.client(d)
    jid = c.create_job({"output": {"container": "matroska"}}).json()["id"]
    t.eq(c.put_input(jid, open(H.fixture("clip.mkv"), "rb").read(), content_type="video/x-matroska").status, 204,
         "upload 204")
    j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=90)
    t.eq(j["state"], "succeeded", "job succeeded")
    full = c.get(f"/v1/jobs/{jid}/output")
    t.eq(full.status, 200, "full GET 200")
    f = full.body
    n = len(f)
    t.check(n > 1000, "output has bytes", n)
    t.eq(full.headers.get("content-length"), str(n), "Content-Length of the stored output")
    t.check("bytes" in full.headers.get("accept-ranges", ""), "Accept-Ranges: bytes on a stored output",
            full.headers.get("accept-ranges"))
    cases = [("bytes=0-99", 0, 99), ("bytes=100-", 100, n - 1), ("bytes=-50", n - 50, n - 1),
             (f"bytes={n - 1}-{n - 1}", n - 1, n - 1), (f"bytes={n - 10}-{n + 1000}", n - 10, n - 1)]
    for rng, a, b in cases:
        r = c.get(f"/v1/jobs/{jid}/output", headers={"Range": rng})
        t.eq(r.status, 206, f"{rng}: 206")
        t.check(r.body == f[a:b + 1], f"{rng}: exactly bytes {a}-{b} of the full output",
                f"got {len(r.body)} bytes")
        t.eq(r.headers.get("content-range"), f"bytes {a}-{b}/{n}", f"{rng}: Content-Range")
        t.eq(r.headers.get("content-length"), str(b - a + 1), f"{rng}: Content-Length")
    r = c.get(f"/v1/jobs/{jid}/output", headers={"Range": f"bytes={n}-"})
    t.eq(r.status, 416, "bytes=len-: 416")
    t.eq(r.headers.get("content-range"), f"bytes */{n}", "416 carries Content-Range bytes */len")
    r = c.get(f"/v1/jobs/{jid}/output", headers={"Range": "pages=1-2"})
    t.check(r.status == 200 and r.body == f, "unknown range unit ignored: 200 with the whole output", r.status)
    # the stored output decodes: 48 frames at 4x
    p = H.ffprobe_video(f, t.work)
    t.eq((p.get("width"), p.get("height"), p.get("frames")), (256, 192, 48), "stored output 256x192, 48 frames")
    c.delete(f"/v1/jobs/{jid}")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("ranges"), body)
