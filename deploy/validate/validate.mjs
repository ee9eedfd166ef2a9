// Validates Strimzi and KEDA custom resources against the schemas of their CRDs, as compiled
// into the @kubernetes-models packages (package.json pins them; `npm ci` installs them).
// Input on stdin: a JSON array of {source, doc}. Output on stdout: a JSON object with the
// packages' versions and one result per document; exit status 0 even when documents fail
// (the caller decides), 2 when the input itself is unusable.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const PACKAGES = {
  "kafka.strimzi.io": "@kubernetes-models/strimzi-kafka-operator",
  "keda.sh": "@kubernetes-models/keda",
};

function packageVersion(name) {
  const path = require.resolve(`${name}/package.json`);
  return JSON.parse(readFileSync(path, "utf8")).version;
}

async function validate({ source, doc }) {
  const [group, version] = String(doc.apiVersion ?? "").split("/");
  const pkg = PACKAGES[group];
  const where = { source, apiVersion: doc.apiVersion, kind: doc.kind, name: doc.metadata?.name };
  if (!pkg || !version || !/^[A-Za-z]+$/.test(doc.kind ?? "")) {
    return { ...where, ok: false, errors: ["no validator for this apiVersion and kind"] };
  }
  let Model;
  try {
    Model = (await import(`${pkg}/${group}/${version}/${doc.kind}`))[doc.kind];
  } catch (error) {
    return { ...where, ok: false, errors: [`no schema in ${pkg}: ${error.message}`] };
  }
  try {
    new Model(doc).validate();
    return { ...where, ok: true, errors: [], validator: `${pkg}@${packageVersion(pkg)}` };
  } catch (error) {
    return { ...where, ok: false, errors: [error.message], validator: pkg };
  }
}

let items;
try {
  items = JSON.parse(readFileSync(0, "utf8"));
} catch (error) {
  process.stderr.write(`input is not JSON: ${error.message}\n`);
  process.exit(2);
}
const packages = Object.fromEntries(Object.values(PACKAGES).map((p) => [p, packageVersion(p)]));
const results = [];
for (const item of items) {
  results.push(await validate(item));
}
process.stdout.write(JSON.stringify({ node: process.version, packages, results }) + "\n");
