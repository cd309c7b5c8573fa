//! The offline demo model: an OpenAI-compatible server playing a fixed doc-writer script.
//! Prints its base URL on stdout, then serves until killed.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("http://{}", listener.local_addr()?);
    openclaw_tests::llm::ScriptedLlm::serve_turns(listener, openclaw_tests::llm::demo_script())
        .await
}
