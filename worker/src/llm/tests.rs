use super::wire::apply_chunk;
use super::*;

#[test]
fn streamed_tool_call_arguments_are_assembled() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut out = Completion::default();
    let mut partial = Vec::new();
    for chunk in [
        json!({"choices":[{"delta":{"content":"Hi"}}]}),
        json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"write_file","arguments":"{\"pa"}}]}}]}),
        json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"th\":\"a\"}"}}]}}]}),
        json!({"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3}}),
    ] {
        apply_chunk(&chunk, &mut out, &mut partial, &DeltaSink::new(&tx));
    }
    assert_eq!(rx.try_recv().unwrap(), "Hi");
    assert_eq!(partial[0].id, "c1");
    assert_eq!(partial[0].function.arguments, "{\"path\":\"a\"}");
    assert_eq!((out.prompt_tokens, out.completion_tokens), (10, 3));
}

#[test]
fn a_non_streamed_answers_cost_comes_from_litellms_header() {
    let mut h = reqwest::header::HeaderMap::new();
    assert_eq!(cost_from_headers(&h), None, "not reported: unknown");
    h.insert("x-litellm-response-cost", "0.000345".parse().unwrap());
    assert_eq!(cost_from_headers(&h), Some(0.000345));
    h.insert("x-litellm-response-cost", "nan".parse().unwrap());
    assert_eq!(cost_from_headers(&h), None);
}

#[test]
fn gateway_messages_come_from_the_error_body() {
    assert_eq!(
        gateway_message(r#"{"error":{"message":"bad key"}}"#),
        "bad key"
    );
    assert_eq!(gateway_message("plain"), "plain");
}
