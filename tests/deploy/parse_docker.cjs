#!/usr/bin/env node
// Parses the deployment's Docker files with real parsers and writes what they say as JSON
// for the Python checks (check_docker.py):
//  - each Dockerfile with dockerfile-ast (the parser of the VS Code Docker extension);
//    dockerfile-utils' validate() (its linter) must report no error or warning;
//  - the compose file with `yaml`, validated against the compose-spec JSON schema (the
//    copy dclint ships) with ajv; the schema rejects unknown keys.
// Usage: node parse_docker.cjs NPM_DIR OUT.json DOCKERFILE... COMPOSE.yaml
// Exit 1 (with the reasons) when a file does not parse or validate.
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

if (process.argv.length < 6) {
    console.error("usage: node parse_docker.cjs NPM_DIR OUT.json DOCKERFILE... COMPOSE.yaml");
    process.exit(2);
}
const npmDir = path.resolve(process.argv[2]);
const outPath = process.argv[3];
const inputs = process.argv.slice(4);
const req = createRequire(path.join(npmDir, "package.json"));
const { DockerfileParser } = req("dockerfile-ast");
const dockerfileUtils = req("dockerfile-utils");
const YAML = req("yaml");
const Ajv = req("ajv");

// The compose-spec schema (draft-07) names its meta-schema by an https URL that ajv does not
// know by that name; ajv validates draft-07 by default, so the reference is dropped.
function loadComposeSchema() {
    const schema = JSON.parse(fs.readFileSync(path.join(npmDir, "node_modules/dclint/schemas/compose.schema.json"), "utf8"));
    delete schema.$schema;
    return schema;
}

let failed = 0;
const out = { dockerfiles: {}, compose: {} };

function parseDockerfile(file) {
    const text = fs.readFileSync(file, "utf8");
    const diags = dockerfileUtils.validate(text);
    for (const d of diags) {
        const sev = d.severity === 1 ? "error" : d.severity === 2 ? "warning" : "info";
        if (d.severity === 1 || d.severity === 2) {
            console.log(`FAIL ${file}:${d.range.start.line + 1}: ${sev}: ${d.message}`);
            failed++;
        }
    }
    const df = DockerfileParser.parse(text);
    const stages = [];
    const globalArgs = {};
    for (const inst of df.getInstructions()) {
        const keyword = inst.getKeyword();
        const line = inst.getRange().start.line + 1;
        const args = inst.getArguments().map((a) => a.getValue());
        const flags = typeof inst.getFlags === "function"
            ? Object.fromEntries(inst.getFlags().map((f) => [f.getName(), f.getValue()])) : {};
        const entry = { keyword, line, args, flags, raw: inst.getRawArgumentsContent ? inst.getRawArgumentsContent() : null };
        if (keyword === "FROM") {
            stages.push({ from: inst.getImageName() !== undefined ? args[0] : args[0],
                          image: inst.getImage(), name: inst.getBuildStage(), line, instructions: [] });
            continue;
        }
        if (keyword === "ARG" && stages.length === 0) {
            for (const p of inst.getProperties()) globalArgs[p.getName()] = p.getValue();
            continue;
        }
        if (keyword === "HEALTHCHECK") {
            const sub = inst.getSubcommand();
            entry.subcommand = sub ? sub.getValue() : null;
            const execArgs = typeof inst.getOpeningBracket === "function" && inst.getOpeningBracket();
            entry.exec_form = !!execArgs;
        }
        if (keyword === "ENTRYPOINT" || keyword === "CMD") {
            entry.exec_form = !!(typeof inst.getOpeningBracket === "function" && inst.getOpeningBracket());
            entry.json = entry.exec_form ? inst.getJSONStrings().map((s) => s.getJSONValue()) : null;
        }
        if (keyword === "HEALTHCHECK" && entry.exec_form) {
            entry.json = inst.getJSONStrings().map((s) => s.getJSONValue());
        }
        if (stages.length === 0) {
            console.log(`FAIL ${file}:${line}: ${keyword} before the first FROM`);
            failed++;
            continue;
        }
        stages[stages.length - 1].instructions.push(entry);
    }
    if (!stages.length) {
        console.log(`FAIL ${file}: no FROM`);
        failed++;
    }
    out.dockerfiles[file] = { global_args: globalArgs, stages };
    console.log(`ok   ${file}: ${stages.length} stages (${stages.map((s) => s.name || "?").join(", ")}), `
                + `${diags.length} linter findings`);
}

function parseCompose(file) {
    const doc = YAML.parseDocument(fs.readFileSync(file, "utf8"), { merge: true });
    if (doc.errors.length) {
        console.log(`FAIL ${file}: YAML: ${doc.errors[0].message}`);
        failed++;
        return;
    }
    const obj = doc.toJS({ maxAliasCount: 100 });
    const schema = loadComposeSchema();
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(schema);
    if (!validate(obj)) {
        for (const e of validate.errors) console.log(`FAIL ${file}: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
        failed++;
    } else {
        console.log(`ok   ${file}: valid against the compose-spec schema (${Object.keys(obj.services || {}).length} services)`);
    }
    out.compose[file] = obj;
}

// Self-test: the schema must reject an unknown service key and the linter a bad instruction.
{
    const schema = loadComposeSchema();
    const v = new Ajv({ allErrors: true, strict: false }).compile(schema);
    const bad = v({ services: { a: { image: "x", helthcheck: {} } } });
    const good = v({ services: { a: { image: "x", healthcheck: { test: ["CMD", "true"] } } } });
    const lint = dockerfileUtils.validate("FROM debian:12\nEXPOSE notaport\nHEALTHCHECK --interva=1s CMD true\n");
    if (bad || !good || lint.filter((d) => d.severity === 1).length === 0) {
        console.log(`FAIL self-test: compose schema bad=${bad} good=${good}, linter errors=${lint.length}`);
        failed++;
    } else {
        console.log(`ok   self-test: schema rejects a misspelt compose key, linter flags ${lint.length} problems in a bad Dockerfile`);
    }
}

for (const f of inputs) {
    if (!fs.existsSync(f)) {
        console.log(`FAIL ${f}: no such file`);
        failed++;
        continue;
    }
    if (/compose\.ya?ml$/.test(f)) parseCompose(f);
    else parseDockerfile(f);
}
fs.writeFileSync(outPath, JSON.stringify(out, null, 1));
if (failed) console.log(`parse_docker: ${failed} problem(s)`);
process.exit(failed ? 1 : 0);
