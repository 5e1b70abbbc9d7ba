// tus-js-client (npm) against infvsrd, with a forced disconnect and a resume:
//   node tus_upload.mjs MODE DAEMON_URL JOB_ID FILE RECORDS.jsonl
// MODE "cut": the client talks to the daemon through a TCP proxy in this process that
//   forwards the first CUT_BYTES of client->server traffic, then closes both sides of that
//   connection once (a network failure in the middle of the PATCH body). tus-js-client's
//   retry does HEAD, gets the server's Upload-Offset and PATCHes from there.
// MODE "silent": as "cut", but the daemon's side of the cut connection stays open and
//   silent (no FIN), as when a mobile link dies; retries over 7.7 s must get through.
// MODE "restart": 8 KiB chunks; after two chunks the upload is aborted (client gone), and a
//   NEW Upload object (as a restarted client would) is given only the upload URL: it must
//   HEAD, continue from the server's offset and finish.
// MODE "cwu": creation-with-upload, 16 KiB chunks: the POST carries the first chunk.
// Prints one JSON line {ok, events: [...], cut_at, head_offset, resume_offset, url} and
// writes every response to RECORDS.jsonl (for openapi_check.mjs). Exit 0 when the upload
// finished, 1 otherwise.
import fs from 'node:fs';
import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const tus = require('tus-js-client');

const [mode, daemonUrl, jobId, file, recordsPath] = process.argv.slice(2);
const data = fs.readFileSync(file);
const CUT_BYTES = Math.floor(data.length * 0.45);
const events = [];
const HEADERS = ['content-type', 'x-request-id', 'location', 'tus-resumable', 'tus-version', 'tus-extension',
                 'tus-max-size', 'upload-offset', 'upload-length', 'upload-expires', 'cache-control', 'retry-after'];

function record(req, res) {
    const headers = {};
    for (const h of HEADERS) {
        const v = res.getHeader(h);
        if (v !== undefined && v !== null && v !== '') headers[h] = String(v);
    }
    const body = res.getBody();
    const path = new URL(req.getURL()).pathname;
    fs.appendFileSync(recordsPath, JSON.stringify({
        method: req.getMethod(), path, status: res.getStatus(), headers,
        body: body === undefined || body === null ? null : String(body),
        body_len: body ? String(body).length : 0,
    }) + '\n');
    events.push({ t: Date.now(), what: 'response', method: req.getMethod(), status: res.getStatus(),
                  offset: res.getHeader('Upload-Offset') ?? null });
}

function proxy(target, silent = false) {
    // Forwards connections to the daemon; cuts the one that carries byte CUT_BYTES of the
    // client->server stream (once), after forwarding exactly that many bytes.
    const t = new URL(target);
    let forwarded = 0;
    let cut = false;
    const server = net.createServer((client) => {
        const up = net.connect(Number(t.port), t.hostname);
        up.on('data', (b) => client.write(b));
        up.on('end', () => client.end());
        up.on('error', () => client.destroy());
        client.on('error', () => up.destroy());
        client.on('end', () => up.end());
        client.on('data', (b) => {
            if (cut) { up.write(b); return; }
            if (forwarded + b.length >= CUT_BYTES) {
                const n = CUT_BYTES - forwarded;
                up.write(b.subarray(0, n));
                forwarded += n;
                cut = true;
                events.push({ t: Date.now(), what: 'cut', forwarded });
                // "cut": the daemon gets the bytes so far, then EOF mid-body. "silent": the
                // daemon's side stays open and quiet (a NAT or mobile link that died without
                // a FIN): only its own timeouts, or a new request taking over, can end it.
                if (!silent) up.end();
                client.destroy();  // the client sees the connection die
                return;
            }
            forwarded += b.length;
            up.write(b);
        });
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () =>
        resolve({ url: `http://127.0.0.1:${server.address().port}`, server, wasCut: () => cut })));
}

function upload(buf, opts) {
    return new Promise((resolve, reject) => {
        const u = new tus.Upload(buf, {
            retryDelays: [0, 200, 500, 1000],
            metadata: { job_id: jobId, filename: 'input.ts' },
            storeFingerprintForResuming: false,
            onBeforeRequest: (req) => {
                events.push({ t: Date.now(), what: 'request', method: req.getMethod(),
                              offset: req.getHeader('Upload-Offset') ?? null });
            },
            onAfterResponse: record,
            onError: reject,
            onSuccess: () => resolve(u),
            ...opts,
        });
        if (opts.onStart) opts.onStart(u);
        u.start();
    });
}

async function main() {
    const result = { ok: false, mode, events };
    try {
        if (mode === 'cut' || mode === 'silent') {
            const p = await proxy(daemonUrl, mode === 'silent');
            const u = await upload(data, { endpoint: `${p.url}/v1/uploads`,
                                           retryDelays: [0, 200, 500, 1000, 2000, 4000] });
            result.url = u.url;
            result.cut = p.wasCut();
            p.server.close();
        } else if (mode === 'restart') {
            let first;
            let chunks = 0;
            await new Promise((resolve, reject) => {
                upload(data, {
                    endpoint: `${daemonUrl}/v1/uploads`, chunkSize: 8192,
                    onStart: (u) => { first = u; },
                    onChunkComplete: () => {
                        if (++chunks === 2) {
                            first.abort(false).then(() => { events.push({ t: Date.now(), what: 'abort' }); resolve(); });
                        }
                    },
                }).then(() => reject(new Error('upload finished before the abort')), reject);
            });
            result.url = first.url;
            const u2 = await upload(data, { uploadUrl: first.url, chunkSize: 8192 });
            result.url2 = u2.url;
        } else if (mode === 'cwu') {
            // creation-with-upload (advertised in Tus-Extension): the POST carries the first chunk
            const u = await upload(data, { endpoint: `${daemonUrl}/v1/uploads`, chunkSize: 16384,
                                           uploadDataDuringCreation: true });
            result.url = u.url;
        } else throw new Error(`unknown mode ${mode}`);
        result.ok = true;
    } catch (e) {
        result.error = String(e && e.message ? e.message : e);
    }
    console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
}
main();
