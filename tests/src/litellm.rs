//! The real LiteLLM proxy (PyPI `litellm[proxy]`, pinned) in front of a [`ScriptedLlm`], for
//! conformance: the worker talks to LiteLLM exactly as in production.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::llm::ScriptedLlm;

/// The model name the proxy serves.
pub const MODEL: &str = "conformance-model";
/// The same scripted upstream behind a model of OpenAI's catalog (`openai/gpt-4o-mini`): the
/// provider LiteLLM hands OpenAI's `user` on to (for other OpenAI-compatible models it keeps
/// `user` for its own end-user tracking only).
pub const CATALOG_MODEL: &str = "catalog-model";

pub struct LiteLlm {
    child: Child,
    port: u16,
    /// The proxy's master key, which clients send as their API key.
    pub key: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn find_binary() -> PathBuf {
    let bin = std::env::var_os("OPENCLAW_LITELLM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".tools/litellm/bin/litellm"));
    assert!(
        bin.exists(),
        "the LiteLLM proxy is not installed at {}: run `bash scripts/tools.sh` (PyPI \
         litellm[proxy] pinned in tests/python/litellm-requirements.txt), or set OPENCLAW_LITELLM_BIN",
        bin.display()
    );
    bin
}

/// The scripted model's price in the proxy's `model_info` (USD per token), so that LiteLLM
/// reports each call's cost.
pub const INPUT_COST_PER_TOKEN: f64 = 0.000003;
pub const OUTPUT_COST_PER_TOKEN: f64 = 0.000015;

impl LiteLlm {
    /// Starts the proxy with one model forwarding to `upstream`, and waits until it is live.
    pub async fn start(upstream: &ScriptedLlm) -> Self {
        crate::init();
        let bin = find_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: openai/scripted\n      api_base: {0}/v1\n      api_key: sk-upstream-scripted\n    model_info:\n      input_cost_per_token: {INPUT_COST_PER_TOKEN}\n      output_cost_per_token: {OUTPUT_COST_PER_TOKEN}\n  - model_name: {CATALOG_MODEL}\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {0}/v1\n      api_key: sk-upstream-scripted\n",
                upstream.url
            ),
        )
        .expect("write the LiteLLM config");
        let key = format!("sk-{}", uuid::Uuid::now_v7().simple());
        let port = crate::free_port();
        let log = dir.path().join("litellm.log");
        let child = Command::new(&bin)
            .args(["--config"])
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("LITELLM_MASTER_KEY", &key)
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY", "False")
            .env("NO_PROXY", "*")
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("log file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let proxy = Self {
            child,
            port,
            key,
            log,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let live = format!("{}/health/liveliness", proxy.url());
        let up = tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                if http
                    .get(&live)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await;
        assert!(
            up.is_ok(),
            "LiteLLM did not come up within 120 s:\n{}",
            proxy.log_tail()
        );
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
