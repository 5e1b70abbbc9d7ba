#!/usr/bin/env node
// Validates rendered Kubernetes objects against the Kubernetes OpenAPI schemas, twice:
//  1. kubernetes-models' validate(): ajv validators generated from the Kubernetes OpenAPI
//     spec (required fields, types, enums, int-or-string, quantities);
//  2. TypeScript excess-property checking against kubernetes-models' interfaces (generated
//     from the same spec): the OpenAPI schemas allow unknown fields, which the API server
//     drops silently (or rejects with strict field validation), so a misspelt
//     `livenessProbe.httpGett` would pass (1); as a typed object literal it is an error.
// Before the real files it checks itself on objects that must fail (one per rule) and one
// that must pass, so a broken validator cannot pass everything.
//
// Usage: node validate_k8s.cjs NPM_DIR WORK_DIR RENDERED.yaml|DIR...
//   NPM_DIR: the directory holding node_modules (tests/deploy/npm_setup.sh's DEST)
//   WORK_DIR: where the generated .ts files go
// Prints one line per object, then "N passed, N failed"; exit 1 on any failure.
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

if (process.argv.length < 5) {
    console.error("usage: node validate_k8s.cjs NPM_DIR WORK_DIR RENDERED.yaml...");
    process.exit(2);
}
const npmDir = path.resolve(process.argv[2]);
const workDir = path.resolve(process.argv[3]);
// A directory argument stands for the .yaml files in it (render_k8s.py's output).
const files = process.argv.slice(4).flatMap((a) => fs.existsSync(a) && fs.statSync(a).isDirectory()
    ? fs.readdirSync(a).filter((f) => f.endsWith(".yaml")).sort().map((f) => path.join(a, f)) : [a]);
const req = createRequire(path.join(npmDir, "package.json"));
const YAML = req("yaml");
const ts = req("typescript");

// apiVersion + kind -> the kubernetes-models module ("v1/Service", "apps/v1/StatefulSet").
function modelPath(obj) {
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") return null;
    return `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
}

function loadModel(obj) {
    const mp = modelPath(obj);
    if (!mp) return { error: "no apiVersion/kind" };
    try {
        const mod = req(mp);
        if (typeof mod[obj.kind] !== "function") return { error: `${mp} has no class ${obj.kind}` };
        return { mp, Model: mod[obj.kind] };
    } catch (e) {
        return { error: `no schema for ${obj.apiVersion} ${obj.kind} in kubernetes-models (${e.code || e.message})` };
    }
}

function schemaErrors(obj) {
    const m = loadModel(obj);
    if (m.error) return [m.error];
    try {
        new m.Model(obj).validate();
        return [];
    } catch (e) {
        const details = (e.errors || e.details || []).map((d) =>
            `${d.instancePath || d.dataPath || "/"} ${d.message}${d.params ? " " + JSON.stringify(d.params) : ""}`);
        return details.length ? details : [String(e.message || e)];
    }
}

// One .ts file per batch: `const o<i>: I<Kind> = <object literal>;`. Returns a map from
// object index to its TypeScript diagnostics.
function typeErrors(objs, tag) {
    fs.mkdirSync(workDir, { recursive: true });
    const lines = [];
    const starts = [];
    const imports = new Map();
    objs.forEach((obj, i) => {
        const m = loadModel(obj);
        if (m.error) return;
        const iface = `I${obj.kind}`;
        const alias = `T${i}`;
        imports.set(alias, `import type { ${iface} as ${alias} } from ${JSON.stringify(m.mp)};`);
        starts.push({ line: 0, i });
        starts[starts.length - 1].pending = `export const o${i}: ${alias} = ${JSON.stringify(obj, null, 2)};`;
    });
    const header = [...imports.values()];
    let lineNo = header.length;
    const body = [];
    for (const s of starts) {
        s.line = lineNo;
        const text = s.pending;
        body.push(text);
        lineNo += text.split("\n").length;
        s.end = lineNo;
    }
    lines.push(...header, ...body);
    const file = path.join(workDir, `${tag}.ts`);
    fs.writeFileSync(file, lines.join("\n") + "\n");
    const program = ts.createProgram([file], {
        noEmit: true, strict: true, skipLibCheck: true, target: ts.ScriptTarget.ES2020,
        module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10,
        typeRoots: [], types: [], baseUrl: path.join(npmDir, "node_modules"),
    });
    const out = new Map();
    for (const d of ts.getPreEmitDiagnostics(program)) {
        const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n");
        let idx = -1;
        if (d.file && d.file.fileName === file.replace(/\\/g, "/") && d.start !== undefined) {
            const { line } = d.file.getLineAndCharacterOfPosition(d.start);
            const s = starts.find((x) => line >= x.line && line < x.end);
            if (s) idx = s.i;
            const prop = d.file.text.split("\n")[line].trim();
            if (!out.has(idx)) out.set(idx, []);
            out.get(idx).push(`TS${d.code} at "${prop.slice(0, 80)}": ${msg.split("\n")[0]}`);
        } else {
            if (!out.has(-1)) out.set(-1, []);
            out.get(-1).push(`TS${d.code}: ${msg.split("\n")[0]}`);
        }
    }
    return out;
}

function check(objs, tag) {
    const types = typeErrors(objs, tag);
    const results = objs.map((obj, i) => {
        const errs = schemaErrors(obj).map((e) => `schema: ${e}`);
        for (const t of types.get(i) || []) errs.push(`types: ${t}`);
        return errs;
    });
    return { results, global: types.get(-1) || [] };
}

// ---- self-test: each bad object must be rejected, the good one accepted -----------------
const goodPod = {
    apiVersion: "v1", kind: "Pod", metadata: { name: "ok" },
    spec: { containers: [{ name: "c", image: "i", ports: [{ containerPort: 8080 }],
        livenessProbe: { httpGet: { path: "/healthz", port: "http" } },
        resources: { limits: { "nvidia.com/gpu": 1, memory: "1Gi" } } }] },
};
const selfCases = [
    { what: "valid pod", obj: goodPod, bad: false },
    { what: "misspelt field (httpGett)", bad: true, obj: { ...goodPod, spec: { containers: [{ name: "c", image: "i",
        livenessProbe: { httpGett: { path: "/", port: 8080 } } }] } } },
    { what: "wrong type (containerPort string)", bad: true, obj: { ...goodPod, spec: { containers: [{ name: "c", image: "i",
        ports: [{ containerPort: "8080" }] }] } } },
    { what: "missing required (container name)", bad: true, obj: { ...goodPod, spec: { containers: [{ image: "i" }] } } },
    { what: "bad enum (Service type)", bad: true, obj: { apiVersion: "v1", kind: "Service", metadata: { name: "s" },
        spec: { type: "Clusterip", ports: [{ port: 80 }] } } },
    { what: "unknown kind", bad: true, obj: { apiVersion: "v1", kind: "NoSuchKind", metadata: { name: "x" } } },
];
let passed = 0, failed = 0;
{
    const { results, global } = check(selfCases.map((c) => c.obj), "self-test");
    if (global.length) { console.log(`FAIL self-test: ${global.join("; ")}`); failed++; }
    selfCases.forEach((c, i) => {
        const rejected = results[i].length > 0;
        if (rejected === c.bad) {
            console.log(`ok   self-test: ${c.what} ${c.bad ? "rejected: " + results[i][0] : "accepted"}`);
            passed++;
        } else {
            console.log(`FAIL self-test: ${c.what} ${rejected ? "rejected: " + results[i].join("; ") : "accepted"}`);
            failed++;
        }
    });
}

// ---- the rendered files ---------------------------------------------------------------
if (!files.length) { console.log("FAIL: no rendered files given"); failed++; }
for (const f of files) {
    let docs;
    try {
        docs = YAML.parseAllDocuments(fs.readFileSync(f, "utf8"));
    } catch (e) {
        console.log(`FAIL ${f}: ${e.message}`);
        failed++;
        continue;
    }
    const objs = [];
    for (const d of docs) {
        if (d.errors.length) { console.log(`FAIL ${f}: YAML: ${d.errors[0].message}`); failed++; continue; }
        const o = d.toJS();
        if (o !== null && o !== undefined) objs.push(o);
    }
    if (!objs.length) { console.log(`FAIL ${f}: no objects`); failed++; continue; }
    const { results, global } = check(objs, "rendered_" + path.basename(f).replace(/\W/g, "_"));
    if (global.length) { console.log(`FAIL ${f}: ${global.join("; ")}`); failed++; }
    objs.forEach((o, i) => {
        const id = `${path.basename(f)}: ${o.apiVersion} ${o.kind} ${(o.metadata || {}).name}`;
        if (results[i].length) {
            console.log(`FAIL ${id}`);
            for (const e of results[i]) console.log(`       ${e}`);
            failed++;
        } else {
            console.log(`ok   ${id}`);
            passed++;
        }
    });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
