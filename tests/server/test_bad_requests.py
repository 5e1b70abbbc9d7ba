"""Bad-request catalogue (issue 7 acceptance): every case gets the right status AND error code
(proto/errors.json), a JSON error body whose request_id equals the X-Request-Id header, and
leaves no state behind: after the catalogue (and DELETE of the jobs the test created itself)
the jobs gauges are 0 and the spool directory is empty; a failed create under an
Idempotency-Key leaves nothing under that key. Null model (the catalogue tests the
server, not the network; frame limits and decoding are the same code).

Daemon D: defaults, except max_upload_bytes 400000.
Daemon L: bearer tokens (tokens_file), max_frame_pixels 2000 (the 64x48 clips are too big),
          max_active_jobs_per_worker 1 + max_queued_jobs 1 (admission limit on jobs with
          input -> 503), max_awaiting_jobs_per_tenant 2 (jobs without input -> 429 for that
          tenant only).
The printed table (case | expected | got) is the catalogue."""
import os
import time

import harness as H

ID_UNKNOWN = "local.AAAAAAAAAAAAAAAAAAAAAA"
TOKEN = "t0k3n-for-tests-0123456789"


class Catalogue:
    def __init__(self, t):
        self.t = t
        self.rows = []

    def expect(self, name, r, status, code, extra=None):
        """r: harness.Response or (status, headers, body) from raw_request."""
        if isinstance(r, tuple):
            st, hd, body = r
            r = H.Response(st, hd, body, 0)
        got_code = r.code()
        ok = r.status == status and (code is None or got_code == code)
        detail = f"expected {status} {code or ''}, got {r.status} {got_code or ''} {r.body[:200]!r}"
        if ok and code is not None:
            rid = r.headers.get("x-request-id")
            try:
                brid = r.json()["error"].get("request_id")
            except Exception:
                brid = None
            if brid is not None and brid != rid:
                ok, detail = False, f"body request_id {brid!r} != X-Request-Id {rid!r}"
        if ok and extra:
            bad = extra(r)
            if bad:
                ok, detail = False, bad
        self.rows.append((name, f"{status} {code or ''}".strip(), f"{r.status} {got_code or ''}".strip(), ok))
        self.t.check(ok, f"[{len(self.rows):2d}] {name}", detail)
        return r

    def table(self):
        H.log("\n| # | case | expected | got | |\n|---|---|---|---|---|")
        for i, (n, e, g, ok) in enumerate(self.rows, 1):
            H.log(f"| {i} | {n} | {e} | {g} | {'ok' if ok else 'FAIL'} |")


def raw(port, head, body=b""):
    return H.raw_request(port, head.replace("\n", "\r\n").encode() + body)


def tus_hdr(jid=None, length=None, version="1.0.0"):
    h = {}
    if version:
        h["Tus-Resumable"] = version
    if length is not None:
        h["Upload-Length"] = str(length)
    if jid is not None:
        h["Upload-Metadata"] = f"job_id {H.b64(jid)},filename {H.b64('x.ts')}"
    return h


def wait_terminal(c, jid, timeout=60):
    return c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=timeout)


def video_rejected(c, cat, name, jid, data, content_type="video/mp2t"):
    """Garbage / too-large video: the PUT answers 422 unprocessable_video when the decoder
    rejects the stream during the upload; a PUT that completed (204) before the decoder
    looked is accepted only if the job then fails with error.code unprocessable_video."""
    r = c.put_input(jid, data, content_type=content_type, case=name)
    j = wait_terminal(c, jid)
    e = j.get("error") or {}
    jcode = e.get("code") or (e.get("error") or {}).get("code")
    if r.status == 204:
        r = H.Response(422 if (j["state"], jcode) == ("failed", "unprocessable_video") else 204,
                       r.headers, b'{"error":{"code":"%s"}}' % (jcode or "none").encode(), 0)
    cat.expect(name + " (PUT status, or job error after 204)", r, 422, "unprocessable_video")
    cat.t.eq((j["state"], jcode), ("failed", "unprocessable_video"), f"{name}: job failed with unprocessable_video")


def body(t):
    cat = Catalogue(t)
    d = H.Daemon(t.work, "D", model="null", args=["--max-upload-bytes", "400000"]).start()
    c = t.client(d)
    port = d.port
    clip = open(H.fixture("clip.ts"), "rb").read()
    mine = []  # jobs this test created (deleted at the end)

    def job(spec=None):
        jid = c.create_job(spec or {}).json()["id"]
        mine.append(jid)
        return jid

    J = "application/json"
    # ---- POST /v1/jobs ----------------------------------------------------------------
    post = lambda body_, ct=J, **kw: c.request("POST", "/v1/jobs", body=body_, headers={"Content-Type": ct} if ct else {}, **kw)
    cat.expect("invalid JSON", post(b'{"scale": 4,'), 400, "bad_request")
    cat.expect("JSON array instead of object", post(b"[1,2]"), 400, "bad_request")
    cat.expect("empty body", post(b""), 400, "bad_request")
    cat.expect("invalid UTF-8 in JSON", post(b'{"model": "\xff\xfe"}'), 400, "bad_request")
    cat.expect("unknown top-level field", post(b'{"colour": 1}'), 400, "unknown_field")
    cat.expect("unknown nested field", post(b'{"output": {"bitrate": 5}}'), 400, "unknown_field")
    cat.expect("wrong type: scale string", post(b'{"scale": "4"}'), 400, "bad_request")
    cat.expect("wrong type: copy_audio string", post(b'{"output": {"copy_audio": "yes"}}'), 400, "bad_request")
    cat.expect("out of range: scale 9", post(b'{"scale": 9}'), 400, "bad_request")
    cat.expect("out of range: crf 52", post(b'{"output": {"crf": 52}}'), 400, "bad_request")
    cat.expect("bad enum: container avi", post(b'{"output": {"container": "avi"}}'), 400, "bad_request")
    cat.expect("impossible combination: ffv1 in mpegts", post(b'{"output": {"container": "mpegts", "codec": "ffv1"}}'),
               400, "bad_request")
    cat.expect("wrong Content-Type text/plain", post(b"{}", ct="text/plain"), 415, "unsupported_media_type")
    cat.expect("missing Content-Type", post(b"{}", ct=None), 415, "unsupported_media_type")
    huge = b'{"model": "' + b"x" * 100_000 + b'"}'
    cat.expect("JSON body 100 KB > max_json_bytes (Content-Length)", post(huge), 413, "payload_too_large")
    r = raw(port, f"POST /v1/jobs HTTP/1.1\nHost: x\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
                  f"Connection: close\n\n",
            b"".join(b"%x\r\n%s\r\n" % (len(huge[i:i + 8192]), huge[i:i + 8192]) for i in range(0, len(huge), 8192))
            + b"0\r\n\r\n")
    c.rec.add("POST", "/v1/jobs", r[0] or 0, r[1], r[2], case="chunked huge JSON")
    cat.expect("JSON body 100 KB > max_json_bytes (chunked)", r, 413, "payload_too_large")
    r = raw(port, "POST /v1/jobs HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 2\n"
                  "Transfer-Encoding: chunked\nConnection: close\n\n", b"2\r\n{}\r\n0\r\n\r\n")
    c.rec.add("POST", "/v1/jobs", r[0] or 0, r[1], r[2], case="CL+TE")
    cat.expect("both Content-Length and Transfer-Encoding", r, 400, "bad_request")
    r = raw(port, "GET /v1/jobs/" + ID_UNKNOWN + " HTTP/1.1\nHost: x\nX-Big: " + "a" * 300_000 + "\nConnection: close\n\n")
    c.rec.add("GET", f"/v1/jobs/{ID_UNKNOWN}", r[0] or 0, r[1], r[2], case="huge header", mhd=True)
    cat.expect("300 KB request header (> connection_memory)", r, 431, None)
    r = raw(port, "GET /v1/jobs/" + "a" * 300_000 + " HTTP/1.1\nHost: x\nConnection: close\n\n")
    c.rec.add("GET", "/v1/jobs/aaaa", r[0] or 0, r[1], r[2], case="huge URI", mhd=True)
    cat.expect("300 KB request target (> connection_memory)", r, 414, None)
    r = raw(port, "POST /v1/jobs HTTP/1.1\nHost: x\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
                  "Connection: close\n\n", b"zz\r\n{}\r\n0\r\n\r\n")
    c.rec.add("POST", "/v1/jobs", r[0] or 0, r[1], r[2], case="bad chunk size", mhd=True)
    cat.expect("malformed chunk size in a chunked body", r, 400, None)
    r = raw(port, "GET /healthz HTTP/1.1\nConnection: close\n\n")
    c.rec.add("GET", "/healthz", r[0] or 0, r[1], r[2], case="no Host", mhd=True)
    cat.expect("HTTP/1.1 request without Host (RFC 9112 3.2: MUST 400)", r, 400, None)
    cat.expect("Idempotency-Key with bad characters",
               c.create_job({}, headers={"Idempotency-Key": "no spaces/allowed"}, expect=None), 400, "bad_request")
    # a failed create under a key leaves nothing under that key
    c.request("POST", "/v1/jobs", body=b"{bad", headers={"Content-Type": J, "Idempotency-Key": "cat-key-1"})
    r = c.create_job({}, headers={"Idempotency-Key": "cat-key-1"}, expect=None)
    t.eq(r.status, 201, "failed create under Idempotency-Key stored nothing: the next create with the key is new (201)")
    if r.status in (200, 201):
        mine.append(r.json()["id"])

    # ---- unknown ids, routes, methods ----------------------------------------------------
    cat.expect("GET unknown job", c.get(f"/v1/jobs/{ID_UNKNOWN}"), 404, "not_found")
    cat.expect("DELETE unknown job", c.delete(f"/v1/jobs/{ID_UNKNOWN}"), 404, "not_found")
    cat.expect("PUT input of unknown job", c.put_input(ID_UNKNOWN, b"abc"), 404, "not_found")
    cat.expect("GET output of unknown job", c.get(f"/v1/jobs/{ID_UNKNOWN}/output"), 404, "not_found")
    cat.expect("GET events of unknown job", c.get(f"/v1/jobs/{ID_UNKNOWN}/events"), 404, "not_found")
    cat.expect("malformed job id (no instance prefix)", c.get("/v1/jobs/nodot"), 404, "not_found")
    cat.expect("unknown route", c.get("/v1/nothing"), 404, "not_found")
    allow = lambda r: None if r.headers.get("allow") else "no Allow header"
    cat.expect("PATCH /v1/jobs (wrong method)", c.request("PATCH", "/v1/jobs", body=b"{}", headers={"Content-Type": J}),
               405, "method_not_allowed", allow)
    jid = job()
    cat.expect("PUT /v1/jobs/{id} (wrong method)", c.request("PUT", f"/v1/jobs/{jid}", body=b"{}"), 405,
               "method_not_allowed", allow)
    cat.expect("POST /v1/jobs/{id}/output (wrong method)", c.request("POST", f"/v1/jobs/{jid}/output", body=b""), 405,
               "method_not_allowed", allow)
    cat.expect("POST /healthz (wrong method)", c.request("POST", "/healthz", body=b""), 405, "method_not_allowed", allow)

    # ---- PUT input -------------------------------------------------------------------
    cat.expect("PUT input with Content-Type application/json", c.put_input(jid, b"{}", content_type=J), 415,
               "unsupported_media_type")
    r = raw(port, f"PUT /v1/jobs/{jid}/input HTTP/1.1\nHost: x\nContent-Type: video/mp2t\nContent-Length: 500000\n"
                  f"Connection: close\n\n", clip[:1000])
    c.rec.add("PUT", f"/v1/jobs/{jid}/input", r[0] or 0, r[1], r[2], case="CL over limit")
    cat.expect("PUT Content-Length 500000 > max_upload_bytes 400000", r, 413, "payload_too_large")
    jid2 = job()
    big = open(H.fixture("long.ts"), "rb").read() * 3  # 426 KB of valid MPEG-TS, no length given
    cat.expect("chunked PUT growing past max_upload_bytes",
               c.put_input(jid2, big, chunked=True, chunk_size=32768), 413, "payload_too_large")
    jid3 = job()
    t.eq(c.put_input(jid3, clip).status, 204, "first upload 204")
    cat.expect("second PUT to the same job", c.put_input(jid3, clip), 409, "conflict")
    j3 = wait_terminal(c, jid3)
    t.eq(j3["state"], "succeeded", "the job of the rejected second upload still succeeds")
    out = c.get(f"/v1/jobs/{jid3}/output").body
    cat.expect("Range beyond the end of a completed output",
               c.get(f"/v1/jobs/{jid3}/output", headers={"Range": f"bytes={len(out) + 10}-"}), 416, None,
               lambda r: None if r.headers.get("content-range") == f"bytes */{len(out)}"
               else f"Content-Range {r.headers.get('content-range')!r}, expected 'bytes */{len(out)}'")
    cat.expect("tus creation for a job already uploaded with PUT",
               c.request("POST", "/v1/uploads", headers=tus_hdr(jid3, len(clip))), 409, "conflict")
    video_rejected(c, cat, "garbage video bytes", job(), os.urandom(65536))
    # MPEG-TS whose resolution changes mid-stream (32x24, then 64x48): errors.json lists it
    video_rejected(c, cat, "resolution change mid-stream", job(),
                   open(H.fixture("small.ts"), "rb").read() + clip)

    # ---- tus ------------------------------------------------------------------------
    tj = job()
    cat.expect("tus POST without Tus-Resumable", c.request("POST", "/v1/uploads", headers=tus_hdr(tj, 100, None)),
               412, "unsupported_tus_version")
    cat.expect("tus POST with Tus-Resumable 0.2.2",
               c.request("POST", "/v1/uploads", headers=tus_hdr(tj, 100, "0.2.2")), 412, "unsupported_tus_version",
               lambda r: None if r.headers.get("tus-version") else "412 without Tus-Version header")
    cat.expect("tus POST without job_id metadata", c.request("POST", "/v1/uploads", headers=tus_hdr(None, 100)), 400,
               "bad_request")
    cat.expect("tus POST for an unknown job", c.request("POST", "/v1/uploads", headers=tus_hdr(ID_UNKNOWN, 100)), 404,
               "not_found")
    cat.expect("tus POST Upload-Length > max_upload_bytes",
               c.request("POST", "/v1/uploads", headers=tus_hdr(tj, 500000)), 413, "payload_too_large")
    r = c.request("POST", "/v1/uploads", headers=tus_hdr(tj, len(clip)))
    t.eq(r.status, 201, "tus creation 201")
    upath = f"/v1/uploads/{tj}"
    patch = lambda off, data, ct="application/offset+octet-stream", ver="1.0.0": c.request(
        "PATCH", upath, body=data, headers={**({"Tus-Resumable": ver} if ver else {}),
                                            **({"Upload-Offset": str(off)} if off is not None else {}),
                                            **({"Content-Type": ct} if ct else {})})
    r = patch(0, clip[:10000])
    t.eq((r.status, r.headers.get("upload-offset")), (204, "10000"), "tus PATCH 10000 bytes -> 204 offset 10000")
    cat.expect("tus PATCH with a stale Upload-Offset (0 != 10000)", patch(0, clip[:100]), 409, "offset_mismatch")
    cat.expect("tus PATCH with an Upload-Offset ahead (20000)", patch(20000, clip[:100]), 409, "offset_mismatch")
    cat.expect("tus PATCH with Content-Type application/octet-stream", patch(10000, clip[10000:10100],
               ct="application/octet-stream"), 415, "unsupported_media_type")
    cat.expect("tus PATCH without Upload-Offset", patch(None, clip[10000:10100]), 400, "bad_request")
    cat.expect("tus PATCH without Tus-Resumable", patch(10000, clip[10000:10100], ver=None), 412,
               "unsupported_tus_version")
    cat.expect("tus PATCH past Upload-Length", patch(10000, clip[10000:] + b"\0" * 5000), 413, "payload_too_large")
    r = c.request("HEAD", upath, headers={"Tus-Resumable": "1.0.0"})
    t.eq((r.status, r.headers.get("upload-offset")), (200, "10000"),
         "rejected PATCHes left the offset unchanged (HEAD 10000)")
    cat.expect("PUT input while a tus upload of the job is open", c.put_input(tj, clip), 409, "conflict")
    r = c.request("HEAD", f"/v1/uploads/{ID_UNKNOWN}", headers={"Tus-Resumable": "1.0.0"})
    cat.expect("tus HEAD of an unknown upload", H.Response(r.status, r.headers, b"", 0), 404, None)
    r = c.request("DELETE", upath, headers={"Tus-Resumable": "1.0.0"})
    t.eq(r.status, 204, "tus termination 204")
    r = c.request("HEAD", upath, headers={"Tus-Resumable": "1.0.0"})
    t.check(r.status in (404, 410), "HEAD after termination 404/410", r.status)
    r = c.get(f"/v1/jobs/{tj}")
    t.eq((r.status, r.json().get("state") if r.status == 200 else None), (200, "cancelled"),
         "tus termination cancelled the job (it stays visible, state cancelled, as documented)")

    # ---- state left behind ---------------------------------------------------------------
    for jid_ in mine:
        r = c.delete(f"/v1/jobs/{jid_}")
        t.eq(r.status, 204, f"DELETE {jid_}")
    # 0 within 5 s (slots are released asynchronously)
    t.eq(H.gauges_settled(c), (0.0, 0.0, 0.0), "D: jobs gauges 0 after the catalogue")
    deadline = time.time() + 60 * H.SLOWDOWN  # a state wait: generous, returns at once
    while d.spool_files() and time.time() < deadline:
        time.sleep(0.1)
    t.eq(d.spool_files(), [], "D: spool empty (nothing left by rejected or deleted jobs)")
    t.check(d.proc.poll() is None, "D still running after the catalogue")
    d.stop()

    # ---- daemon L: tokens, frame limit, admission ------------------------------------------
    tokens = os.path.join(t.work, "tokens")
    with open(tokens, "w") as f:
        f.write(f"other-token-abcdef\n{TOKEN}\n")
    lim = H.Daemon(t.work, "L", model="null", args=["--tokens-file", tokens, "--max-frame-pixels", "2000",
                                                    "--max-active-jobs-per-worker", "1", "--max-queued-jobs", "1",
                                                    "--max-awaiting-jobs-per-tenant", "2"]).start()
    cn = t.client(lim)
    cl = t.client(lim, token=TOKEN)
    cat.expect("no Authorization header (tokens configured)", cn.create_job({}, expect=None), 401, "unauthorized")
    cat.expect("wrong bearer token", cn.create_job({}, headers={"Authorization": "Bearer nope"}, expect=None), 401,
               "unauthorized")
    cat.expect("right token with the Basic scheme",
               cn.create_job({}, headers={"Authorization": f"Basic {TOKEN}"}, expect=None), 401, "unauthorized")
    cat.expect("GET job without token", cn.get(f"/v1/jobs/{ID_UNKNOWN}"), 401, "unauthorized")
    t.eq(cn.get("/healthz").status, 200, "/healthz needs no token")
    t.eq(cn.get("/metrics").status, 200, "/metrics needs no token")
    mine = []
    big_frames = cl.create_job({}).json()["id"]
    mine.append(big_frames)
    video_rejected(cl, cat, "frame 64x48 > max_frame_pixels 2000", big_frames, clip)
    a1 = cl.create_job({}).json()["id"]
    a2 = cl.create_job({}).json()["id"]
    mine += [a1, a2]
    # jobs without input count against their tenant (issue 15 item 7), not the server
    cat.expect("3rd job without input of one tenant > max_awaiting_jobs_per_tenant 2", cl.create_job({}, expect=None),
               429, "rate_limited", lambda r: None if r.headers.get("retry-after") else "429 without Retry-After")
    other = t.client(lim, token="other-token-abcdef")
    r = other.create_job({}, expect=None)
    t.eq(r.status, 201, "another tenant still creates jobs while one tenant is at its limit")
    if r.status == 201:
        t.eq(other.delete(f"/v1/jobs/{r.json()['id']}").status, 204, "the other tenant deletes its job")
    # jobs with input hold the admission limit: two uploads that have started and not ended
    socks = [H.partial_put(lim.port, jid_, b"garbage!" * 512, token=TOKEN) for jid_ in (a1, a2)]
    for jid_ in (a1, a2):
        cl.wait_state(jid_, ("queued", "running"), timeout=30)
    cat.expect("admission: 3rd job with input > 1 active + 1 queued", cl.create_job({}, expect=None), 503,
               "unavailable", lambda r: None if r.headers.get("retry-after") else "503 without Retry-After")
    for sk in socks:
        sk.close()
    for jid_ in mine:
        cl.delete(f"/v1/jobs/{jid_}")
    r = cl.create_job({}, expect=None)
    t.eq(r.status, 201, "deleting the jobs re-opened admission")
    if r.status == 201:
        cl.delete(f"/v1/jobs/{r.json()['id']}")
    # 0 within 5 s (slots are released asynchronously)
    t.eq(H.gauges_settled(cl), (0.0, 0.0, 0.0), "L: jobs gauges 0")
    deadline = time.time() + 60 * H.SLOWDOWN  # a state wait: generous, returns at once
    while lim.spool_files() and time.time() < deadline:
        time.sleep(0.1)
    t.eq(lim.spool_files(), [], "L: spool empty")
    lim.stop()
    cat.table()
    t.check(len(cat.rows) >= 25, f"catalogue has >= 25 cases ({len(cat.rows)})")


if __name__ == "__main__":
    H.run_main(H.Suite("bad_requests"), body)
