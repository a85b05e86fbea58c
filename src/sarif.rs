//! SARIF 2.1.0 output of a run's findings, for GitHub code scanning and any SARIF
//! viewer (`boo export <runId> --format sarif`, `boo run … --sarif FILE`).
//!
//! Each finding is one result with its own rule (a finding has no rule of its own, and
//! code scanning titles an alert by its rule). Verified findings are ordinary results
//! (`kind: fail`, level from the severity). Unverified ones are there too, marked:
//! `kind: review`, level `none`, `properties.verdict = "unverified"` and the reason in
//! the message. Findings without any citation have no location and are left out.

use crate::evidence::{CheckedCitation, CheckedFinding, Severity, Verdict};
use crate::runner::build_report_input;
use crate::store::{queries, Store, StoreError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What SARIF needs of a run.
#[derive(Debug, Clone)]
pub struct SarifInput {
    pub run_id: String,
    pub flow: String,
    pub flow_title: String,
    pub question: String,
    pub status: String,
    pub root: String,
    pub finished_at: Option<String>,
    pub findings: Vec<CheckedFinding>,
}

const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// A number code scanning sorts security alerts by (0.0–10.0).
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "1.0",
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 60 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "finding".into()
    } else {
        out
    }
}

/// Percent-encodes a relative path for a URI reference (keeps `/` and unreserved bytes).
fn uri_path(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A citation's path when it is a plain relative path inside the project.
fn relative_path(c: &CheckedCitation) -> Option<&str> {
    let p = c.path.trim();
    if p.is_empty()
        || p.starts_with('/')
        || p.contains('\\')
        || p.split('/').any(|part| part == ".." || part.is_empty())
        || p.chars().any(char::is_control)
    {
        return None;
    }
    Some(p)
}

fn location(c: &CheckedCitation) -> Option<Value> {
    let path = relative_path(c)?;
    let mut physical = json!({
        "artifactLocation": { "uri": uri_path(path), "uriBaseId": "SRCROOT" },
    });
    if let Some((a, b)) = c.lines.filter(|(a, b)| *a >= 1 && *b >= 1) {
        let mut region = json!({ "startLine": a.min(b), "endLine": a.max(b) });
        if let Some(q) = c.quote.as_deref().filter(|q| !q.trim().is_empty()) {
            region["snippet"] = json!({ "text": q });
        }
        physical["region"] = region;
    }
    Some(json!({ "physicalLocation": physical }))
}

/// A stable identity of a finding across runs: its title and cited files.
fn fingerprint(f: &CheckedFinding) -> String {
    let mut h = Sha256::new();
    h.update(one_line(&f.title).to_lowercase().as_bytes());
    let files: BTreeSet<&str> = f.evidence.iter().map(|e| e.path.as_str()).collect();
    for p in files {
        h.update([0]);
        h.update(p.as_bytes());
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn file_uri(dir: &str) -> String {
    let mut s = format!("file://{}", uri_path(dir));
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

/// The SARIF log of a run (deterministic: the same input gives the same bytes).
pub fn render(input: &SarifInput, version: &str) -> Value {
    let mut rules = Vec::new();
    let mut results = Vec::new();
    let mut used = BTreeSet::new();
    for f in &input.findings {
        if f.verdict == Verdict::NoEvidence {
            continue;
        }
        let locations: Vec<Value> = f.evidence.iter().filter_map(location).collect();
        if locations.is_empty() {
            continue;
        }
        let base = format!("boo/{}/{}", input.flow, slug(&f.title));
        let mut id = base.clone();
        let mut n = 2;
        while !used.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        let who: Vec<&str> = f.sources.iter().map(|s| s.agent.as_str()).collect();
        let verified = f.verdict == Verdict::Verified;
        let mut tags = vec!["boo".to_string(), input.flow.clone()];
        tags.extend(who.iter().map(|w| w.to_string()));
        if who.iter().any(|w| w.contains("security")) {
            tags.push("security".into());
        }
        let index = rules.len();
        rules.push(json!({
            "id": id,
            "name": slug(&f.title),
            "shortDescription": { "text": one_line(&f.title) },
            "fullDescription": { "text": one_line(&f.claim) },
            "help": {
                "text": format!(
                    "{} Found by boo's {} flow ({}); {}.",
                    one_line(&f.claim),
                    input.flow,
                    who.join(", "),
                    if verified { "its citations were checked against the files" } else { "a citation did not check out: verify it by hand" }
                ),
                "markdown": format!(
                    "{}\n\nFound by boo's `{}` flow ({}). {}",
                    one_line(&f.claim),
                    input.flow,
                    who.join(", "),
                    if verified { "Its citations were checked against the files." } else { "**Unverified**: a citation did not check out; verify it by hand." }
                ),
            },
            "defaultConfiguration": { "level": level(f.severity) },
            "properties": {
                "tags": tags,
                "security-severity": security_severity(f.severity),
            },
        }));
        let mut text = format!("{}: {}", one_line(&f.title), one_line(&f.claim));
        if verified {
            text.push_str(&format!(
                " (found by {}; citations checked)",
                who.join(", ")
            ));
        } else {
            text.push_str(&format!(
                " (unverified: {}; from {})",
                one_line(
                    f.reason
                        .as_deref()
                        .unwrap_or("a citation did not check out")
                ),
                who.join(", ")
            ));
        }
        let mut result = json!({
            "ruleId": id,
            "ruleIndex": index,
            "kind": if verified { "fail" } else { "review" },
            "level": if verified { level(f.severity) } else { "none" },
            "message": { "text": text },
            "locations": locations,
            "partialFingerprints": { "booFinding/v1": fingerprint(f) },
            "properties": {
                "severity": f.severity.as_str(),
                "verdict": if verified { "verified" } else { "unverified" },
                "foundBy": who,
                "steps": f.sources.iter().map(|s| s.step_id.as_str()).collect::<Vec<_>>(),
            },
        });
        if let Some(r) = f.reason.as_deref().filter(|_| !verified) {
            result["properties"]["reason"] = json!(r);
        }
        results.push(result);
    }
    let mut invocation = json!({
        "executionSuccessful": input.status == "completed",
        "properties": { "status": input.status },
    });
    if let Some(end) = &input.finished_at {
        invocation["endTimeUtc"] = json!(end);
    }
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "boo",
                "version": version,
                "semanticVersion": version,
                "rules": rules,
            } },
            "automationDetails": {
                "id": format!("boo/{}/{}", input.flow, input.run_id),
                "description": { "text": format!("{} — {}", input.flow_title, one_line(&input.question)) },
            },
            "originalUriBaseIds": { "SRCROOT": { "uri": file_uri(&input.root) } },
            "invocations": [invocation],
            "results": results,
            "properties": {
                "runId": input.run_id,
                "flow": input.flow,
                "question": input.question,
            },
        }],
    })
}

/// The findings as the run's stored report saw them, else checked now.
pub async fn load(store: &Store, run_id: &str) -> Result<Option<SarifInput>, StoreError> {
    let id = run_id.to_string();
    let got = store
        .call(move |c| {
            let Some(run) = queries::get_run(c, &id)? else {
                return Ok(None);
            };
            let steps = queries::get_steps(c, &id)?;
            let attachments = queries::run_attachments(c, &id)?;
            Ok(Some((run, steps, attachments)))
        })
        .await?;
    let Some((run, steps, attachments)) = got else {
        return Ok(None);
    };
    let summary = &run.run.summary;
    let stored = run
        .report_json
        .as_deref()
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
        .and_then(|v| {
            serde_json::from_value::<Vec<CheckedFinding>>(v.get("findings")?.clone()).ok()
        });
    let findings = match stored {
        Some(f) => f,
        None => {
            let status = summary.status;
            let root = PathBuf::from(&summary.root);
            let (r2, s2) = (run.clone(), steps);
            tokio::task::spawn_blocking(move || {
                build_report_input(&r2, &s2, &root, status, &attachments).1
            })
            .await
            .map_err(|e| StoreError::Data(e.to_string()))?
        }
    };
    Ok(Some(SarifInput {
        run_id: summary.run_id.clone(),
        flow: summary.flow.clone(),
        flow_title: run.run.title.clone().unwrap_or(summary.flow.clone()),
        question: summary.question.clone(),
        status: summary.status.as_str().to_string(),
        root: summary.root.clone(),
        finished_at: summary.finished_at.clone(),
        findings,
    }))
}

/// The SARIF text of a run, or None for an unknown run.
pub async fn text(store: &Store, run_id: &str) -> Result<Option<String>, StoreError> {
    Ok(load(store, run_id).await?.map(|input| {
        let mut s = serde_json::to_string_pretty(&render(&input, env!("CARGO_PKG_VERSION")))
            .unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    }))
}

/// Writes a run's SARIF log to `path` (for `boo run … --sarif FILE`).
pub async fn write(store: &Store, run_id: &str, path: &Path) -> Result<usize, String> {
    let text = text(store, run_id)
        .await
        .map_err(|e| format!("cannot read run {run_id}: {e}"))?
        .ok_or_else(|| format!("run {run_id} is not in the database"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, &text).map_err(|e| {
        format!(
            "cannot write {}: {e} — pass a --sarif path you can write",
            path.display()
        )
    })?;
    Ok(text.len())
}

/// `boo run … --sarif FILE`: writes the log and says so on stderr; false on failure.
pub async fn write_reported(store: &Store, run_id: &str, path: &Path) -> bool {
    match write(store, run_id, path).await {
        Ok(bytes) => {
            eprintln!(
                "boo: SARIF log of run {run_id} written to {} ({bytes} bytes)",
                path.display()
            );
            true
        }
        Err(e) => {
            eprintln!("boo: --sarif: {e}");
            false
        }
    }
}

/// `boo export <runId> --format sarif`.
pub async fn cli_export(config: &crate::config::Config, run_id: &str) -> i32 {
    let store = match crate::app::open_store(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("boo: {e}");
            return 1;
        }
    };
    match text(&store, run_id).await {
        Ok(Some(t)) => {
            print!("{t}");
            0
        }
        Ok(None) => {
            eprintln!("boo: unknown run {run_id}: `boo runs --all` lists them");
            1
        }
        Err(e) => {
            eprintln!("boo: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Source;

    fn cite(path: &str, lines: Option<(u32, u32)>, ok: bool) -> CheckedCitation {
        CheckedCitation {
            path: path.into(),
            lines,
            quote: Some("a + b".into()),
            ok,
            reason: (!ok).then(|| "the quote does not appear".to_string()),
            attachment: None,
        }
    }

    fn finding(
        title: &str,
        sev: Severity,
        verdict: Verdict,
        ev: Vec<CheckedCitation>,
    ) -> CheckedFinding {
        CheckedFinding {
            title: title.into(),
            severity: sev,
            claim: "The claim\nspans lines.".into(),
            verdict,
            reason: (verdict != Verdict::Verified).then(|| "the quote does not appear".into()),
            evidence: ev,
            sources: vec![Source {
                step_id: "security".into(),
                agent: "adversarial-security-analyst".into(),
            }],
        }
    }

    fn input(findings: Vec<CheckedFinding>) -> SarifInput {
        SarifInput {
            run_id: "0190c0de-0000-7000-8000-000000000000".into(),
            flow: "code-review".into(),
            flow_title: "Code review".into(),
            question: "Is add safe?".into(),
            status: "completed".into(),
            root: "/work/my project".into(),
            finished_at: Some("2026-01-01T00:00:00.000Z".into()),
            findings,
        }
    }

    #[test]
    fn verified_unverified_and_uncited_findings() {
        let log = render(
            &input(vec![
                finding(
                    "Overflow in add",
                    Severity::High,
                    Verdict::Verified,
                    vec![cite("src/lib.rs", Some((2, 2)), true)],
                ),
                finding(
                    "Overflow in add",
                    Severity::Low,
                    Verdict::Unverified,
                    vec![cite("src/a b.rs", Some((9, 3)), false)],
                ),
                finding(
                    "Nothing cited",
                    Severity::Critical,
                    Verdict::NoEvidence,
                    vec![],
                ),
                finding(
                    "Outside",
                    Severity::Medium,
                    Verdict::Unverified,
                    vec![cite("../etc/passwd", None, false)],
                ),
            ]),
            "1.2.3",
        );
        let run = &log["runs"][0];
        assert_eq!(log["version"], "2.1.0");
        assert_eq!(run["tool"]["driver"]["version"], "1.2.3");
        assert_eq!(
            run["originalUriBaseIds"]["SRCROOT"]["uri"],
            "file:///work/my%20project/"
        );
        let results = run["results"].as_array().unwrap();
        assert_eq!(
            results.len(),
            2,
            "the uncited and the outside findings are left out"
        );
        let (v, u) = (&results[0], &results[1]);
        assert_eq!(v["ruleId"], "boo/code-review/overflow-in-add");
        assert_eq!(
            u["ruleId"], "boo/code-review/overflow-in-add-2",
            "rule ids stay unique"
        );
        assert_eq!(
            (v["kind"].as_str(), v["level"].as_str()),
            (Some("fail"), Some("error"))
        );
        assert_eq!(
            (u["kind"].as_str(), u["level"].as_str()),
            (Some("review"), Some("none"))
        );
        assert_eq!(u["properties"]["verdict"], "unverified");
        assert!(u["message"]["text"]
            .as_str()
            .unwrap()
            .contains("(unverified: the quote does not appear"));
        assert_eq!(v["message"]["text"].as_str().unwrap(), "Overflow in add: The claim spans lines. (found by adversarial-security-analyst; citations checked)");
        let loc = &u["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "src/a%20b.rs");
        assert_eq!(
            (
                loc["region"]["startLine"].as_u64(),
                loc["region"]["endLine"].as_u64()
            ),
            (Some(3), Some(9))
        );
        assert_eq!(run["tool"]["driver"]["rules"][1]["id"], u["ruleId"]);
        assert_eq!(u["ruleIndex"], 1);
        assert!(run["tool"]["driver"]["rules"][0]["properties"]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("security")));
        assert_eq!(run["invocations"][0]["executionSuccessful"], true);
        // The SARIF suite (scripts/test-sarif.sh) validates this file with the SARIF
        // authors' validator: it holds a verified and an unverified result.
        let mut pretty = serde_json::to_string_pretty(&log).unwrap();
        pretty.push('\n');
        crate::snapshot::assert_snapshot("sarif-sample.sarif", &pretty);
        let again = render(
            &input(vec![finding(
                "Overflow in add",
                Severity::High,
                Verdict::Verified,
                vec![cite("src/lib.rs", Some((2, 2)), true)],
            )]),
            "1.2.3",
        );
        assert_eq!(
            again["runs"][0]["results"][0]["partialFingerprints"],
            v["partialFingerprints"]
        );
    }

    #[test]
    fn levels_follow_severity() {
        assert_eq!(level(Severity::Critical), "error");
        assert_eq!(level(Severity::Medium), "warning");
        assert_eq!(level(Severity::Info), "note");
        assert_eq!(slug("  Unbounded   cache!! "), "unbounded-cache");
        assert_eq!(slug("!!!"), "finding");
    }
}
