"""Frame previews, the job list and the web page's static files (issue 20, items 2-3),
against the real daemon on the tiny model (x4). Every response is checked against
proto/openapi.yaml at the end.

Previews (GET /v1/jobs/{id}/preview):
  - before any input: frame 0 -> 409 conflict + Retry-After (it will be kept);
  - after the job: frame 0 lr and sr are PNGs, sr exactly 4x lr in both dimensions (read
    from the PNG header), Cache-Control private;
  - a frame asked for before the decoder reaches it is pinned (409 now) and served after;
    a frame nobody asked for is 404 "not kept"; past the end is 404 "out of range";
  - a restart keeps the job, drops its previews (404, files swept, not counted as orphans);
  - bad numbers: frame=-1, frame=1e3, frame= (empty) -> 400; frame past 2^63 -> 404 (no
    overflow, no wrap); side=xx -> 400; an unknown parameter -> 400;
  - another tenant's job -> 404 like an unknown job; the job deleted -> 404.
List (GET /v1/jobs): two tenants; each sees only its own jobs, newest first; limit=1 pages
through with `next` until null and meets every job once; an admin sees all; bad limit /
before -> 400; no token -> 401.
Web: / is text/html with a CSP that forbids inline script, /ui/app.js, /ui/app.css,
/ui/tus.min.js (the npm bundle, not the stub) with their types, ETag -> 304, no token needed
even with auth on, unknown file 404, the whole page under 200 KB, rate limited like the API;
web_ui = off -> 404 (flag and env var)."""
import os
import struct

import harness as H


def png_size(b):
    assert b[:8] == b"\x89PNG\r\n\x1a\n", b[:16]
    w, h = struct.unpack(">II", b[16:24])
    return w, h


def body(t):
    clip = open(H.fixture("small.ts"), "rb").read()  # 32x24, 48 frames
    tokens = os.path.join(t.work, "tokens")
    with open(tokens, "w") as f:
        f.write("tokA acme\ntokB beta\ntokAdm ops admin\n")
    d = H.Daemon(t.work, "P", args=["--tokens-file", tokens]).start()
    a, b, adm, anon = (t.client(d, token=x) for x in ("tokA", "tokB", "tokAdm", None))

    # ---- previews ----
    jid = a.create_job({"output": {"container": "matroska"}}).json()["id"]
    r = a.get(f"/v1/jobs/{jid}/preview")
    t.eq((r.status, r.code()), (409, "conflict"), "preview before input: 409 conflict")
    t.check(r.headers.get("retry-after") == "1", "409 carries Retry-After: 1", r.headers)
    r = a.get(f"/v1/jobs/{jid}/preview?frame=7&side=lr")
    t.eq(r.status, 409, "frame 7 asked for before it is decoded: 409 (pinned)")
    r = a.get(f"/v1/jobs/{jid}/preview?frame=9")
    t.eq(r.status, 404, "a second pin is refused: 404 not kept (only one pinned frame per job)")
    t.eq(a.put_input(jid, clip).status, 204, "upload")
    j = a.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=120 * H.WAIT_SCALE)
    t.eq(j["state"], "succeeded", "job succeeded")
    for frame in (0, 7):
        lr = a.get(f"/v1/jobs/{jid}/preview?frame={frame}&side=lr")
        sr = a.get(f"/v1/jobs/{jid}/preview?frame={frame}&side=sr")
        t.eq((lr.status, lr.headers.get("content-type")), (200, "image/png"), f"frame {frame} lr: 200 image/png")
        t.eq((sr.status, sr.headers.get("content-type")), (200, "image/png"), f"frame {frame} sr: 200 image/png")
        if lr.status == sr.status == 200:
            (lw, lh), (sw, sh) = png_size(lr.body), png_size(sr.body)
            t.eq((lw, lh), (32, 24), f"frame {frame} lr is the input size")
            t.eq((sw, sh), (4 * lw, 4 * lh), f"frame {frame} sr is 4x lr")
            t.check("private" in sr.headers.get("cache-control", ""), "previews are Cache-Control private", sr.headers)
    d0 = a.get(f"/v1/jobs/{jid}/preview").body
    t.check(d0 == a.get(f"/v1/jobs/{jid}/preview?frame=0&side=sr").body, "default = frame 0, side sr")
    t.check(d0 != a.get(f"/v1/jobs/{jid}/preview?frame=7").body, "frame 7 differs from frame 0 (testsrc2 moves)")
    r = a.get(f"/v1/jobs/{jid}/preview?frame=3")
    t.eq((r.status, r.code()), (404, "not_found"), "frame 3 (never asked for): 404")
    t.check("not kept" in r.body.decode(), "... says it was not kept", r)
    r = a.get(f"/v1/jobs/{jid}/preview?frame=48")
    t.check(r.status == 404 and "out of range" in r.body.decode() and "48 frames" in r.body.decode(),
            "frame 48 of 48: 404 out of range naming the count", r)
    for q, want in (("frame=-1", 400), ("frame=1e3", 400), ("frame=", 400), ("frame=0x1", 400),
                    ("frame=%2B1", 400), ("frame=99999999999999999999999", 404),
                    ("frame=9223372036854775807", 404), ("side=xx", 400), ("side=", 400), ("size=3", 400)):
        r = a.get(f"/v1/jobs/{jid}/preview?{q}")
        t.eq(r.status, want, f"preview?{q} -> {want}")
    r = b.get(f"/v1/jobs/{jid}/preview")
    t.eq((r.status, r.code()), (404, "not_found"), "another tenant: 404")
    t.eq(anon.get(f"/v1/jobs/{jid}/preview").status, 401, "no token: 401")

    # ---- list ----
    mine = [jid] + [a.create_job({}).json()["id"] for _ in range(3)]
    theirs = [b.create_job({}).json()["id"] for _ in range(2)]
    r = a.get("/v1/jobs")
    t.eq(r.status, 200, "GET /v1/jobs")
    ids = [x["id"] for x in r.json()["jobs"]]
    t.eq(ids, list(reversed(mine)), "acme sees its 4 jobs, newest first, nothing of beta's")
    t.eq(r.json()["next"], None, "one page: next is null")
    t.check(r.headers.get("cache-control") == "no-store", "list is no-store", r.headers)
    seen, cursor, pages = [], None, 0
    while True:
        r = a.get("/v1/jobs?limit=1" + (f"&before={cursor}" if cursor else ""))
        page = r.json()
        seen += [x["id"] for x in page["jobs"]]
        pages += 1
        cursor = page["next"]
        if cursor is None or pages > 10:
            break
    t.eq(seen, list(reversed(mine)), "limit=1 pages through every job once, in order")
    t.eq(pages, 4, "4 pages of 1 (the last one's next is null)")
    ids_b = [x["id"] for x in b.get("/v1/jobs").json()["jobs"]]
    t.eq(ids_b, list(reversed(theirs)), "beta sees only its 2 jobs")
    ids_all = {x["id"] for x in adm.get("/v1/jobs?limit=100").json()["jobs"]}
    t.eq(ids_all, set(mine + theirs), "admin sees every job")
    for q in ("limit=0", "limit=101", "limit=abc", "limit=-1", "limit=99999999999999999999", "before=x1"):
        t.eq(a.get(f"/v1/jobs?{q}").status, 400, f"GET /v1/jobs?{q} -> 400")
    t.eq(a.get("/v1/jobs?before=99999999999999999999").status, 200, "a cursor past 2^63 saturates: 200 (every job)")
    t.eq(anon.get("/v1/jobs").status, 401, "GET /v1/jobs without token: 401")
    t.eq(a.delete(f"/v1/jobs/{mine[1]}").status, 204, "delete one job")
    ids = [x["id"] for x in a.get("/v1/jobs").json()["jobs"]]
    t.check(mine[1] not in ids and len(ids) == 3, "a deleted job is not listed", ids)
    t.eq(a.get(f"/v1/jobs/{jid}/preview").status, 200, "still 200 for the kept job")
    t.eq(a.delete(f"/v1/jobs/{jid}").status, 204, "delete the previewed job")
    t.eq(a.get(f"/v1/jobs/{jid}/preview").status, 404, "preview of a deleted job: 404")
    t.check(not [f for f in d.spool_files() if jid in f], "the deleted job's preview files are gone",
            [f for f in d.spool_files() if jid in f])

    # ---- a restart: the job and its output come back, its previews do not ----
    k = a.create_job({}).json()["id"]
    a.put_input(k, clip)
    t.eq(a.wait_state(k, ("succeeded", "failed", "cancelled"), timeout=120 * H.WAIT_SCALE)["state"], "succeeded",
         "job K succeeded")
    t.eq(a.get(f"/v1/jobs/{k}/preview").status, 200, "K: preview before the restart")
    t.check(any(".pv0.sr.png" in f for f in d.spool_files()), "K's preview is a spool file", d.spool_files())
    d.stop()
    d = H.Daemon(t.work, "P2", args=["--tokens-file", tokens], spool=d.spool).start(keep_spool=True)
    a, anon = t.client(d, token="tokA"), t.client(d)
    t.eq(a.get(f"/v1/jobs/{k}").json()["state"], "succeeded", "K survives the restart")
    r = a.get(f"/v1/jobs/{k}/preview")
    t.check(r.status == 404 and "restart" in r.body.decode(), "K's preview after the restart: 404 naming the restart", r)
    t.check(not any(".pv" in f for f in d.spool_files()), "the restart swept the preview files", d.spool_files())
    t.eq(a.metrics().get("infvsrd_spool_orphans_removed"), 0.0, "previews are not counted as orphans")

    # ---- web page ----
    total = 0
    for path, ctype in (("/", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css"),
                        ("/ui/tus.min.js", "text/javascript")):
        r = anon.get(path)  # no token: the page's files are public even with auth on
        t.eq(r.status, 200, f"GET {path} without a token: 200")
        t.check(r.headers.get("content-type", "").startswith(ctype + ";"), f"{path} is {ctype}", r.headers)
        csp = r.headers.get("content-security-policy", "")
        t.check("script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp,
                f"{path} has a strict CSP", csp)
        t.eq(r.headers.get("x-content-type-options"), "nosniff", f"{path} nosniff")
        etag = r.headers.get("etag", "")
        r2 = anon.get(path, headers={"If-None-Match": etag})
        t.check(etag and r2.status == 304 and not r2.body, f"{path}: If-None-Match -> 304", r2)
        total += len(r.body)
    t.check(b"tus" in anon.get("/ui/tus.min.js").body and len(anon.get("/ui/tus.min.js").body) > 20000,
            "tus.min.js is the npm bundle (not the build's stub)")
    t.check(b"<script>" not in anon.get("/").body, "no inline script in the page")
    H.log(f"  page weight: {total} bytes uncompressed (4 files)")
    t.check(total < 200 * 1024, "the page's 4 files weigh under 200 KB", total)
    t.eq(anon.get("/ui/nope.js").status, 404, "unknown file: 404")
    t.eq(anon.get("/ui/").status, 404, "/ui/: 404")
    t.eq(anon.request("POST", "/", body=b"").status, 405, "POST /: 405")

    off = H.Daemon(t.work, "off", model="null", args=["--web-ui", "off"]).start()
    t.eq(t.client(off).get("/").status, 404, "--web-ui off: / -> 404")
    # the page's files count against max_requests_per_s (1/s, burst 1): 10 requests in a row
    # cannot all pass unless they take 10 s
    rl = H.Daemon(t.work, "rl", model="null", args=["--max-requests-per-s", "1", "--request-burst", "1"]).start()
    sts = [t.client(rl).get("/ui/app.css").status for _ in range(10)]
    t.check(sts[0] == 200 and 429 in sts, "the page's files are rate limited like API requests", sts)
    off_env = H.Daemon(t.work, "offenv", model="null", env={"INFVSR_WEB_UI": "off"}).start()
    t.eq(t.client(off_env).get("/ui/app.js").status, 404, "INFVSR_WEB_UI=off: /ui/app.js -> 404")


if __name__ == "__main__":
    H.run_main(H.Suite("preview_list_web"), body)
