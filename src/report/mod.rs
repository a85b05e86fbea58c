//! The run report: Markdown for people, JSON for tools. Deterministic: the same step
//! outputs give the same report, byte for byte.

use crate::clock::human_duration;
use crate::evidence::{CheckedFinding, Severity, Verdict};
use crate::model::{StepKind, StepStatus, Usage, WireUsage};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepSummary {
    pub step_id: String,
    pub agent: String,
    pub kind: StepKind,
    pub label: String,
    pub wave: u32,
    pub status: StepStatus,
    pub duration_ms: Option<i64>,
    pub usage: Usage,
    pub error: Option<String>,
    /// The step's prose (findings block removed), for answer steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Set when the step's findings block could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings_problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportInput {
    pub run_id: String,
    pub flow: String,
    pub flow_title: String,
    pub band: String,
    /// `"flow"` or `"workflow"`: a workflow run's header names the workflow and no band.
    pub kind: String,
    pub question: String,
    pub status: String,
    /// Warnings that lead the report (project modified, sandbox unavailable, ...).
    pub alerts: Vec<String>,
    pub steps: Vec<StepSummary>,
    pub findings: Vec<CheckedFinding>,
    /// The snapshot the run read, and what changed in the real tree since it was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotNote>,
    /// The images the run was launched with (with their ids: `boo/getAttachment`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::attach::AttachmentInfo>,
}

/// What the report says about the run's snapshot of the project.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotNote {
    /// When it was taken (RFC 3339).
    pub taken_at: String,
    /// Taken again when the run resumed (the first one was gone).
    pub retaken: bool,
    /// Files it holds.
    pub files: u64,
    /// What changed in the real tree since; `None` when that could not be found out.
    pub changes: Option<crate::project::snapshot::TreeChanges>,
    /// Why the changes could not be found out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How many names of each kind of change the Markdown report lists.
const CHANGES_SHOWN: usize = 20;

fn write_names(md: &mut String, what: &str, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let shown: Vec<String> = names
        .iter()
        .take(CHANGES_SHOWN)
        .map(|n| format!("`{}`", one_line(n)))
        .collect();
    let more = names.len().saturating_sub(CHANGES_SHOWN);
    let _ = writeln!(
        md,
        "- {what} ({}): {}{}",
        names.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
}

fn write_snapshot(md: &mut String, s: &SnapshotNote) {
    let _ = writeln!(md, "## Snapshot");
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "The agents and checks read a snapshot of the project ({} files) taken at {}{}; edits made since then did not reach this run.",
        s.files,
        s.taken_at,
        if s.retaken {
            " when the run resumed (the first snapshot was gone: steps before the restart read an earlier copy)"
        } else {
            ""
        }
    );
    let _ = writeln!(md);
    match (&s.changes, &s.error) {
        (Some(c), _) if c.is_empty() => {
            let _ = writeln!(md, "The project has not changed since.");
        }
        (Some(c), _) => {
            let _ = writeln!(md, "Changed in the project since the snapshot:");
            let _ = writeln!(md);
            write_names(md, "modified", &c.modified);
            write_names(md, "added", &c.added);
            write_names(md, "removed", &c.removed);
        }
        (None, e) => {
            let _ = writeln!(
                md,
                "What changed in the project since could not be found out: {}",
                one_line(e.as_deref().unwrap_or("unknown"))
            );
        }
    }
    let _ = writeln!(md);
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportJson<'a> {
    #[serde(flatten)]
    pub input: &'a ReportInput,
    pub usage: WireUsage,
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub verified: usize,
    pub unverified: usize,
    pub no_evidence: usize,
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A citation as the report shows it: a file with its lines, or an attached image
/// (with the region the agent named).
fn cited(e: &crate::evidence::CheckedCitation) -> String {
    match &e.attachment {
        Some(a) => match a.region.as_deref().filter(|r| !r.trim().is_empty()) {
            Some(r) => format!("image `{}` ({})", one_line(&a.name), one_line(r)),
            None => format!("image `{}`", one_line(&a.name)),
        },
        None => format!("`{}`", lines_ref(&e.path, e.lines)),
    }
}

fn lines_ref(path: &str, lines: Option<(u32, u32)>) -> String {
    match lines {
        Some((a, b)) if a == b => format!("{path}:{a}"),
        Some((a, b)) => format!("{path}:{a}-{b}"),
        None => path.to_string(),
    }
}

fn pct(r: Option<f64>) -> String {
    r.map(|r| format!("{:.0}%", r * 100.0))
        .unwrap_or_else(|| "–".into())
}

pub fn total_usage(input: &ReportInput) -> Usage {
    let mut u = Usage::default();
    for s in &input.steps {
        u.add(&s.usage);
    }
    u
}

pub fn counts(input: &ReportInput) -> Counts {
    let n = |v: Verdict| input.findings.iter().filter(|f| f.verdict == v).count();
    Counts {
        verified: n(Verdict::Verified),
        unverified: n(Verdict::Unverified),
        no_evidence: n(Verdict::NoEvidence),
    }
}

fn sources(f: &CheckedFinding) -> String {
    f.sources
        .iter()
        .map(|s| s.agent.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The "## Answer" section of a flow's report: the answering steps' text.
fn write_answer(md: &mut String, r: &ReportInput) {
    let _ = writeln!(md, "## Answer");
    let _ = writeln!(md);
    let answers: Vec<&StepSummary> = r.steps.iter().filter(|s| s.answer.is_some()).collect();
    let mut wrote = false;
    for s in &answers {
        let text = s.answer.as_deref().unwrap_or_default().trim();
        if text.is_empty() {
            continue;
        }
        if answers.len() > 1 {
            let _ = writeln!(md, "### {} ({})", s.label, s.agent);
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "{text}");
        let _ = writeln!(md);
        wrote = true;
    }
    if !wrote {
        let _ = writeln!(
            md,
            "_No answer was produced: the answering step did not complete._"
        );
        let _ = writeln!(md);
    }
}

pub fn render_markdown(r: &ReportInput) -> String {
    let mut md = String::new();
    // A workflow's title is its one-line description, often long: its name heads the
    // report instead.
    let heading = if r.kind == "workflow" {
        &r.flow
    } else {
        &r.flow_title
    };
    let _ = writeln!(md, "# {} — {}", heading, one_line(&r.question));
    let _ = writeln!(md);
    let c = counts(r);
    if r.kind == "workflow" {
        let _ = writeln!(
            md,
            "_Workflow `{}` · {} · {} verified, {} unverified, {} without evidence_",
            r.flow, r.status, c.verified, c.unverified, c.no_evidence
        );
    } else if r.kind == "agent" {
        // A background agent: one persona on one prompt (the question).
        let persona = r.steps.first().map(|s| s.agent.as_str()).unwrap_or("agent");
        let _ = writeln!(
            md,
            "_Background agent `{}` · {} · {} verified, {} unverified, {} without evidence_",
            persona, r.status, c.verified, c.unverified, c.no_evidence
        );
    } else {
        let _ = writeln!(
            md,
            "_Flow `{}` · band {} · {} · {} verified, {} unverified, {} without evidence_",
            r.flow, r.band, r.status, c.verified, c.unverified, c.no_evidence
        );
    }
    let _ = writeln!(md);
    if !r.attachments.is_empty() {
        let _ = writeln!(md, "**Attachments** (images the agents were given):");
        let _ = writeln!(md);
        for a in &r.attachments {
            let _ = writeln!(
                md,
                "- `{}` — {}, {}×{} px, {} bytes (attachment `{}`, sha256 `{}`)",
                one_line(&a.name),
                a.mime_type,
                a.width,
                a.height,
                a.bytes,
                a.attachment_id,
                &a.sha256[..a.sha256.len().min(12)]
            );
        }
        let _ = writeln!(md);
    }
    for a in &r.alerts {
        let _ = writeln!(md, "> **Warning:** {}", one_line(a));
        let _ = writeln!(md);
    }
    let failed: Vec<&StepSummary> = r
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            md,
            "> **{} step(s) failed**; their dependents ran without their output:",
            failed.len()
        );
        for s in failed {
            let _ = writeln!(
                md,
                "> - `{}` ({}): {}",
                s.step_id,
                s.agent,
                one_line(s.error.as_deref().unwrap_or("no error recorded"))
            );
        }
        let _ = writeln!(md);
    }

    // A workflow's answer is its return value, which the driver puts above this
    // report ("## Result"); only a flow has an answering step.
    if r.kind != "workflow" {
        write_answer(&mut md, r);
    }

    let _ = writeln!(md, "## Verified findings");
    let _ = writeln!(md);
    let verified: Vec<&CheckedFinding> = r
        .findings
        .iter()
        .filter(|f| f.verdict == Verdict::Verified)
        .collect();
    if verified.is_empty() {
        let _ = writeln!(md, "_None._");
        let _ = writeln!(md);
    }
    for sev in Severity::ALL {
        let group: Vec<&&CheckedFinding> = verified.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        let mut title = sev.as_str().to_string();
        title[..1].make_ascii_uppercase();
        let _ = writeln!(md, "### {title}");
        let _ = writeln!(md);
        for f in group {
            let refs = f.evidence.iter().map(cited).collect::<Vec<_>>().join(", ");
            let _ = writeln!(md, "- **{}** — {}", one_line(&f.title), one_line(&f.claim));
            let _ = writeln!(md, "  {refs} · found by {}", sources(f));
        }
        let _ = writeln!(md);
    }

    let unverified: Vec<&CheckedFinding> = r
        .findings
        .iter()
        .filter(|f| f.verdict == Verdict::Unverified)
        .collect();
    if !unverified.is_empty() {
        let _ = writeln!(md, "## Unverified findings");
        let _ = writeln!(md);
        for f in unverified {
            let _ = writeln!(
                md,
                "- **{}** ({}) — {} _Not verified: {}._ · from {}",
                one_line(&f.title),
                f.severity.as_str(),
                one_line(&f.claim),
                one_line(f.reason.as_deref().unwrap_or("unknown")),
                sources(f)
            );
        }
        let _ = writeln!(md);
    }
    let deferred: Vec<&CheckedFinding> = r
        .findings
        .iter()
        .filter(|f| f.verdict == Verdict::NoEvidence)
        .collect();
    if !deferred.is_empty() {
        let _ = writeln!(md, "## Deferred (no evidence given)");
        let _ = writeln!(md);
        for f in deferred {
            let _ = writeln!(
                md,
                "- **{}** ({}) — {} · from {}",
                one_line(&f.title),
                f.severity.as_str(),
                one_line(&f.claim),
                sources(f)
            );
        }
        let _ = writeln!(md);
    }
    let problems: Vec<&StepSummary> = r
        .steps
        .iter()
        .filter(|s| s.findings_problem.is_some())
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(md, "## Unreadable findings");
        let _ = writeln!(md);
        for s in problems {
            let _ = writeln!(
                md,
                "- `{}` ({}): {}",
                s.step_id,
                s.agent,
                one_line(s.findings_problem.as_deref().unwrap_or_default())
            );
        }
        let _ = writeln!(md);
    }

    if let Some(s) = &r.snapshot {
        write_snapshot(&mut md, s);
    }

    let _ = writeln!(md, "## Roster");
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| wave | step | agent | status | duration | tokens in / out | cache hit |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |");
    for s in &r.steps {
        let tokens = if s.kind == StepKind::Agent {
            format!("{} / {}", s.usage.input_tokens, s.usage.output_tokens)
        } else {
            "–".into()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            s.wave,
            s.label,
            s.agent,
            s.status.as_str(),
            s.duration_ms
                .map(human_duration)
                .unwrap_or_else(|| "–".into()),
            tokens,
            if s.kind == StepKind::Agent {
                pct(s.usage.cache_hit_rate())
            } else {
                "–".into()
            }
        );
    }
    let _ = writeln!(md);
    let u = total_usage(r);
    let _ = writeln!(md, "## Statistics");
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "- Tokens: {} in, {} out, {} read from the prompt cache ({} cache hit rate), {} total",
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        pct(u.cache_hit_rate()),
        u.total_tokens
    );
    let agents = r.steps.iter().filter(|s| s.kind == StepKind::Agent).count();
    let done = r
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Agent && s.status == StepStatus::Completed)
        .count();
    let _ = writeln!(md, "- Agent steps: {done} of {agents} completed");
    let _ = writeln!(md, "- Run: `{}`", r.run_id);
    md
}

pub fn render_json(r: &ReportInput) -> String {
    let j = ReportJson {
        input: r,
        usage: total_usage(r).into(),
        counts: counts(r),
    };
    serde_json::to_string_pretty(&j).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{check_finding, parse_answer, Source};

    #[test]
    fn a_citation_of_an_attached_image_is_shown_as_one() {
        use crate::evidence::{CheckedCitation, ImageCitation};
        let image = CheckedCitation {
            path: String::new(),
            lines: None,
            quote: None,
            ok: false,
            reason: None,
            attachment: Some(ImageCitation {
                name: "layout.png".into(),
                region: Some("top left".into()),
            }),
        };
        assert_eq!(cited(&image), "image `layout.png` (top left)");
        let bare = CheckedCitation {
            attachment: Some(ImageCitation {
                name: "layout.png".into(),
                region: None,
            }),
            ..image.clone()
        };
        assert_eq!(cited(&bare), "image `layout.png`");
        let file = CheckedCitation {
            path: "src/lib.rs".into(),
            lines: Some((3, 4)),
            ok: true,
            attachment: None,
            ..image
        };
        assert_eq!(cited(&file), "`src/lib.rs:3-4`");
    }

    /// Recorded step outputs → the report, byte for byte.
    #[test]
    fn report_from_recorded_outputs() {
        let root = std::env::temp_dir().join(format!("boo-report-{}", std::process::id()));
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/cache.rs"), "use std::sync::Mutex;\nstatic CACHE: Mutex<Vec<u8>> = Mutex::new(Vec::new());\nfn get() { let g = CACHE.lock().unwrap(); }\n").unwrap();
        let outputs = [
            ("security", "adversarial-security-analyst", "The cache has no size bound.\n```findings\n[{\"title\": \"Unbounded cache\", \"severity\": \"high\", \"claim\": \"CACHE grows without limit.\", \"evidence\": [{\"path\": \"src/cache.rs\", \"lines\": [2, 2], \"quote\": \"static CACHE: Mutex<Vec<u8>>\"}]},\n {\"title\": \"Secret in logs\", \"severity\": \"critical\", \"claim\": \"Tokens are logged.\", \"evidence\": [{\"path\": \"src/log.rs\", \"lines\": [1, 3]}]}]\n```"),
            ("structure", "structural-analyst", "Poisoning is not handled.\n```findings\n[{\"title\": \"Lock poisoning panics\", \"severity\": \"medium\", \"claim\": \"unwrap on lock.\", \"evidence\": [{\"path\": \"src/cache.rs\", \"lines\": [3, 3], \"quote\": \"CACHE.lock().unwrap()\"}]}, {\"title\": \"No tests\", \"severity\": \"low\", \"claim\": \"Nothing tests the cache.\"},]\n```"),
            ("verdict", "plan-synthesizer", "Bound the cache and handle poisoning before merging.\n```findings\n[{\"title\": \"unbounded cache\", \"severity\": \"medium\", \"claim\": \"Same as the security pass.\", \"evidence\": [{\"path\": \"src/cache.rs\", \"lines\": [2, 2]}]}]\n```"),
        ];
        let mut findings = Vec::new();
        let mut steps = Vec::new();
        for (i, (id, agent, out)) in outputs.iter().enumerate() {
            let parsed = parse_answer(out);
            for f in &parsed.findings {
                findings.push(check_finding(
                    &root,
                    f,
                    Source {
                        step_id: id.to_string(),
                        agent: agent.to_string(),
                    },
                ));
            }
            steps.push(StepSummary {
                step_id: id.to_string(),
                agent: agent.to_string(),
                kind: StepKind::Agent,
                label: format!("Step {id}"),
                wave: if i < 2 { 1 } else { 2 },
                status: StepStatus::Completed,
                duration_ms: Some(1500 * (i as i64 + 1)),
                usage: Usage {
                    input_tokens: 1000,
                    output_tokens: 100,
                    cache_read_tokens: 800,
                    total_tokens: 1100,
                },
                error: None,
                answer: (*id == "verdict").then(|| parsed.prose.clone()),
                findings_problem: None,
            });
        }
        steps.push(StepSummary {
            step_id: "tests".into(),
            agent: "test-engineer".into(),
            kind: StepKind::Agent,
            label: "Step tests".into(),
            wave: 1,
            status: StepStatus::Failed,
            duration_ms: Some(300),
            usage: Usage::default(),
            error: Some("qwen failed: [API Error: 401]".into()),
            answer: None,
            findings_problem: None,
        });
        let input = ReportInput {
            run_id: "0190c0de-0000-7000-8000-000000000000".into(),
            flow: "code-review".into(),
            flow_title: "Code review".into(),
            band: "small".into(),
            kind: "flow".into(),
            question: "What could break in the cache?".into(),
            status: "completed".into(),
            alerts: vec![],
            steps,
            findings: crate::evidence::merge(findings),
            snapshot: None,
            attachments: vec![],
        };
        let md = render_markdown(&input);
        crate::snapshot::assert_snapshot("report-code-review.md", &md);
        let wf = ReportInput {
            kind: "workflow".into(),
            flow: "deep-review".into(),
            ..input.clone()
        };
        let wf_md = render_markdown(&wf);
        assert!(wf_md.contains(
            "\n_Workflow `deep-review` · completed · 2 verified, 1 unverified, 1 without evidence_\n"
        ));
        // Its name heads it, and it has no flow's answer section (the driver puts the
        // script's result on top); its findings are there as for a flow.
        assert!(wf_md.starts_with("# deep-review — "), "{wf_md}");
        assert!(!wf_md.contains("## Answer"), "{wf_md}");
        assert!(wf_md.contains("## Verified findings"), "{wf_md}");
        assert!(md.contains("## Answer"));
        // A run launched with images lists them at the top, and its JSON carries their ids.
        let shot = crate::attach::AttachmentInfo {
            attachment_id: "0190c0de-0000-7000-8000-00000000a77a".into(),
            name: "layout.png".into(),
            mime_type: "image/png".into(),
            bytes: 73,
            sha256: "9f1a73312b9ede0b7f0e20ffd13691995f382422721eff6d4f1216a239f9e9cc".into(),
            width: 3,
            height: 2,
        };
        let with = ReportInput {
            attachments: vec![shot],
            ..input.clone()
        };
        let with_md = render_markdown(&with);
        let listed = "**Attachments** (images the agents were given):\n\n- `layout.png` — image/png, 3×2 px, 73 bytes (attachment `0190c0de-0000-7000-8000-00000000a77a`, sha256 `9f1a73312b9e`)\n";
        assert!(with_md.contains(listed), "{with_md}");
        assert!(
            with_md.find(listed) < with_md.find("## "),
            "at the top: {with_md}"
        );
        assert!(!md.contains("**Attachments**"));
        let js: serde_json::Value = serde_json::from_str(&render_json(&with)).unwrap();
        assert_eq!(
            js["attachments"][0]["attachmentId"],
            "0190c0de-0000-7000-8000-00000000a77a"
        );
        assert_eq!(js["attachments"][0]["name"], "layout.png");
        let plain: serde_json::Value = serde_json::from_str(&render_json(&input)).unwrap();
        assert!(plain.get("attachments").is_none());
        // Deterministic: the same outputs render the same bytes.
        assert_eq!(md, render_markdown(&input));
        let js: serde_json::Value = serde_json::from_str(&render_json(&input)).unwrap();
        assert_eq!(js["counts"]["verified"], 2);
        assert_eq!(js["counts"]["unverified"], 1);
        assert_eq!(js["counts"]["noEvidence"], 1);
        std::fs::remove_dir_all(&root).ok();
    }
}
