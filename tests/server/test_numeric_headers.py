"""Numbers in request headers at and past 2^63 (issue 15 item 1). Null model.

Before the fix, Upload-Length 9223372036854775808 overflowed a signed multiply in upload.c
(UBSan report; Release stored a negative length and wedged the upload), and a PUT with
such a Content-Length skipped the 413 and never answered. Every numeric header now goes
through one saturating parser (server/core/httpnum.c): too large -> 413 (or 409/416 where
the protocol says so), malformed -> 400, always a JSON error, promptly, and nothing stored.
  - tus creation: Upload-Length 2^63, 2^64, 10^40 -> 413; -5, 12abc, 0x10, "" -> 400; no
    upload created (HEAD 404), the job still takes a normal upload afterwards;
  - tus PATCH: Upload-Offset 2^63 / 2^64 -> 409 offset_mismatch, -1 -> 400; Content-Length
    2^63 -> 413; the stored offset stays 0; then the real upload succeeds and HEAD reports
    the true (positive) Upload-Length;
  - PUT: Content-Length 2^63 -> 413 within seconds (libmicrohttpd answers 413 itself for
    values >= 2^64, before the daemon sees the request); the job then takes a normal PUT;
  - POST /v1/jobs: Content-Length 2^63 -> 413;
  - Range on a stored output: a first byte past 2^63 -> 416, a last byte or suffix past
    2^64 -> the whole file (206).
The daemon exits 0 with no sanitizer report (the ASan/UBSan build runs this too)."""
import harness as H
import rawhttp as R

BIG = ["9223372036854775808", "18446744073709551616", "1" + "0" * 40]


def body(t):
    d = H.Daemon(t.work, "num", model="null").start()
    c = t.client(d)
    clip = open(H.fixture("small.ts"), "rb").read()

    def raw(method, path, headers, data=b"", case=None, mhd=False, timeout=20):
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        rs, closed, buf = R.exchange(d.port, head.encode() + data, timeout=timeout)
        if not rs:
            c.rec.add(method, path, 0, {}, buf, case=case, mhd=True)
            return H.Response(None, {}, buf, 0)
        st, hd, b = rs[0]
        c.rec.add(method, path, st, hd, b, case=case, mhd=mhd)
        return H.Response(st, hd, b, 0)

    def expect(r, status, code, what):
        t.check(r.status == status and (code is None or r.code() == code), what,
                f"expected {status} {code}, got {r.status} {r.code()} {r.body[:200]!r}")

    # ---- tus creation ---------------------------------------------------------------------
    jid = c.create_job({}).json()["id"]
    meta = f"job_id {H.b64(jid)}"
    tus = [("Tus-Resumable", "1.0.0"), ("Upload-Metadata", meta)]
    for v in BIG:
        expect(raw("POST", "/v1/uploads", tus + [("Upload-Length", v)], case=f"Upload-Length {v}"),
               413, "payload_too_large", f"tus POST Upload-Length {v[:24]}: 413 payload_too_large")
    for v in ["-5", "12abc", "0x10", ""]:
        expect(raw("POST", "/v1/uploads", tus + [("Upload-Length", v)], case=f"Upload-Length {v!r}"),
               400, "bad_request", f"tus POST Upload-Length {v!r}: 400 bad_request")
    r = c.request("HEAD", f"/v1/uploads/{jid}", headers={"Tus-Resumable": "1.0.0"})
    t.eq(r.status, 404, "no upload was created by the rejected creations (HEAD 404)")
    t.eq(c.job(jid).get("upload"), "none", "the job still has no upload")

    # ---- tus PATCH ------------------------------------------------------------------------
    r = c.request("POST", "/v1/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(clip)),
                                                   "Upload-Metadata": meta})
    t.eq(r.status, 201, "tus creation with the true length 201")
    patch = [("Tus-Resumable", "1.0.0"), ("Content-Type", "application/offset+octet-stream")]
    for v in BIG[:2]:
        expect(raw("PATCH", f"/v1/uploads/{jid}", patch + [("Upload-Offset", v), ("Content-Length", "10")], b"x" * 10,
                   case=f"Upload-Offset {v}"), 409, "offset_mismatch", f"PATCH Upload-Offset {v}: 409 offset_mismatch")
    expect(raw("PATCH", f"/v1/uploads/{jid}", patch + [("Upload-Offset", "-1"), ("Content-Length", "10")], b"x" * 10,
               case="Upload-Offset -1"), 400, "bad_request", "PATCH Upload-Offset -1: 400 bad_request")
    expect(raw("PATCH", f"/v1/uploads/{jid}", patch + [("Upload-Offset", "0"), ("Content-Length", BIG[0])], b"x" * 10,
               case="PATCH Content-Length 2^63"), 413, "payload_too_large", "PATCH Content-Length 2^63: 413")
    r = c.request("HEAD", f"/v1/uploads/{jid}", headers={"Tus-Resumable": "1.0.0"})
    t.eq((r.status, r.headers.get("upload-offset"), r.headers.get("upload-length")), (200, "0", str(len(clip))),
         "after the rejected PATCHes: offset 0, Upload-Length the true length")
    r = c.request("PATCH", f"/v1/uploads/{jid}", body=clip, headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    t.eq(r.status, 204, "the real PATCH 204")
    t.eq(c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=60)["state"], "succeeded",
         "the tus job succeeds")

    # ---- PUT ------------------------------------------------------------------------------
    pj = c.create_job({}).json()["id"]
    put = [("Content-Type", "video/mp2t")]
    r = raw("PUT", f"/v1/jobs/{pj}/input", put + [("Content-Length", BIG[0])], clip[:1000], case="PUT CL 2^63")
    expect(r, 413, "payload_too_large", "PUT Content-Length 2^63: 413 payload_too_large (answered, not hung)")
    for v in BIG[1:]:
        r = raw("PUT", f"/v1/jobs/{pj}/input", put + [("Content-Length", v)], clip[:1000], case=f"PUT CL {v}", mhd=True)
        expect(r, 413, None, f"PUT Content-Length {v[:24]}: 413 (libmicrohttpd's own answer)")
    t.eq(c.job(pj).get("upload"), "none", "the rejected PUTs claimed nothing")
    t.eq(c.put_input(pj, clip).status, 204, "a normal PUT afterwards 204")
    t.eq(c.wait_state(pj, ("succeeded", "failed", "cancelled"), timeout=60)["state"], "succeeded", "the PUT job succeeds")

    # ---- POST /v1/jobs ----------------------------------------------------------------------
    expect(raw("POST", "/v1/jobs", [("Content-Type", "application/json"), ("Content-Length", BIG[0])], b"{}",
               case="POST CL 2^63"), 413, "payload_too_large", "POST /v1/jobs Content-Length 2^63: 413")

    # ---- Range --------------------------------------------------------------------------------
    full = c.get(f"/v1/jobs/{pj}/output").body
    n = len(full)
    r = c.get(f"/v1/jobs/{pj}/output", headers={"Range": f"bytes={BIG[0]}-"})
    t.eq((r.status, r.headers.get("content-range")), (416, f"bytes */{n}"), "Range first byte 2^63: 416 bytes */size")
    r = c.get(f"/v1/jobs/{pj}/output", headers={"Range": f"bytes={BIG[1]}-{BIG[1]}1"})
    t.eq(r.status, 416, "Range first byte 2^64: 416")
    r = c.get(f"/v1/jobs/{pj}/output", headers={"Range": f"bytes=0-{BIG[2]}"})
    t.eq((r.status, r.body == full, r.headers.get("content-range")), (206, True, f"bytes 0-{n - 1}/{n}"),
         "Range last byte 10^40: 206 with the whole file")
    r = c.get(f"/v1/jobs/{pj}/output", headers={"Range": f"bytes=-{BIG[1]}"})
    t.eq((r.status, r.body == full), (206, True), "Range suffix 2^64: 206 with the whole file")
    r = c.get(f"/v1/jobs/{pj}/output", headers={"Range": "bytes=10-19"})
    t.eq((r.status, r.body), (206, full[10:20]), "an ordinary range still works")

    t.eq(c.get("/healthz").status, 200, "daemon healthy after the catalogue")
    t.check(d.proc.poll() is None, "daemon still running")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("numeric_headers"), body)
