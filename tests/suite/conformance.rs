//! Conformance through the real LiteLLM proxy: worker → LiteLLM → scripted model, with tool
//! calls and streaming, and token usage reaching the events.

use openclaw_common::event::EventKind;
use openclaw_tests::litellm::{LiteLlm, MODEL};
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::WorkerProcess;
use serde_json::json;

use openclaw_tests::flow::{
    env_for, events_until_end, kinds, repo_task, streamed_text, worker_bin,
};

#[tokio::test]
async fn a_full_task_through_the_litellm_proxy() {
    let upstream = ScriptedLlm::turns(vec![
        Reply::tool("list_files", json!({})),
        Reply::tool(
            "write_file",
            json!({"path": "docs/USAGE.md", "content": "# Usage\n\nRun it.\n"}),
        ),
        Reply::text("Add a usage guide\n\nDocuments how to run the program."),
    ])
    .await;
    let proxy = LiteLlm::start(&upstream).await;
    let (app, repo, id) = repo_task(&[], "Document how to run it").await;
    let base = proxy.url();
    let mut worker = WorkerProcess::start(
        worker_bin(),
        &env_for(
            &app,
            &upstream,
            &[
                ("LITELLM_BASE_URL", &base),
                ("LITELLM_API_KEY", &proxy.key),
                ("LITELLM_MODEL_NAME", MODEL),
                // $3.60 an hour: a tenth of a cent per worker second.
                ("OPENCLAW_WORKER_COST_PER_HOUR", "3.6"),
            ],
        ),
    );
    assert_eq!(
        worker.wait().await,
        Some(0),
        "{}\n--- litellm ---\n{}",
        worker.log_text(),
        proxy.log_tail()
    );
    let events = events_until_end(&app, &id).await;
    let k = kinds(&events);
    assert_eq!(k.last(), Some(&"completed"), "{k:?}\n{}", worker.log_text());
    assert_eq!(k.iter().filter(|x| **x == "tool_call").count(), 2);
    let streamed = streamed_text(&events);
    assert!(streamed.contains("Add a usage guide"), "{streamed}");
    let usage: Vec<(String, u64, u64)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmUsage {
                model,
                prompt_tokens,
                completion_tokens,
                ..
            } => Some((model.clone(), *prompt_tokens, *completion_tokens)),
            _ => None,
        })
        .collect();
    assert_eq!(usage.len(), 3);
    assert!(
        usage.iter().all(|(m, p, c)| m == MODEL && *p > 0 && *c > 0),
        "{usage:?}"
    );
    // LiteLLM priced each streamed call (usage.cost in the final chunk): the events carry
    // its figures, and the task's total is their sum — and what the price list implies.
    let costs: Vec<f64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmUsage { cost_usd, .. } => Some(cost_usd.expect("a cost per call")),
            _ => None,
        })
        .collect();
    let reported: f64 = costs.iter().sum();
    let priced: f64 = usage
        .iter()
        .map(|(_, p, c)| {
            *p as f64 * openclaw_tests::litellm::INPUT_COST_PER_TOKEN
                + *c as f64 * openclaw_tests::litellm::OUTPUT_COST_PER_TOKEN
        })
        .sum();
    assert!(
        reported > 0.0 && (reported - priced).abs() < 1e-9,
        "{reported} vs {priced}"
    );
    let status = app.status(&id).await;
    let total = status["usage"]["cost_usd"]
        .as_f64()
        .expect("cost_usd in the status");
    assert!((total - reported).abs() < 1e-12, "{total} vs {reported}");
    let EventKind::Completed {
        usage: Some(totals),
        ..
    } = &events.last().unwrap().kind
    else {
        panic!("completed carries the usage")
    };
    assert_eq!(totals.cost_usd, Some(total));
    assert_eq!(totals.model_calls, 3);
    let compute = totals.compute_cost_usd.expect("an estimated compute cost");
    // README, "Cost": the worker time of this task, measured (printed with --nocapture).
    println!(
        "conformance task: {:.2} worker seconds",
        totals.worker_seconds
    );
    assert!(
        (compute - totals.worker_seconds * 0.001).abs() < 1e-9,
        "{totals:?}"
    );
    assert_eq!(
        repo.file(&format!("openclaw/{id}"), "docs/USAGE.md")
            .as_deref(),
        Some("# Usage\n\nRun it.\n")
    );

    // LiteLLM forwarded streaming requests with the tools to the upstream model.
    let requests = upstream.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r["stream"] == true && r["model"] == "scripted")
    );
    assert_eq!(
        requests[0]["tools"].as_array().map(Vec::len),
        Some(openclaw_tests::doc_writer_tool_count())
    );
    // The worker's key went to LiteLLM, and LiteLLM's upstream key to the model.
    assert!(
        upstream
            .auth_headers()
            .iter()
            .all(|h| h.as_deref() == Some("Bearer sk-upstream-scripted"))
    );
    assert!(!worker.log_text().contains(&proxy.key));

    // `openclaw-worker --check-gateway` (what to run in a one-shot pod: the images have no
    // shell) against the same proxy: it answers with the key and the model, and each wrong
    // setting is named, the key never shown.
    let check = |overrides: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(worker_bin());
        cmd.arg("--check-gateway")
            .env("LITELLM_BASE_URL", &base)
            .env("LITELLM_API_KEY", &proxy.key)
            .env("LITELLM_MODEL_NAME", MODEL);
        for (k, v) in overrides {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run the worker");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(&proxy.key), "{text}");
        (out.status.code(), text)
    };
    let (code, text) = check(&[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("including {MODEL}")), "{text}");
    let (code, text) = check(&[("LITELLM_API_KEY", "sk-wrong-key-123")]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("check LITELLM_API_KEY"), "{text}");
    let (code, text) = check(&[("LITELLM_MODEL_NAME", "bedrock/no-such-model")]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("check LITELLM_MODEL_NAME") && text.contains(MODEL),
        "{text}"
    );
    let closed = format!("http://127.0.0.1:{}", openclaw_tests::free_port());
    let (code, text) = check(&[("LITELLM_BASE_URL", closed.as_str())]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("cannot connect") && text.contains("check LITELLM_BASE_URL"),
        "{text}"
    );
}
