// The starter-kit component, called as the kit's CLI calls it (init, then install), against
// the dry run: it must hand the kit's root to the install as the config dir.
// usage: node check_starter_kit.mjs COMPONENT_DIR KIT_DIR
import path from "node:path";
import { pathToFileURL } from "node:url";

const [componentDir, kitDir] = process.argv.slice(2);
const component = await import(pathToFileURL(path.join(componentDir, "index.mjs")).href);
if (component.name !== "OpenClaw") throw new Error(`name: ${component.name}`);
for (const f of ["init", "install", "uninstall"]) {
  if (typeof component[f] !== "function") throw new Error(`no ${f} export`);
}
await component.init(kitDir, {}, {});
await component.install();
await component.uninstall();
console.log("starter kit component: ok");
