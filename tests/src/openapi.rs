//! Checking HTTP requests and responses against an OpenAPI 3.0 description: what the scripted
//! GitHub server ([`crate::github`]) does with GitHub's official description, so a request the
//! project sends that GitHub would refuse (an unknown route or query parameter, a body field of
//! the wrong type, a missing required field) fails the test that sent it.
//!
//! The JSON Schema subset OpenAPI 3.0 descriptions use: `$ref`, `type` with `nullable`,
//! `properties`, `required`, `additionalProperties`, `items`, `enum`, `allOf`/`anyOf`/`oneOf`,
//! numeric and length bounds. Not checked: `pattern` and `format` (no regex engine in the
//! harness; GitHub's formats are `uri`, `date-time` and the like).

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// A loaded description.
pub struct OpenApi {
    doc: Value,
}

/// The operation a request matched.
#[derive(Debug, Clone)]
pub struct Operation {
    /// GitHub's operation id, such as `pulls/create`.
    pub id: String,
    /// The path template, such as `/repos/{owner}/{repo}/pulls`.
    pub template: String,
    pub method: String,
    /// The template's parameters with the values the path gave them.
    pub path_params: Vec<(String, String)>,
}

impl OpenApi {
    /// GitHub's REST description for api.github.com (npm `@octokit/openapi`), fetched by
    /// `scripts/tools.sh` into `$OPENCLAW_TEST_GITHUB_CONTRACT`. Loaded once per test binary.
    pub fn github() -> &'static OpenApi {
        static DOC: OnceLock<OpenApi> = OnceLock::new();
        DOC.get_or_init(|| {
            let path = contract_dir().join("api.github.com.json");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "GitHub's OpenAPI description is missing at {} ({e}): run `bash scripts/tools.sh` (or scripts/test.sh), which fetches it from npm",
                    path.display()
                )
            });
            OpenApi {
                doc: serde_json::from_str(&text).expect("the OpenAPI description is JSON"),
            }
        })
    }

    /// The operation `method path` names (the path relative to the API's base, without a
    /// query). Where templates overlap (`/pulls/comments` and `/pulls/{pull_number}`), the one
    /// with more literal segments wins, as routers do.
    pub fn operation(&self, method: &str, path: &str) -> Result<Operation, String> {
        let method = method.to_ascii_lowercase();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<(usize, Operation)> = None;
        let paths = self.doc["paths"].as_object().expect("paths");
        for (template, item) in paths {
            let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            if item.get(&method).is_none() {
                continue;
            }
            // A last parameter marked `x-multi-segment` (a git ref, a file path) takes the
            // rest of the path, slashes included.
            let multi = parts
                .last()
                .and_then(|p| p.strip_prefix('{')?.strip_suffix('}'))
                .is_some_and(|name| {
                    item[&method]["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| self.resolve(p))
                        .any(|p| p["name"] == name && p["x-multi-segment"] == true)
                });
            let segments: Vec<String> = if multi && segments.len() > parts.len() {
                let (head, rest) = segments.split_at(parts.len() - 1);
                head.iter()
                    .map(|s| (*s).to_owned())
                    .chain(std::iter::once(rest.join("/")))
                    .collect()
            } else {
                segments.iter().map(|s| (*s).to_owned()).collect()
            };
            if parts.len() != segments.len() {
                continue;
            }
            let mut params = Vec::new();
            let mut literal = 0;
            let matched = parts.iter().zip(&segments).all(|(part, seg)| {
                if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    params.push((name.to_owned(), seg.clone()));
                    !seg.is_empty()
                } else {
                    literal += 1;
                    part == seg
                }
            });
            if !matched {
                continue;
            }
            if best.as_ref().is_none_or(|(l, _)| literal > *l) {
                let id = item[&method]["operationId"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                best = Some((
                    literal,
                    Operation {
                        id,
                        template: template.clone(),
                        method: method.clone(),
                        path_params: params,
                    },
                ));
            }
        }
        best.map(|(_, op)| op).ok_or_else(|| {
            format!(
                "{} {path} is not an operation of the API",
                method.to_uppercase()
            )
        })
    }

    fn op_json(&self, op: &Operation) -> &Value {
        &self.doc["paths"][&op.template][&op.method]
    }

    /// Every problem GitHub's description finds with a request: its path parameters, query
    /// parameters (unknown ones included) and JSON body.
    pub fn check_request(
        &self,
        op: &Operation,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let spec = self.op_json(op);
        let params: Vec<&Value> = spec["parameters"]
            .as_array()
            .map(|ps| ps.iter().map(|p| self.resolve(p)).collect())
            .unwrap_or_default();
        let param = |name: &str, place: &str| {
            params
                .iter()
                .find(|p| p["name"] == name && p["in"] == place)
                .copied()
        };
        for (name, value) in &op.path_params {
            match param(name, "path") {
                Some(p) => {
                    self.check_text(&p["schema"], value, &format!("path {name}"), &mut problems)
                }
                None => problems.push(format!("path parameter {name} is not described")),
            }
        }
        for (name, value) in query {
            match param(name, "query") {
                Some(p) => {
                    self.check_text(&p["schema"], value, &format!("query {name}"), &mut problems)
                }
                None => problems.push(format!(
                    "query parameter {name:?} is not one {} takes",
                    op.id
                )),
            }
        }
        for p in &params {
            if p["in"] == "query"
                && p["required"] == true
                && !query.iter().any(|(n, _)| p["name"] == n.as_str())
            {
                problems.push(format!("required query parameter {} is missing", p["name"]));
            }
        }
        let schema = &spec["requestBody"]["content"]["application/json"]["schema"];
        match body {
            Some(body) if schema.is_null() => {
                problems.push(format!("{} takes no JSON body, got {body}", op.id));
            }
            Some(body) => self.check(schema, body, "body", &mut problems),
            None if spec["requestBody"]["required"] == true => {
                problems.push(format!("{} requires a body", op.id));
            }
            None => {}
        }
        problems
    }

    /// Every problem with a response the server is about to send (its own honesty).
    pub fn check_response(&self, op: &Operation, status: u16, body: &Value) -> Vec<String> {
        let response = self.resolve(&self.op_json(op)["responses"][status.to_string()]);
        if response.is_null() {
            return vec![format!("{} has no {status} response", op.id)];
        }
        let schema = &response["content"]["application/json"]["schema"];
        let mut problems = Vec::new();
        if !schema.is_null() {
            self.check(schema, body, "response", &mut problems);
        }
        problems
    }

    /// The description's example body of `op`'s `status` response (`$ref`s resolved).
    pub fn example(&self, op: &Operation, status: u16) -> Value {
        let response = self.resolve(&self.op_json(op)["responses"][status.to_string()]);
        let examples = &response["content"]["application/json"]["examples"];
        let first = examples
            .as_object()
            .and_then(|e| e.values().next())
            .map(|e| self.resolve(e)["value"].clone());
        first.unwrap_or_else(|| panic!("{} has no example {status} response", op.id))
    }

    /// A value from the description by JSON pointer (`#/components/...`).
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        let mut value = value;
        while let Some(pointer) = value.get("$ref").and_then(Value::as_str) {
            value = self
                .doc
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or(&Value::Null);
        }
        value
    }

    /// A path or query value (text on the wire) against its schema.
    fn check_text(&self, schema: &Value, text: &str, at: &str, problems: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let value = match schema["type"].as_str() {
            Some("integer") | Some("number") => match text.parse::<f64>() {
                Ok(n) => serde_json::json!(n),
                Err(_) => {
                    problems.push(format!("{at}: {text:?} is not a number"));
                    return;
                }
            },
            Some("boolean") => match text {
                "true" | "false" => Value::Bool(text == "true"),
                _ => {
                    problems.push(format!("{at}: {text:?} is not a boolean"));
                    return;
                }
            },
            _ => Value::String(text.to_owned()),
        };
        // A number parsed from text is a float; integers are checked as text above.
        let mut schema = schema.clone();
        if schema["type"] == "integer" {
            if text.parse::<i64>().is_err() {
                problems.push(format!("{at}: {text:?} is not an integer"));
            }
            schema["type"] = "number".into();
        }
        self.check(&schema, &value, at, problems);
    }

    /// `value` against `schema`, collecting what is wrong (with where).
    pub fn check(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if value.is_null() && schema["nullable"] == true {
            return;
        }
        if let Some(all) = schema["allOf"].as_array() {
            for s in all {
                self.check(s, value, at, problems);
            }
        }
        for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            if let Some(options) = schema[keyword].as_array() {
                let passing = options
                    .iter()
                    .filter(|s| {
                        let mut p = Vec::new();
                        self.check(s, value, at, &mut p);
                        p.is_empty()
                    })
                    .count();
                if passing == 0 || (exactly_one && passing > 1) {
                    problems.push(format!("{at}: matches {passing} of the {keyword} schemas"));
                }
            }
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            problems.push(format!(
                "{at}: {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
        let Some(ty) = schema["type"].as_str() else {
            return;
        };
        let fits = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !fits {
            problems.push(format!("{at}: expected {ty}, got {value}"));
            return;
        }
        match value {
            Value::Object(map) => {
                for name in schema["required"].as_array().into_iter().flatten() {
                    if let Some(name) = name.as_str()
                        && !map.contains_key(name)
                    {
                        problems.push(format!("{at}: required field {name} is missing"));
                    }
                }
                let properties = schema["properties"].as_object();
                for (name, v) in map {
                    let here = format!("{at}.{name}");
                    match properties.and_then(|p| p.get(name)) {
                        Some(s) => self.check(s, v, &here, problems),
                        None => match &schema["additionalProperties"] {
                            Value::Bool(false) => {
                                problems.push(format!("{here}: not a field of this object"));
                            }
                            extra @ Value::Object(_) => self.check(extra, v, &here, problems),
                            _ => {}
                        },
                    }
                }
            }
            Value::Array(items) => {
                bound(schema, "minItems", "maxItems", items.len(), at, problems);
                for (i, item) in items.iter().enumerate() {
                    self.check(&schema["items"], item, &format!("{at}[{i}]"), problems);
                }
            }
            Value::String(s) => {
                bound(
                    schema,
                    "minLength",
                    "maxLength",
                    s.chars().count(),
                    at,
                    problems,
                );
            }
            Value::Number(n) => {
                let n = n.as_f64().unwrap_or(f64::NAN);
                if schema["minimum"].as_f64().is_some_and(|min| n < min)
                    || schema["maximum"].as_f64().is_some_and(|max| n > max)
                {
                    problems.push(format!("{at}: {n} is out of bounds"));
                }
            }
            _ => {}
        }
    }
}

fn bound(schema: &Value, min: &str, max: &str, len: usize, at: &str, problems: &mut Vec<String>) {
    let len = len as u64;
    if schema[min].as_u64().is_some_and(|m| len < m)
        || schema[max].as_u64().is_some_and(|m| len > m)
    {
        problems.push(format!("{at}: length {len} is out of bounds ({min}/{max})"));
    }
}

/// Where `scripts/tools.sh` put GitHub's contract files.
pub fn contract_dir() -> PathBuf {
    std::env::var_os("OPENCLAW_TEST_GITHUB_CONTRACT")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".tools/github"))
}
