//! Reading request params into their `ext` types. serde does the reading; a field it
//! refuses (missing, or of the wrong JSON type) becomes a `-32602` message that names
//! the field and what it takes, never a bare serde error. Checks serde cannot make
//! (an empty question, a limit out of range) follow in `check`.

use super::ext;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Params of a `boo/*` request.
pub trait Params: DeserializeOwned {
    /// The message for a field serde refused (`field` is a dotted path, `got` the value
    /// sent there, if any). `None`: the generic "`field`: …" message.
    fn refused(_field: &str, _got: Option<&Value>) -> Option<String> {
        None
    }
    /// What serde cannot check.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Reads `params` (null or `[]`, as some clients send for "nothing", reads as `{}`)
/// or says which field is wrong.
pub fn parse<P: Params>(params: Value) -> Result<P, String> {
    let nothing = params.is_null() || params.as_array().is_some_and(|a| a.is_empty());
    let params = if nothing {
        Value::Object(Default::default())
    } else {
        params
    };
    let parsed: Result<P, _> = serde_path_to_error::deserialize(&params);
    let p = match parsed {
        Ok(p) => p,
        Err(e) => {
            let (field, why) = refused_field(&e);
            let got = if field.is_empty() {
                Some(&params)
            } else {
                params.pointer(&format!("/{}", field.replace('.', "/")))
            };
            return Err(P::refused(&field, got).unwrap_or_else(|| {
                if field.is_empty() {
                    format!("params: {why}")
                } else {
                    format!("{field}: {why}")
                }
            }));
        }
    };
    p.check()?;
    Ok(p)
}

/// The dotted path of the field serde refused, and why.
fn refused_field(e: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let mut path = e.path().to_string();
    if path == "." {
        path.clear();
    }
    let inner = e.inner().to_string();
    // serde_json appends " at line L column C", meaningless for a value.
    let why = match inner.find(" at line ") {
        Some(i) => inner[..i].to_string(),
        None => inner,
    };
    // A missing field is reported at its parent: name the field itself.
    if let Some(rest) = why.strip_prefix("missing field `") {
        let name = rest.trim_end_matches('`');
        let full = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        return (full, "missing".into());
    }
    (path, why)
}

const LIMIT: &str = "limit: a whole number from 1 to 1000";
const RUN_ID: &str = "runId: required, the id `boo/launchFlow` returned";

fn known_flows() -> String {
    // The embedded catalog (a BOO_CATALOG_DIR's own list shows at launch instead).
    crate::catalog::Catalog::builtin(None)
        .flows
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

fn flow_required() -> String {
    format!(
        "flow: a flow name is required; known flows: {}",
        known_flows()
    )
}

fn check_limit(limit: Option<u32>) -> Result<(), String> {
    match limit {
        Some(n) if !(1..=1000).contains(&n) => Err(LIMIT.into()),
        _ => Ok(()),
    }
}

/// Each launch attachment is `{ name, mimeType?, data }` or `{ path }`.
fn check_attachments(given: Option<&Vec<ext::LaunchAttachment>>) -> Result<(), String> {
    for (i, a) in given.into_iter().flatten().enumerate() {
        let shown = a
            .name
            .as_deref()
            .or(a.path.as_deref())
            .unwrap_or("(unnamed)");
        match (&a.data, &a.path) {
            (Some(_), None) if a.name.as_deref().is_some_and(|n| !n.trim().is_empty()) => {}
            (Some(_), None) => {
                return Err(format!(
                    "attachments[{i}]: an image given by its data needs a `name` (a file name such as \"screenshot.png\")"
                ))
            }
            (None, Some(p)) if !p.trim().is_empty() && a.mime_type.is_none() => {}
            (None, Some(_)) => {
                return Err(format!(
                    "attachments[{i}] {shown}: send `{{ path }}` alone, a non-empty path (the type is read from the file)"
                ))
            }
            _ => {
                return Err(format!(
                    "attachments[{i}] {shown}: send either `{{ name, mimeType, data }}` (data in base64) or `{{ path }}`"
                ))
            }
        }
    }
    Ok(())
}

fn check_run_id(run_id: &str) -> Result<(), String> {
    if run_id.is_empty() {
        Err(RUN_ID.into())
    } else {
        Ok(())
    }
}

impl Params for ext::ListFlowsParams {}

impl Params for ext::ListWorkflowsParams {}

impl Params for ext::LaunchWorkflowParams {
    fn check(&self) -> Result<(), String> {
        let given = [
            self.workflow.is_some(),
            self.script.is_some(),
            self.script_path.is_some(),
        ];
        match given.iter().filter(|g| **g).count() {
            1 => check_attachments(self.attachments.as_ref()),
            _ => Err("workflow, script, scriptPath: send exactly one of them (a workflow name, the script's text, or the path of a .js file)".into()),
        }
    }
}

impl Params for ext::LaunchFlowParams {
    fn refused(field: &str, got: Option<&Value>) -> Option<String> {
        Some(match field {
            "flow" => flow_required(),
            "band" => match got {
                Some(Value::String(s)) => match s.parse::<crate::model::Band>() {
                    Err(e) => format!("band: {e}"),
                    Ok(_) => return None,
                },
                Some(other) => format!(
                    "band: {other} is not a band: use one of \"small\", \"medium\", \"large\""
                ),
                None => return None,
            },
            "input" | "input.question" => {
                "input.question: missing; send `input: { question: \"...\" }` with the focus text"
                    .into()
            }
            "root" => format!(
                "root: {} is not a directory path",
                got.unwrap_or(&Value::Null)
            ),
            _ => return None,
        })
    }
    fn check(&self) -> Result<(), String> {
        if self.flow.trim().is_empty() {
            return Err(flow_required());
        }
        if self.input.question.trim().is_empty() {
            return Err("input.question: the question is empty; give the flow a focus (what should it look at?)".into());
        }
        if self.root.as_deref() == Some("") {
            return Err("root: \"\" is not a directory path".into());
        }
        check_attachments(self.attachments.as_ref())
    }
}

impl Params for ext::SpawnAgentParams {
    fn refused(field: &str, got: Option<&Value>) -> Option<String> {
        Some(match field {
            "persona" => "persona: a persona name is required (e.g. \"codebase-explorer\"); `boo personas` lists them".into(),
            "prompt" => "prompt: the agent's task is required, as text".into(),
            "root" => format!("root: {} is not a directory path", got.unwrap_or(&Value::Null)),
            "model" => "model: a model name the endpoint serves, as text".into(),
            _ => return None,
        })
    }
    fn check(&self) -> Result<(), String> {
        if self.persona.trim().is_empty() {
            return Err("persona: a persona name is required (e.g. \"codebase-explorer\"); `boo personas` lists them".into());
        }
        if self.prompt.trim().is_empty() {
            return Err("prompt: the prompt is empty; say what the agent should do".into());
        }
        if self.root.as_deref() == Some("") {
            return Err("root: \"\" is not a directory path".into());
        }
        Ok(())
    }
}

impl Params for ext::ListAgentsParams {
    fn refused(field: &str, got: Option<&Value>) -> Option<String> {
        Some(match field {
            "root" => format!("root: {} is not a path", got.unwrap_or(&Value::Null)),
            "status" => {
                "status: one of \"running\", \"completed\", \"failed\", \"cancelled\"".into()
            }
            "limit" => LIMIT.into(),
            _ => return None,
        })
    }
    fn check(&self) -> Result<(), String> {
        check_limit(self.limit)
    }
}

impl Params for ext::GetAttachmentParams {
    fn refused(field: &str, _: Option<&Value>) -> Option<String> {
        (field == "attachmentId").then(|| ATTACHMENT_ID.into())
    }
    fn check(&self) -> Result<(), String> {
        if self.attachment_id.trim().is_empty() {
            Err(ATTACHMENT_ID.into())
        } else {
            Ok(())
        }
    }
}

const ATTACHMENT_ID: &str =
    "attachmentId: send the `attachmentId` of an entry of a run's `attachments` (boo/getRun)";

impl Params for ext::ListRunsParams {
    fn refused(field: &str, got: Option<&Value>) -> Option<String> {
        Some(match field {
            "root" => format!("root: {} is not a path", got.unwrap_or(&Value::Null)),
            "limit" => LIMIT.into(),
            "before" => "before: the `next` string of a previous page".into(),
            _ => return None,
        })
    }
    fn check(&self) -> Result<(), String> {
        check_limit(self.limit)
    }
}

impl Params for ext::GetRunParams {
    fn refused(field: &str, _: Option<&Value>) -> Option<String> {
        (field == "runId").then(|| RUN_ID.into())
    }
    fn check(&self) -> Result<(), String> {
        check_run_id(&self.run_id)
    }
}

impl Params for ext::CancelRunParams {
    fn refused(field: &str, _: Option<&Value>) -> Option<String> {
        (field == "runId").then(|| RUN_ID.into())
    }
    fn check(&self) -> Result<(), String> {
        check_run_id(&self.run_id)
    }
}

impl Params for ext::ExportRunParams {
    fn refused(field: &str, got: Option<&Value>) -> Option<String> {
        match field {
            "runId" => Some(RUN_ID.into()),
            "format" => Some(format!(
                "format: {} is not supported: use \"markdown\" or \"json\"",
                got.unwrap_or(&Value::Null)
            )),
            _ => None,
        }
    }
    fn check(&self) -> Result<(), String> {
        check_run_id(&self.run_id)
    }
}

impl Params for ext::TrustRootParams {
    fn refused(field: &str, _: Option<&Value>) -> Option<String> {
        Some(match field {
            "root" => "root: the project folder's path (a string) is required".into(),
            "trusted" => {
                "trusted: true trusts the root, false revokes the trust (a boolean is required)"
                    .into()
            }
            _ => return None,
        })
    }
    fn check(&self) -> Result<(), String> {
        if self.root.trim().is_empty() {
            return Err("root: the project folder's path is empty".into());
        }
        Ok(())
    }
}

impl Params for ext::GetTracesParams {
    fn refused(field: &str, _: Option<&Value>) -> Option<String> {
        Some(match field {
            "runId" => RUN_ID.into(),
            "cursor" => "cursor: the `nextCursor` string of a previous page".into(),
            "limit" => LIMIT.into(),
            _ => return None,
        })
    }
    fn check(&self) -> Result<(), String> {
        check_run_id(&self.run_id)?;
        if let Some(c) = &self.cursor {
            if c.parse::<i64>().is_err() {
                return Err("cursor: the `nextCursor` string of a previous page".into());
            }
        }
        check_limit(self.limit)
    }
}

impl Params for ext::GetModelCallsParams {
    fn refused(field: &str, _: Option<&Value>) -> Option<String> {
        Some(match field {
            "runId" => RUN_ID.into(),
            "cursor" => "cursor: the `nextCursor` string of a previous page".into(),
            "limit" => LIMIT.into(),
            _ => return None,
        })
    }
    fn check(&self) -> Result<(), String> {
        check_run_id(&self.run_id)?;
        if let Some(c) = &self.cursor {
            if c.parse::<i64>().is_err() {
                return Err("cursor: the `nextCursor` string of a previous page".into());
            }
        }
        check_limit(self.limit)
    }
}

impl Params for ext::RefusedFrame {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refused_field_is_named_with_what_it_takes() {
        let e = parse::<ext::LaunchFlowParams>(
            json!({"flow": "code-review", "band": "huge", "input": {"question": "q"}}),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "band: unknown band \"huge\": use one of \"small\", \"medium\", \"large\""
        );
        let e = parse::<ext::LaunchFlowParams>(
            json!({"flow": "code-review", "band": 3, "input": {"question": "q"}}),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "band: 3 is not a band: use one of \"small\", \"medium\", \"large\""
        );
        for input in [json!({}), json!({"question": 5}), json!("q")] {
            let e =
                parse::<ext::LaunchFlowParams>(json!({"flow": "x", "input": input})).unwrap_err();
            assert!(e.starts_with("input.question: missing"), "{e}");
        }
        let e = parse::<ext::LaunchFlowParams>(json!({"flow": "x"})).unwrap_err();
        assert!(e.starts_with("input.question: missing"), "{e}");
        let e = parse::<ext::LaunchFlowParams>(json!({"input": {"question": "q"}})).unwrap_err();
        assert!(
            e.starts_with("flow: a flow name is required; known flows: "),
            "{e}"
        );
        let e = parse::<ext::LaunchFlowParams>(
            json!({"flow": "x", "input": {"question": "q"}, "root": 7}),
        )
        .unwrap_err();
        assert_eq!(e, "root: 7 is not a directory path");
        // A field without a message of its own still names the field.
        let e = parse::<ext::LaunchFlowParams>(
            json!({"flow": "x", "input": {"question": "q"}, "fast": "yes"}),
        )
        .unwrap_err();
        assert!(e.starts_with("fast: invalid type: string \"yes\""), "{e}");
        assert!(!e.contains("line"), "{e}");
    }

    #[test]
    fn checks_after_reading() {
        let e = parse::<ext::LaunchFlowParams>(json!({"flow": "x", "input": {"question": " "}}))
            .unwrap_err();
        assert!(e.contains("the question is empty"), "{e}");
        let e = parse::<ext::LaunchFlowParams>(
            json!({"flow": "x", "input": {"question": "q"}, "root": ""}),
        )
        .unwrap_err();
        assert_eq!(e, "root: \"\" is not a directory path");
        for bad in [json!(0), json!(1001), json!(-1), json!(2.5), json!("5")] {
            let e = parse::<ext::ListRunsParams>(json!({ "limit": bad })).unwrap_err();
            assert_eq!(e, LIMIT);
        }
        let e = parse::<ext::GetTracesParams>(json!({"runId": "r", "cursor": "x"})).unwrap_err();
        assert!(e.starts_with("cursor:"), "{e}");
        for bad in [json!({}), json!({"runId": ""}), json!({"runId": 5})] {
            assert_eq!(parse::<ext::GetRunParams>(bad).unwrap_err(), RUN_ID);
        }
        let e = parse::<ext::ExportRunParams>(json!({"runId": "r", "format": "pdf"})).unwrap_err();
        assert_eq!(
            e,
            "format: \"pdf\" is not supported: use \"markdown\" or \"json\""
        );
    }

    #[test]
    fn absent_null_and_given_roots_differ() {
        let p = parse::<ext::ListRunsParams>(json!({})).unwrap();
        assert_eq!(p.root, None);
        let p = parse::<ext::ListRunsParams>(json!({ "root": null })).unwrap();
        assert_eq!(p.root, Some(None));
        let p = parse::<ext::ListRunsParams>(json!({ "root": "/x" })).unwrap();
        assert_eq!(p.root, Some(Some("/x".into())));
        let p = parse::<ext::ListFlowsParams>(Value::Null).unwrap();
        assert_eq!(p.root, None);
        let p = parse::<ext::ListFlowsParams>(json!([])).unwrap();
        assert_eq!(p.root, None);
        let e = parse::<ext::ListRunsParams>(json!({ "root": 1 })).unwrap_err();
        assert_eq!(e, "root: 1 is not a path");
    }
}
