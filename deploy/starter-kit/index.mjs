// The starter kit's component interface (init/install/uninstall, as its CLI calls them) for
// this project: drop this folder into the kit as components/ai-agent/openclaw, with this
// repository checked out where OPENCLAW_DIR points (default: two folders up, i.e. when run
// from this repository), and `./cli ai-agent openclaw install` installs it with the kit's
// config.json and .env. OPENCLAW_INSTALL_FLAGS adds flags (e.g. "--keda --karpenter").
// Plain Node.js: no packages needed.
import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const name = "OpenClaw";
const DIR = path.dirname(fileURLToPath(import.meta.url));
let BASE_DIR = process.cwd();

export async function init(baseDir, _config, _utils) {
  BASE_DIR = baseDir;
}

function deployScript(script) {
  const root = process.env.OPENCLAW_DIR || path.resolve(DIR, "../..");
  return path.join(root, "deploy", script);
}

function flags() {
  return (process.env.OPENCLAW_INSTALL_FLAGS || "").split(/\s+/).filter(Boolean);
}

export async function install() {
  execFileSync(deployScript("install.sh"), [...flags(), "--config-dir", BASE_DIR], {
    stdio: "inherit",
  });
}

export async function uninstall() {
  execFileSync(deployScript("uninstall.sh"), flags().filter((f) => f === "--purge" || f === "--dry-run"), {
    stdio: "inherit",
  });
}
