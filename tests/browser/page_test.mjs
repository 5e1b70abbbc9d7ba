// Drives the infvsrd web page in headless Chromium (Debian's, through playwright-core):
//   node page_test.mjs MODE DAEMON_URL CLIP OUT_DIR [TOKEN]
// MODE "basic": open the page, choose CLIP, Upscale, wait (generous deadline) until the
//   status says Done, read the before/after images' natural sizes, download the output
//   through the page's link, save a screenshot.
// MODE "resume": the page is loaded through a TCP proxy in this process that cuts the
//   connection carrying the tus PATCH once, after CUT_BYTES of it; the page's tus-js-client
//   must resume (HEAD, PATCH from the server's offset) and the job must still finish.
//   With TOKEN: typed into the page's token field first (auth on).
// Prints one JSON line of results; writes OUT_DIR/responses.jsonl (the page's API
// responses, for openapi_check.mjs) and screenshots. Exit 0 = ran to the end (the Python
// side checks the values), 2 = Chromium cannot start (the test then skips), 1 = failure.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const [mode, daemonUrl, clip, outDir, token] = process.argv.slice(2);
const DEADLINE_MS = Number(process.env.PAGE_DEADLINE_MS || 300000);
const result = { ok: false, mode, requests: [] };
const recordsPath = path.join(outDir, 'responses.jsonl');

// Cuts the first connection whose request starts with "PATCH " after `cutBytes` of it, and
// notes the Upload-Offset of every PATCH request that goes through.
function proxy(target, cutBytes) {
    const t = new URL(target);
    const state = { cut: false, patchOffsets: [] };
    const server = net.createServer((client) => {
        const up = net.connect(Number(t.port), t.hostname);
        let inPatch = false, seen = 0;
        up.on('data', (b) => client.write(b));
        up.on('end', () => client.end());
        up.on('error', () => client.destroy());
        client.on('error', () => up.destroy());
        client.on('end', () => up.end());
        client.on('data', (b) => {
            const head = b.subarray(0, 512).toString('latin1');
            if (head.startsWith('PATCH ')) { // a new request on this connection (keep-alive)
                const m = /\r\nupload-offset:\s*(\d+)/i.exec(head);
                state.patchOffsets.push(m ? Number(m[1]) : null);
                inPatch = !state.cut;
                seen = 0;
            }
            if (inPatch && !state.cut) {
                if (seen + b.length >= cutBytes) {
                    up.write(b.subarray(0, cutBytes - seen));
                    state.cut = true;
                    state.cutAt = cutBytes;
                    up.end();
                    client.destroy();
                    return;
                }
                seen += b.length;
            }
            up.write(b);
        });
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () =>
        resolve({ url: `http://127.0.0.1:${server.address().port}`, server, state })));
}

// Navigation + Resource Timing of the page's own files (transferred bytes, load event).
function measure(p) {
    return p.evaluate(() => {
        const n = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource').filter((r) => new URL(r.name).pathname.startsWith('/ui/'));
        return { load_ms: n.loadEventEnd - n.startTime, dcl_ms: n.domContentLoadedEventEnd - n.startTime,
                 transfer_bytes: n.transferSize + res.reduce((a, r) => a + r.transferSize, 0),
                 body_bytes: n.encodedBodySize + res.reduce((a, r) => a + r.encodedBodySize, 0),
                 files: 1 + res.length };
    });
}

async function main() {
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(recordsPath, '');
    let browser;
    try {
        browser = await chromium.launch({
            executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
            args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
            timeout: 60000,
        });
    } catch (e) {
        console.log(JSON.stringify({ ok: false, skip: true, error: 'chromium cannot start: ' + String(e.message).slice(0, 500) }));
        process.exit(2);
    }
    let px = null;
    let base = daemonUrl;
    if (mode === 'resume') {
        const size = fs.statSync(clip).size;
        px = await proxy(daemonUrl, Math.floor(size * 0.4));
        base = px.url;
        result.clip_bytes = size;
    }
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 1300 } });
    const page = await context.newPage();
    const consoleErrors = [];
    // 401 (the job list before the token is typed), 409 (a preview not processed yet, a tus
    // offset mismatch after the cut) are answers the page handles, not errors of the page
    page.on('console', (m) => {
        if (m.type() === 'error' && !/status of (401|409) /.test(m.text())) consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));
    const pending = [];
    page.on('response', (res) => {
        const u = new URL(res.url());
        if (u.protocol !== 'http:') return; // blob: URLs the page made itself
        result.requests.push(`${res.request().method()} ${u.pathname} ${res.status()}`);
        const rec = async () => {
            const headers = await res.allHeaders();
            const ct = headers['content-type'] || '';
            let body = null, omitted = false, len = 0;
            if (ct.startsWith('application/json') || ct.startsWith('text/html') || ct.startsWith('text/css') ||
                (ct.startsWith('text/javascript') && !u.pathname.endsWith('tus.min.js'))) {
                try { body = await res.text(); len = body.length; } catch (e) { body = null; }
            } else if (!ct.startsWith('text/event-stream')) omitted = true;
            const keep = {};
            for (const h of ['content-type', 'x-request-id', 'location', 'tus-resumable', 'upload-offset',
                             'upload-length', 'upload-expires', 'cache-control', 'retry-after', 'etag',
                             'content-security-policy', 'content-range'])
                if (headers[h] !== undefined) keep[h] = headers[h];
            if (ct.startsWith('text/event-stream') || u.pathname.endsWith('tus.min.js')) omitted = true;
            fs.appendFileSync(recordsPath, JSON.stringify({ method: res.request().method(), path: u.pathname + u.search,
                status: res.status(), headers: keep, body, body_len: len, body_omitted: omitted && body === null }) + '\n');
        };
        pending.push(rec().catch(() => {}));
    });

    try {
        // cold loads (a fresh context each: no cache) until one is under 1 s, at most 3:
        // the machine may be busy with other tests, the page must not be slow by itself
        result.loads = [];
        for (let i = 0; i < 3; i++) {
            const ctx = await browser.newContext();
            const p = await ctx.newPage();
            const t0 = Date.now();
            await p.goto(base + '/', { waitUntil: 'load' });
            const wall = Date.now() - t0;
            const nav = await measure(p);
            await ctx.close();
            result.loads.push({ ...nav, wall_ms: wall });
            if (!result.nav || nav.load_ms < result.nav.load_ms) result.nav = nav;
            if (nav.load_ms < 1000) break;
        }
        await page.goto(base + '/', { waitUntil: 'load' }); // the page the test works in
        // keyboard: Tab reaches the token field, then the file chooser
        await page.keyboard.press('Tab');
        result.first_tab_focus = await page.evaluate(() => document.activeElement && document.activeElement.id);
        if (token) {
            await page.fill('#token', token);
            await page.dispatchEvent('#token', 'change');
        }
        await page.setInputFiles('#file', clip);
        await page.click('#start');
        await page.waitForFunction(() => /^Done|failed|Failed/.test(document.getElementById('status').textContent),
                                   null, { timeout: DEADLINE_MS, polling: 200 });
        result.status = await page.textContent('#status');
        result.upload_text = await page.textContent('#up-text');
        result.frames_text = await page.textContent('#fr-text');
        result.job_id = await page.textContent('#job-id');
        await page.waitForFunction(() => document.getElementById('img-sr').naturalWidth > 0 &&
                                         document.getElementById('img-lr').naturalWidth > 0,
                                   null, { timeout: DEADLINE_MS, polling: 200 });
        result.images = await page.evaluate(() => ['img-lr', 'img-sr'].map((id) => {
            const i = document.getElementById(id);
            return [i.naturalWidth, i.naturalHeight];
        }));
        // the slider moves the clip of the "after" image (keyboard)
        await page.focus('#slider');
        await page.keyboard.press('Home');
        result.clip_at_home = await page.evaluate(() => document.getElementById('img-sr').style.clipPath);
        await page.keyboard.press('End');
        result.clip_at_end = await page.evaluate(() => document.getElementById('img-sr').style.clipPath);
        await page.fill('#slider', '50');
        await page.dispatchEvent('#slider', 'input');
        // the job list shows the job, with a cancel/delete button
        await page.waitForFunction((id) => [...document.querySelectorAll('#jobs tbody td')].some((td) => td.textContent === id),
                                   result.job_id, { timeout: 30000 });
        result.listed = true;
        const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }), page.click('#download')]);
        const out = path.join(outDir, `download-${mode}` + path.extname(dl.suggestedFilename() || '.mp4'));
        await dl.saveAs(out);
        result.download = out;
        result.download_name = dl.suggestedFilename();
        result.video_ready = await page.evaluate(() => new Promise((resolve) => {
            const v = document.getElementById('video');
            if (v.readyState >= 1) return resolve(true);
            v.addEventListener('loadedmetadata', () => resolve(true), { once: true });
            v.addEventListener('error', () => resolve(false), { once: true });
            setTimeout(() => resolve(v.readyState >= 1), 15000);
        }));
        await page.screenshot({ path: path.join(outDir, `page-${mode}.png`), fullPage: true });
        result.screenshot = path.join(outDir, `page-${mode}.png`);
        if (px) { result.cut = px.state.cut; result.cut_at = px.state.cutAt; result.patch_offsets = px.state.patchOffsets; }
        result.ok = true;
    } catch (e) {
        result.error = String(e && e.message ? e.message : e).slice(0, 2000);
        try {
            result.status = await page.textContent('#status');
            await page.screenshot({ path: path.join(outDir, `page-${mode}-failed.png`), fullPage: true });
        } catch (e2) { /* the page may be gone */ }
    }
    result.console_errors = consoleErrors;
    await Promise.all(pending);
    await browser.close();
    if (px) px.server.close();
    console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
}
main();
