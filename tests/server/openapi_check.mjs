// Checks recorded HTTP responses of the integration tests against proto/openapi.yaml and
// proto/errors.json:
//   node openapi_check.mjs SPEC.yaml ERRORS.json RECORDS.jsonl [RECORDS.jsonl ...]
// Each line of a records file is one response the tests saw (written by harness.py or by
// the Node tests): {"method","path","status","headers":{lower-case name: value},
// "body": text or null, "body_len", "body_omitted": bool, "sse": [{event, data}], "mhd": bool}.
//
// Rules, per response:
//  - the path (query stripped) matches a path template of the document and the method is an
//    operation there: the status must be listed in that operation's responses (or `default`);
//    otherwise (unknown route, or a method the route does not have) the response must be an
//    Error whose code belongs to the status (errors.json), e.g. 404 not_found, 405
//    method_not_allowed (plus an Allow header);
//  - the Content-Type (media type, parameters ignored) is one of the response's content
//    keys (wildcards like video/* allowed); a response without content has an empty body;
//  - a JSON body validates against the response's schema (ajv; OpenAPI 3.0 `nullable`,
//    boolean exclusiveMinimum/Maximum and `$ref` into components are translated to JSON
//    Schema first; allOf is plain JSON Schema);
//  - headers the response object lists are present when `required: true` or mandatory by
//    protocol (ALWAYS_REQUIRED), and every listed header that is present matches its schema;
//  - an Error body's code has the status errors.json gives it;
//  - every response carries X-Request-Id (the contract); responses libmicrohttpd writes
//    itself before the application sees the request (record.mhd, e.g. 431) are skipped;
//  - SSE data (record.sse): progress/done events hold a Job, error events an Error.
// Exit 0 when every record passes, 1 otherwise (each failure printed with the record).
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const YAML = require('yaml');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');

// ---- OpenAPI 3.0 schema -> JSON Schema (draft-07, what ajv's default class speaks) ------
function toJsonSchema(s) {
    if (Array.isArray(s)) return s.map(toJsonSchema);
    if (s === null || typeof s !== 'object') return s;
    const out = {};
    for (const [k, v] of Object.entries(s)) {
        if (k === 'nullable' || k === 'example' || k === 'examples' || k === 'xml' ||
            k === 'externalDocs' || k === 'discriminator' || k === 'deprecated' ||
            k === 'readOnly' || k === 'writeOnly') continue;
        if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')) {
            out.$ref = 'openapi-components' + v;   // resolved in the bundled components schema
            continue;
        }
        out[k] = toJsonSchema(v);
    }
    // OpenAPI 3.0 (draft-4 style): exclusiveMinimum is a boolean modifier of minimum.
    if (s.exclusiveMinimum === true && typeof s.minimum === 'number') {
        out.exclusiveMinimum = s.minimum; delete out.minimum;
    } else if (s.exclusiveMinimum === false) delete out.exclusiveMinimum;
    if (s.exclusiveMaximum === true && typeof s.maximum === 'number') {
        out.exclusiveMaximum = s.maximum; delete out.maximum;
    } else if (s.exclusiveMaximum === false) delete out.exclusiveMaximum;
    if (s.nullable === true) {
        if (typeof out.type === 'string' && !out.allOf && !out.anyOf && !out.oneOf && !out.$ref) {
            out.type = [out.type, 'null'];
            if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
            return out;
        }
        return { anyOf: [{ type: 'null' }, out] };
    }
    return out;
}

function resolveRef(doc, obj) {
    let o = obj, guard = 0;
    while (o && typeof o === 'object' && typeof o.$ref === 'string') {
        if (!o.$ref.startsWith('#/')) throw new Error(`external $ref not supported: ${o.$ref}`);
        o = o.$ref.slice(2).split('/').reduce((a, p) => a?.[p.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
        if (++guard > 32 || o === undefined) throw new Error(`unresolvable $ref ${obj.$ref}`);
    }
    return o;
}

// Headers that must be present whenever the response object lists them, even without
// `required: true` (OpenAPI headers are optional by default): the protocol makes them
// mandatory (RFC 9110 Location on 201/307 and Content-Range on 206/416, Retry-After where
// the document promises it, tus 1.0.0 Upload-Offset / Tus-Version / Tus-Resumable).
const ALWAYS_REQUIRED = new Set(['location', 'retry-after', 'content-range', 'upload-offset', 'tus-version',
                                 'tus-resumable', 'x-request-id']);

export function loadChecker(specPath, errorsPath) {
    const doc = YAML.parse(fs.readFileSync(specPath, 'utf8'));
    const errors = JSON.parse(fs.readFileSync(errorsPath, 'utf8')).errors;
    const codeStatus = new Map(errors.map((e) => [e.code, e.status]));
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addFormat('binary', true);
    ajv.addSchema({ $id: 'openapi-components', components: { schemas: toJsonSchema(doc.components?.schemas ?? {}) } });
    const compiled = new Map();
    const validatorFor = (schema) => {
        const key = JSON.stringify(schema);
        if (!compiled.has(key)) compiled.set(key, ajv.compile(toJsonSchema(schema)));
        return compiled.get(key);
    };
    const errorSchema = { $ref: '#/components/schemas/Error' };
    const jobSchema = { $ref: '#/components/schemas/Job' };

    const routes = Object.entries(doc.paths).map(([tmpl, item]) => ({
        tmpl, item,
        re: new RegExp('^' + doc.servers?.[0]?.url?.replace(/^https?:\/\/[^/]+/, '').replace(/\/$/, '') +
                       tmpl.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+') + '$'),
    }));
    const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

    function mediaMatches(ct, key) {
        if (key === '*/*') return true;
        if (key.endsWith('/*')) return ct.startsWith(key.slice(0, -1));
        return ct === key.toLowerCase();
    }

    function checkErrorBody(rec, problems, body) {
        const v = validatorFor(errorSchema);
        if (!v(body)) problems.push(`Error body does not match schema: ${ajv.errorsText(v.errors)}`);
        const code = body?.error?.code;
        if (code !== undefined && codeStatus.has(code) && codeStatus.get(code) !== rec.status)
            problems.push(`error code ${code} belongs to status ${codeStatus.get(code)}, response was ${rec.status}`);
    }

    function parseJson(rec, problems) {
        if (rec.body === null || rec.body === undefined) {
            if (rec.body_omitted) problems.push('JSON body was not recorded (test bug)');
            return undefined;
        }
        try { return JSON.parse(rec.body); } catch (e) {
            problems.push(`body is not valid JSON: ${e.message}: ${String(rec.body).slice(0, 120)}`);
            return undefined;
        }
    }

    function checkSse(rec, problems) {
        for (const ev of rec.sse ?? []) {
            let data;
            try { data = JSON.parse(ev.data); } catch (e) {
                problems.push(`SSE ${ev.event} data is not JSON: ${String(ev.data).slice(0, 120)}`); continue;
            }
            const schema = ev.event === 'error' ? errorSchema : jobSchema;
            if (!['progress', 'done', 'error'].includes(ev.event)) problems.push(`unknown SSE event ${ev.event}`);
            const v = validatorFor(schema);
            if (!v(data)) problems.push(`SSE ${ev.event} data does not match schema: ${ajv.errorsText(v.errors)}`);
        }
    }

    return function check(rec) {
        const problems = [];
        const h = rec.headers ?? {};
        const ctFull = (h['content-type'] ?? '').toLowerCase();
        const ct = ctFull.split(';')[0].trim();
        const path = rec.path.split('?')[0];
        const method = rec.method.toLowerCase();
        if (!rec.mhd && !h['x-request-id']) problems.push('no X-Request-Id header');
        // Written by libmicrohttpd before routing (431 header fields too large, 414): not an
        // operation's response; the catalogue checks the status itself.
        if (rec.mhd) return problems;
        const route = routes.find((r) => r.re.test(path));
        const op = route && methods.includes(method) ? route.item[method] : undefined;
        if (!op) {
            // No operation: only errors are acceptable, with a JSON Error body.
            if (rec.status < 400) problems.push(`status ${rec.status} for ${rec.method} ${path}, which the document does not define`);
            if (rec.status === 405 && !h['allow']) problems.push('405 without an Allow header');
            if (rec.mhd || method === 'head') return problems;
            if (ct !== 'application/json') problems.push(`error response Content-Type is "${ctFull}", expected application/json`);
            else {
                const body = parseJson(rec, problems);
                if (body !== undefined) checkErrorBody(rec, problems, body);
            }
            return problems;
        }
        let resp = op.responses?.[String(rec.status)] ?? op.responses?.[`${String(rec.status)[0]}XX`] ?? op.responses?.default;
        if (!resp) {
            problems.push(`status ${rec.status} is not listed for ${op.operationId ?? method + ' ' + route.tmpl} (listed: ${Object.keys(op.responses ?? {}).join(', ')})`);
            if (rec.mhd || rec.status < 400 || method === 'head') return problems;
            // still check the error shape
            if (ct === 'application/json') { const b = parseJson(rec, problems); if (b !== undefined) checkErrorBody(rec, problems, b); }
            else problems.push(`error response Content-Type is "${ctFull}", expected application/json`);
            return problems;
        }
        resp = resolveRef(doc, resp);
        for (const [name, hdr0] of Object.entries(resp.headers ?? {})) {
            const hdr = resolveRef(doc, hdr0);
            const v = h[name.toLowerCase()];
            if (v === undefined) {
                if (hdr.required === true || ALWAYS_REQUIRED.has(name.toLowerCase()))
                    problems.push(`header ${name} missing (listed for ${rec.status})`);
                continue;
            }
            const sch = hdr.schema ? resolveRef(doc, hdr.schema) : {};
            if (sch.type === 'integer') {
                if (!/^-?\d+$/.test(v.trim())) problems.push(`header ${name}: "${v}" is not an integer`);
                else if (typeof sch.minimum === 'number' && Number(v) < sch.minimum) problems.push(`header ${name}: ${v} < ${sch.minimum}`);
            }
            if (Array.isArray(sch.enum) && !sch.enum.includes(v.trim())) problems.push(`header ${name}: "${v}" not in ${sch.enum}`);
        }
        const content = resp.content;
        if (method === 'head') return problems; // no body by definition (RFC 9110 9.3.2)
        if (!content || Object.keys(content).length === 0) {
            if ((rec.body_len ?? 0) > 0) problems.push(`status ${rec.status} has no content in the document but the body has ${rec.body_len} bytes`);
            return problems;
        }
        const key = Object.keys(content).find((k) => mediaMatches(ct, k));
        if (!key) {
            problems.push(`Content-Type "${ctFull}" is not one of ${Object.keys(content).join(', ')} for ${op.operationId} ${rec.status}`);
            return problems;
        }
        const schema = content[key].schema;
        if (ct === 'application/json' && schema) {
            const body = parseJson(rec, problems);
            if (body !== undefined) {
                const v = validatorFor(schema);
                if (!v(body)) problems.push(`body does not match the ${op.operationId} ${rec.status} schema: ${ajv.errorsText(v.errors)}`);
                // an Error body (whatever the schema): its code must belong to this status
                const code = rec.status >= 300 ? body?.error?.code : undefined; // a Job has error.code too
                if (typeof code === 'string' && codeStatus.has(code) && codeStatus.get(code) !== rec.status)
                    problems.push(`error code ${code} belongs to status ${codeStatus.get(code)}, response was ${rec.status}`);
            }
        }
        if (ct === 'text/event-stream') checkSse(rec, problems);
        return problems;
    };
}

// ---- CLI ----------------------------------------------------------------------------------
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
    const [spec, errs, ...files] = process.argv.slice(2);
    if (!spec || !errs || files.length === 0) {
        console.error('usage: node openapi_check.mjs SPEC.yaml ERRORS.json RECORDS.jsonl...');
        process.exit(2);
    }
    const check = loadChecker(spec, errs);
    let n = 0, bad = 0;
    for (const f of files) {
        const lines = fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.trim());
        for (const line of lines) {
            const rec = JSON.parse(line);
            n++;
            const problems = check(rec);
            if (problems.length) {
                bad++;
                console.log(`FAIL ${rec.method} ${rec.path} -> ${rec.status}${rec.case ? ` [${rec.case}]` : ''}`);
                for (const p of problems) console.log(`     - ${p}`);
            }
        }
    }
    console.log(`openapi_check: ${n} responses checked, ${bad} failed`);
    process.exit(bad ? 1 : 0);
}
