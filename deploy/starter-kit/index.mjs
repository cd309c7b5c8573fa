// The starter kit's component interface (init/install/uninstall, as its CLI calls them) for
// this project. Drop this folder into the kit as components/ai-agent/openclaw and
// `./cli ai-agent openclaw install` installs OpenClaw with the kit's config.json and .env,
// running deploy/install.sh of an OpenClaw checkout, found in this order:
//   1. OPENCLAW_DIR (environment);
//   2. "dir" under ai-agent.openclaw in the kit's config.json (relative to the kit's root);
//   3. the repository this folder is in (when run from a checkout: deploy/starter-kit);
//   4. a checkout named openclaw inside this folder.
// OPENCLAW_INSTALL_FLAGS adds flags (e.g. "--keda --karpenter"). Plain Node.js: no packages.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const name = "OpenClaw";
const DIR = path.dirname(fileURLToPath(import.meta.url));
let BASE_DIR = process.cwd();

export async function init(baseDir, _config, _utils) {
  BASE_DIR = baseDir;
}

/** `dir` under ai-agent.openclaw in the kit's config.json, if any. */
function configuredDir() {
  try {
    const config = JSON.parse(fs.readFileSync(path.join(BASE_DIR, "config.json"), "utf8"));
    const dir = config?.["ai-agent"]?.openclaw?.dir;
    return typeof dir === "string" && dir ? path.resolve(BASE_DIR, dir) : undefined;
  } catch {
    return undefined;
  }
}

/** One line saying what is wrong and how to fix it, and exit 1: no stack trace. */
function fail(message) {
  console.error(`openclaw: ${message}`);
  process.exit(1);
}

function repository() {
  const isCheckout = (dir) => fs.existsSync(path.join(dir, "deploy", "install.sh"));
  const explicit = [
    ["OPENCLAW_DIR", process.env.OPENCLAW_DIR && path.resolve(process.env.OPENCLAW_DIR)],
    ['config.json\'s ai-agent.openclaw.dir', configuredDir()],
  ];
  for (const [where, dir] of explicit) {
    if (!dir) continue;
    if (isCheckout(dir)) return dir;
    fail(`${where} is ${dir}, which holds no deploy/install.sh: point it at an OpenClaw checkout`);
  }
  const nearby = [path.resolve(DIR, "../.."), path.join(DIR, "openclaw")];
  const found = nearby.find(isCheckout);
  if (found) return found;
  fail(
    `cannot find the OpenClaw repository (a checkout holding deploy/install.sh; looked in ${nearby.join(", ")}): ` +
      `clone it and set OPENCLAW_DIR=/path/to/it, or "dir" under ai-agent.openclaw in config.json`,
  );
}

function deployScript(script) {
  return path.join(repository(), "deploy", script);
}

function flags() {
  return (process.env.OPENCLAW_INSTALL_FLAGS || "").split(/\s+/).filter(Boolean);
}

/** Runs a deploy script; its own output says what went wrong, so a failure ends with its
 * exit status and no stack trace. */
function runScript(script, args) {
  try {
    execFileSync(deployScript(script), args, { stdio: "inherit" });
  } catch (e) {
    if (typeof e.status === "number") process.exit(e.status);
    fail(`cannot run deploy/${script}: ${e.message}`);
  }
}

export async function install() {
  runScript("install.sh", [...flags(), "--config-dir", BASE_DIR]);
}

export async function uninstall() {
  runScript("uninstall.sh", flags().filter((f) => f === "--purge" || f === "--dry-run"));
}
