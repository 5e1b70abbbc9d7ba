"""Tenants and jobs without input (issue 15, items 2 and 7), against the real daemon.

Daemon T: a tokens file in the documented format: `tokA acme`, `tokA2 acme` (a second token
of the same tenant: rotation), `tokB beta`, `tokAdm ops admin`, and a bare `tokC` (the
format before tenants: a tenant of its own).
  - Another tenant gets exactly the 404 an unknown job id gets, on every route that names a
    job: status, events, input (PUT), output, DELETE, tus creation for the job (POST
    /v1/uploads with its job_id), tus HEAD/PATCH/DELETE; the job is untouched afterwards
    (state, output bytes identical). The same tenant with its other token sees it. An admin
    token sees it, reads its output, deletes it.
  - Idempotency-Key values are per tenant: the same key under two tenants makes two jobs (no
    409, nothing learnt about the other tenant's job); each tenant's repeat returns its own.
  - /metrics names no tenant, no token, no job id.
Daemon E: defaults except input_wait_timeout_s 3 (the issue's case: 18 POSTs without input
used to fill the server's admission limit so that every later POST got 503):
  - one tenant's 17th empty job gets 429 rate_limited + Retry-After
    (max_awaiting_jobs_per_tenant 16); another tenant still gets 201; a job with input
    still runs to success meanwhile;
  - the empty jobs expire after input_wait_timeout_s (404, gauge back to 0, spool files
    gone), after which the tenant creates jobs again.
Null model."""
import hashlib
import os
import time

import harness as H


def tus_hdr(jid=None, length=None):
    h = {"Tus-Resumable": "1.0.0"}
    if length is not None:
        h["Upload-Length"] = str(length)
    if jid is not None:
        h["Upload-Metadata"] = f"job_id {H.b64(jid)}"
    return h


def not_found_like_unknown(t, r, unknown, jid, what):
    """r must be the 404 an unknown id gets: same status, code, message (with the id swapped)."""
    ok = r.status == unknown.status == 404 and r.code() == unknown.code() == "not_found"
    msg = (r.json().get("error", {}).get("message", "") if r.status == 404 else "")
    umsg = unknown.json().get("error", {}).get("message", "") if unknown.status == 404 else ""
    ok = ok and msg.replace(jid, "ID") == umsg.replace(unknown_id(unknown), "ID")
    t.check(ok, f"other tenant: {what} -> the 404 of an unknown job", f"{r!r} vs {unknown!r}")


def unknown_id(resp):
    # "no job local.AAAA..." -> the id at the end of the message
    return resp.json()["error"]["message"].split()[-1]


def body(t):
    clip = open(H.fixture("small.ts"), "rb").read()
    tokens = os.path.join(t.work, "tokens")
    with open(tokens, "w") as f:
        f.write("# token      tenant  flags\n"
                "tokA         acme\n"
                "tokA2        acme\n"
                "tokB         beta\n"
                "tokAdm       ops     admin\n"
                "tokC\n")
    d = H.Daemon(t.work, "T", model="null", args=["--tokens-file", tokens]).start()
    a, a2, b, adm, cc = (t.client(d, token=x) for x in ("tokA", "tokA2", "tokB", "tokAdm", "tokC"))
    spec = {"output": {"container": "y4m", "codec": "rawvideo"}}

    jid = a.create_job(spec).json()["id"]
    t.eq(a.put_input(jid, clip).status, 204, "tenant acme uploads its job")
    j = a.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=60)
    t.eq(j["state"], "succeeded", "acme's job succeeded")
    out = a.get(f"/v1/jobs/{jid}/output")
    t.eq(out.status, 200, "acme reads its output")
    digest = hashlib.sha256(out.body).hexdigest()

    ghost = jid.split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAA"
    for other, name in ((b, "beta"), (cc, "bare token")):
        pairs = [
            ("GET status", lambda c, i: c.get(f"/v1/jobs/{i}")),
            ("GET events", lambda c, i: c.get(f"/v1/jobs/{i}/events")),
            ("GET output", lambda c, i: c.get(f"/v1/jobs/{i}/output")),
            ("PUT input", lambda c, i: c.put_input(i, clip[:1000])),
            ("DELETE", lambda c, i: c.delete(f"/v1/jobs/{i}")),
            ("tus POST /v1/uploads", lambda c, i: c.request("POST", "/v1/uploads", headers=tus_hdr(i, 1000))),
            ("tus HEAD", lambda c, i: c.request("HEAD", f"/v1/uploads/{i}", headers=tus_hdr())),
            ("tus PATCH", lambda c, i: c.request("PATCH", f"/v1/uploads/{i}", body=b"x" * 10, headers={
                **tus_hdr(), "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})),
            ("tus DELETE", lambda c, i: c.request("DELETE", f"/v1/uploads/{i}", headers=tus_hdr())),
        ]
        for what, fn in pairs:
            unknown = fn(other, ghost)
            r = fn(other, jid)
            if what.startswith("tus HEAD"):  # no body on HEAD: status and code header-less
                t.check(r.status == unknown.status == 404, f"{name}: tus HEAD -> 404 like an unknown job",
                        f"{r!r} vs {unknown!r}")
            else:
                not_found_like_unknown(t, r, unknown, jid, f"{name}: {what}")
    j2 = a2.job(jid)  # the other token of the same tenant
    t.eq((j2["state"], j2["output"]["bytes"]), ("succeeded", len(out.body)),
         "the job is untouched after the other tenants' attempts (acme's second token sees it)")
    t.eq(hashlib.sha256(a2.get(f"/v1/jobs/{jid}/output").body).hexdigest(), digest, "output still byte-identical")
    t.eq(adm.get(f"/v1/jobs/{jid}").status, 200, "admin sees another tenant's job")
    t.eq(hashlib.sha256(adm.get(f"/v1/jobs/{jid}/output").body).hexdigest(), digest, "admin reads its output")

    # Idempotency-Key per tenant
    k = {"Idempotency-Key": "shared-key-1"}
    ra = a.create_job(spec, headers=k)
    rb = b.create_job({"output": {"container": "mpegts"}}, headers=k, expect=None)
    t.eq(rb.status, 201, "the same key under another tenant (other spec) is a new job, not 409")
    t.check(rb.json().get("id") != ra.json()["id"], "... with another id")
    t.eq((a.create_job(spec, headers=k, expect=None).status,), (200,), "acme repeats its key: 200")
    rb2 = b.create_job({"output": {"container": "mpegts"}}, headers=k, expect=None)
    t.eq((rb2.status, rb2.json().get("id")), (200, rb.json().get("id")), "beta repeats its key: its own job")

    text = a.get("/metrics").body.decode()
    leaks = [s for s in ("acme", "beta", "token-", "tokA", "tokAdm", jid) if s in text]
    t.eq(leaks, [], "/metrics names no tenant, token or job id")

    t.eq(adm.delete(f"/v1/jobs/{jid}").status, 204, "admin deletes another tenant's job")
    t.eq(a.get(f"/v1/jobs/{jid}").status, 404, "... then it is gone for its tenant too")
    for c_, i in ((a, ra.json()["id"]), (b, rb.json()["id"])):
        t.eq(c_.delete(f"/v1/jobs/{i}").status, 204, "each tenant deletes its keyed job")
    d.stop()

    # ---- jobs without input: per tenant, and they expire ------------------------------------------
    tok2 = os.path.join(t.work, "tokens2")
    with open(tok2, "w") as f:
        f.write("tokA acme\ntokB beta\n")
    e = H.Daemon(t.work, "E", model="null", args=["--tokens-file", tok2, "--input-wait-timeout-s", "3"]).start()
    a, b = t.client(e, token="tokA"), t.client(e, token="tokB")
    empty = []
    for i in range(18):  # the reproduction: 18 POSTs without input
        r = a.create_job({}, expect=None)
        if r.status == 201:
            empty.append(r.json()["id"])
        else:
            break
    t.eq(len(empty), 16, "one tenant holds max_awaiting_jobs_per_tenant (16) jobs without input")
    t.eq((r.status, r.code(), bool(r.headers.get("retry-after"))), (429, "rate_limited", True),
         "its 17th empty job: 429 rate_limited + Retry-After (not 503 for everybody)")
    rb = b.create_job(spec, expect=None)
    t.eq(rb.status, 201, "another tenant still creates a job")
    if rb.status == 201:
        t.eq(b.put_input(rb.json()["id"], clip).status, 204, "... and uploads it")
        t.eq(b.wait_state(rb.json()["id"], ("succeeded", "failed"), timeout=60)["state"], "succeeded",
             "... and it runs to success while acme's empty jobs wait")
        b.delete(f"/v1/jobs/{rb.json()['id']}")
    # a job with input is not held up by its own tenant's empty jobs: upload to one of them
    t.eq(a.put_input(empty[0], clip).status, 204, "acme uploads to one of its empty jobs")
    t.eq(a.wait_state(empty[0], ("succeeded", "failed"), timeout=60)["state"], "succeeded", "... which succeeds")
    t.eq(a.create_job({}, expect=None).status, 201, "that freed one place: a new empty job is accepted")
    # expiry: every empty job is removed input_wait_timeout_s after its creation
    deadline = time.time() + 30 * H.SLOWDOWN
    gone = False
    while time.time() < deadline and not gone:
        m = a.metrics()
        gone = m.get("infvsrd_jobs_awaiting_input") == 0.0 and a.get(f"/v1/jobs/{empty[-1]}", record=False).status == 404
        time.sleep(0.2)
    t.check(gone, "empty jobs expire after input_wait_timeout_s (404, awaiting gauge 0)")
    t.eq(a.get(f"/v1/jobs/{empty[1]}").status, 404, "an expired job answers 404")
    m = a.metrics()
    t.check(m.get("infvsrd_input_wait_expired_total", 0) >= 16, "infvsrd_input_wait_expired_total counts them",
            m.get("infvsrd_input_wait_expired_total"))
    t.check(m.get("infvsrd_tenant_limit_refusals_total", 0) >= 1, "infvsrd_tenant_limit_refusals_total counts the 429")
    leftover = [f for f in e.spool_files() if not f.startswith(empty[0])]
    t.eq(leftover, [], "the expired jobs' spool files are gone")
    t.eq(a.create_job({}, expect=None).status, 201, "after the expiry the tenant creates jobs again")
    a.delete(f"/v1/jobs/{empty[0]}")
    e.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("tenants"), body)
