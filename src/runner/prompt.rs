//! Prompt assembly. The stable part comes first (output contract, persona brief, the
//! step's task) and the variable part last (question, earlier outputs), so a model
//! server can reuse a cached prefix across steps and runs. A diff split into parts is
//! reviewed part by part: one prompt per part, answers combined into one.

use crate::agent::{AgentOutcome, ContentBlock};
use crate::evidence;
use crate::model::{StepStatus, Usage};
use serde_json::json;

/// The fixed head of every agent prompt: the output contract. Kept byte-stable so a
/// model server's prompt cache can reuse it across steps and runs.
pub const OUTPUT_CONTRACT: &str = "You are one specialist in a read-only code analysis run. You may read and search the project's files; you must never create, change or delete anything, and you never run commands.

Answer in this shape:
1. Your answer in plain prose, short and specific to the project.
2. Then exactly one fenced block tagged `findings` holding a JSON array (use [] when nothing qualifies):

```findings
[{\"title\": \"short name\", \"severity\": \"critical|high|medium|low|info\", \"claim\": \"what is wrong or notable, and why it matters\",
  \"evidence\": [{\"path\": \"relative/path/from/the/project/root\", \"lines\": [start, end], \"quote\": \"text copied exactly from those lines\"}]}]
```

Every claim cites the lines you actually read. Paths are relative to the project root; lines are 1-based and inclusive. Citations are checked against the files: a wrong path, line or quote marks the finding unverified.";

/// Composes the stable part of an agent step's prompt.
pub fn stable_prompt(
    persona_title: &str,
    persona_brief: &str,
    step_label: &str,
    step_prompt: &str,
) -> String {
    format!(
        "{OUTPUT_CONTRACT}\n\n# Your role: {persona_title}\n\n{}\n\n# This step: {step_label}\n\n{}\n",
        persona_brief.trim(),
        step_prompt.trim()
    )
}

/// An earlier step as a later prompt sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierStep {
    pub step_id: String,
    pub label: String,
    pub status: StepStatus,
    pub output: String,
    /// The step is the diff collector (its output may come in parts).
    pub is_diff: bool,
}

/// The variable tail: the question and what earlier steps produced.
pub fn variable_prompt(question: &str, earlier: &[EarlierStep]) -> String {
    let mut s = format!("\n## Question\n\n{}\n", question.trim());
    if !earlier.is_empty() {
        s.push_str("\n## Earlier steps\n");
        for e in earlier {
            s.push_str(&format!("\n### {} (`{}`)\n\n", e.label, e.step_id));
            match e.status {
                StepStatus::Completed => s.push_str(e.output.trim()),
                StepStatus::Skipped => s.push_str("(This step was skipped: its condition did not hold.)"),
                other => s.push_str(&format!(
                    "(This step {}; its output is not available. Work without it and say what is missing.)",
                    other.as_str()
                )),
            }
            s.push('\n');
        }
    }
    s
}

/// The prompts of one agent step: one, or one per diff part when an earlier diff was
/// split (so no agent ever gets a silently truncated slice).
pub fn agent_prompts(
    stable: &str,
    question: &str,
    earlier: &[EarlierStep],
) -> Vec<Vec<ContentBlock>> {
    let one = |earlier: &[EarlierStep]| {
        vec![ContentBlock::Text(format!(
            "{stable}{}",
            variable_prompt(question, earlier)
        ))]
    };
    let split = earlier.iter().enumerate().find_map(|(i, e)| {
        (e.is_diff && e.status == StepStatus::Completed)
            .then(|| crate::codesteps::diff_parts(&e.output).map(|p| (i, p)))
            .flatten()
    });
    match split {
        None => vec![one(earlier)],
        Some((i, (header, parts))) => {
            let k = parts.len();
            parts
                .into_iter()
                .enumerate()
                .map(|(n, part)| {
                    let mut with_part = earlier.to_vec();
                    with_part[i].output = format!(
                        "{header}\nThis pass covers part {} of {k} of the diff; the other parts are reviewed in the other passes of this step.\n\n{part}",
                        n + 1
                    );
                    one(&with_part)
                })
                .collect()
        }
    }
}

/// One step's answer from several passes (one per diff part): the prose of each pass
/// under a heading, and one findings block with every pass's findings.
pub fn combine_parts(mut outputs: Vec<AgentOutcome>) -> AgentOutcome {
    let parts = outputs.len();
    if parts == 1 {
        return outputs.remove(0);
    }
    let mut prose = String::new();
    let mut findings = Vec::new();
    let mut usage = Usage::default();
    let mut meta = json!({ "diffParts": parts });
    for (i, o) in outputs.iter().enumerate() {
        let parsed = evidence::parse_answer(&o.output);
        prose.push_str(&format!(
            "### Diff part {} of {parts}\n\n{}\n\n",
            i + 1,
            parsed.prose.trim()
        ));
        findings.extend(parsed.findings);
        usage.add(&o.usage);
        if i == 0 {
            if let (Some(m), Some(first)) = (meta.as_object_mut(), o.meta.as_object()) {
                for (k, v) in first {
                    m.entry(k.clone()).or_insert(v.clone());
                }
            }
        }
    }
    let block = serde_json::to_string_pretty(&findings).unwrap_or_else(|_| "[]".into());
    AgentOutcome {
        output: format!("{prose}```findings\n{block}\n```\n"),
        usage,
        meta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn earlier(id: &str, status: StepStatus, output: &str, is_diff: bool) -> EarlierStep {
        EarlierStep {
            step_id: id.into(),
            label: id.to_uppercase(),
            status,
            output: output.into(),
            is_diff,
        }
    }

    #[test]
    fn prompts_put_the_stable_part_first() {
        let a = stable_prompt("Tester", "brief", "Check", "Look at tests.");
        assert!(a.starts_with(OUTPUT_CONTRACT));
        let v = variable_prompt(
            "why?",
            &[
                earlier("a", StepStatus::Completed, "out", false),
                earlier("b", StepStatus::Failed, "", false),
            ],
        );
        assert!(v.contains("## Question\n\nwhy?"));
        assert!(v.contains("### A (`a`)\n\nout"));
        assert!(v.contains("failed; its output is not available"));
    }

    #[test]
    fn a_split_diff_gives_one_prompt_per_part_with_the_same_stable_head() {
        let mark = crate::codesteps::DIFF_PART_MARK;
        let diff = format!("header\n{mark} one\n+a\n{mark} two\n+b\n");
        let prompts = agent_prompts(
            "STABLE\n",
            "q",
            &[earlier("diff", StepStatus::Completed, &diff, true)],
        );
        assert_eq!(prompts.len(), 2);
        for (n, p) in prompts.iter().enumerate() {
            let text = ContentBlock::join_text(p);
            assert!(text.starts_with("STABLE\n"));
            assert!(text.contains(&format!("part {} of 2", n + 1)), "{text}");
        }
        // A diff that is not split, or that failed, gives one prompt.
        assert_eq!(
            agent_prompts(
                "S",
                "q",
                &[earlier("diff", StepStatus::Completed, "x", true)]
            )
            .len(),
            1
        );
        assert_eq!(
            agent_prompts(
                "S",
                "q",
                &[earlier("diff", StepStatus::Failed, &diff, true)]
            )
            .len(),
            1
        );
    }

    #[test]
    fn parts_combine_into_one_answer_with_every_finding() {
        let part = |title: &str| {
            AgentOutcome {
            output: format!("prose {title}\n```findings\n[{{\"title\": \"{title}\", \"severity\": \"low\", \"claim\": \"c\"}}]\n```"),
            usage: Usage {
                input_tokens: 1,
                output_tokens: 1,
                cache_read_tokens: 0,
                total_tokens: 2,
            },
            meta: json!({"qwenVersion": "0.24.4"}),
        }
        };
        let all = combine_parts(vec![part("A"), part("B")]);
        assert!(all.output.contains("### Diff part 1 of 2") && all.output.contains("prose B"));
        let parsed = evidence::parse_answer(&all.output);
        assert_eq!(parsed.findings.len(), 2);
        assert_eq!(all.usage.total_tokens, 4);
        assert_eq!(all.meta["diffParts"], 2);
        assert_eq!(all.meta["qwenVersion"], "0.24.4");
    }
}
