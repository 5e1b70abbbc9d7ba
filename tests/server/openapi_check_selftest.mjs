// Self-test of openapi_check.mjs: responses that follow the document pass, and each kind of
// violation is caught (so a passing integration test means something).
//   node openapi_check_selftest.mjs selftest/openapi.yaml selftest/errors.json
// (a frozen copy of the first API draft: it has nullable+allOf, boolean exclusiveMinimum,
// $ref'd responses and headers, so the records below stay valid while proto/ evolves).
import { loadChecker } from './openapi_check.mjs';

const [spec, errs] = process.argv.slice(2);
const check = loadChecker(spec, errs);
const id = 'local.AAAAAAAAAAAAAAAAAAAAAA';
const rid = { 'x-request-id': 'r1' };
const json = { ...rid, 'content-type': 'application/json' };
const job = {
    id, state: 'created', created_at: '2026-11-24T20:00:00Z', frames_in: 0, frames_out: 0,
    urls: { self: `/v1/jobs/${id}`, input: `/v1/jobs/${id}/input`, output: `/v1/jobs/${id}/output`,
            events: `/v1/jobs/${id}/events` },
};
const rec = (method, path, status, headers, body, extra = {}) => ({
    method, path, status, headers,
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
    body_len: body === undefined ? 0 : (typeof body === 'string' ? body : JSON.stringify(body)).length, ...extra,
});
const err = (code) => ({ error: { code, message: 'm', request_id: 'r1' } });

const good = [
    rec('POST', '/v1/jobs', 201, { ...json, location: `/v1/jobs/${id}` }, job),
    rec('GET', `/v1/jobs/${id}`, 200, json, { ...job, error: null, finished_at: null }),
    rec('GET', `/v1/jobs/${id}`, 200, json, { ...job, state: 'failed', error: err('unprocessable_video') }),
    rec('GET', `/v1/jobs/${id}`, 404, json, err('not_found')),
    rec('POST', '/v1/jobs', 503, { ...json, 'retry-after': '5' }, err('unavailable')),
    rec('DELETE', `/v1/jobs/${id}`, 204, rid),
    rec('GET', `/v1/jobs/${id}/output`, 200, { ...rid, 'content-type': 'video/x-matroska' }, undefined, { body_omitted: true, body_len: 1000 }),
    rec('HEAD', `/v1/uploads/${id}`, 200, { ...rid, 'upload-offset': '5', 'upload-length': '10', 'cache-control': 'no-store' }),
    rec('HEAD', `/v1/uploads/${id}`, 200, { ...rid, 'upload-offset': '5' }),
    rec('GET', '/v1/nope', 404, json, err('not_found')),
    rec('PATCH', '/v1/jobs', 405, { ...json, allow: 'POST' }, err('method_not_allowed')),
    rec('GET', '/v1/jobs?x=1', 404, { 'content-type': 'text/html' }, '<html>', { mhd: true }),
    rec('GET', '/readyz', 200, json, { status: 'ok', workers: [{ id: 0, backend: 'cpu', healthy: true, active_jobs: 0 }] }),
    rec('GET', `/v1/jobs/${id}/events`, 200, { ...rid, 'content-type': 'text/event-stream' }, undefined,
        { body_omitted: true, sse: [{ event: 'progress', data: JSON.stringify(job) }, { event: 'done', data: JSON.stringify(job) }] }),
];
const bad = [
    ['status not listed', rec('GET', `/v1/jobs/${id}`, 418, json, err('bad_request'))],
    ['no request id', rec('GET', `/v1/jobs/${id}`, 404, { 'content-type': 'application/json' }, err('not_found'))],
    ['wrong content type', rec('GET', `/v1/jobs/${id}`, 200, { ...rid, 'content-type': 'text/plain' }, 'x')],
    ['missing required field', rec('GET', `/v1/jobs/${id}`, 200, json, { ...job, state: undefined })],
    ['unknown field', rec('GET', `/v1/jobs/${id}`, 200, json, { ...job, colour: 'red' })],
    ['enum violation', rec('GET', `/v1/jobs/${id}`, 200, json, { ...job, state: 'sleeping' })],
    ['null not allowed', rec('GET', `/v1/jobs/${id}`, 200, json, { ...job, frames_in: null })],
    ['nullable allOf wrong', rec('GET', `/v1/jobs/${id}`, 200, json, { ...job, error: { code: 'x' } })],
    ['exclusiveMinimum', rec('GET', `/v1/jobs/${id}`, 200, json, { ...job, spec: { scenes: { threshold: 0 } } })],
    ['code/status mismatch', rec('GET', `/v1/jobs/${id}`, 404, json, err('bad_request'))],
    ['invalid JSON', rec('GET', `/v1/jobs/${id}`, 404, json, '{"error":')],
    ['missing Location on 201', rec('POST', '/v1/jobs', 201, json, job)],
    ['missing Retry-After on 503', rec('POST', '/v1/jobs', 503, json, err('unavailable'))],
    ['body on 204', rec('DELETE', `/v1/jobs/${id}`, 204, rid, 'x')],
    ['405 without Allow', rec('PATCH', '/v1/jobs', 405, json, err('method_not_allowed'))],
    ['unknown route 200', rec('GET', '/v1/nope', 200, json, {})],
    ['bad date-time', rec('GET', `/v1/jobs/${id}`, 200, json, { ...job, created_at: 'yesterday' })],
    ['bad SSE data', rec('GET', `/v1/jobs/${id}/events`, 200, { ...rid, 'content-type': 'text/event-stream' }, undefined,
        { body_omitted: true, sse: [{ event: 'progress', data: '{"id":1}' }] })],
    ['bad optional header value', rec('HEAD', `/v1/uploads/${id}`, 200, { ...rid, 'upload-offset': '5', 'upload-length': 'abc', 'cache-control': 'no-store' })],
    ['missing protocol header', rec('HEAD', `/v1/uploads/${id}`, 200, { ...rid, 'upload-length': '10' })],
    ['output wrong type', rec('GET', `/v1/jobs/${id}/output`, 200, { ...rid, 'content-type': 'text/html' }, undefined, { body_omitted: true, body_len: 5 })],
];
let failures = 0;
for (const r of good) {
    const p = check(r);
    if (p.length) { failures++; console.log(`good record rejected: ${r.method} ${r.path} ${r.status}: ${p.join('; ')}`); }
}
for (const [name, r] of bad) {
    const p = check(r);
    if (!p.length) { failures++; console.log(`bad record accepted: ${name}`); }
    else console.log(`ok: ${name}: ${p[0]}`);
}
console.log(`openapi_check_selftest: ${good.length + bad.length - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
