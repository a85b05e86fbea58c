//! Code actions that launch flows. Some clients can send `workspace/executeCommand`
//! only as the command of a code action (Zed; Helix's `space a`; any client's
//! lightbulb menu): boo offers a few flows there, each a `boo.launchFlow` command whose
//! argument is the same object as `boo/launchFlow`'s params. With a selection, the
//! selected text is the focus.

use serde_json::json;
use std::path::Path;
use tower_lsp_server::ls_types::{CodeAction, CodeActionKind, CodeActionOrCommand, Command};

/// The kind of boo's actions (a `source` action: it is about the project, not an edit).
pub const KIND: &str = "source.boo";
/// The longest selection used as a focus.
const MAX_FOCUS: usize = 2000;

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The most of a file read to find a selection.
const MAX_FILE: u64 = 8 << 20;

/// The selected text of `file` between two (0-based line, UTF-16 column) positions,
/// read from disk (a regular file only, its first 8 MiB); None when nothing (or only
/// blanks) is selected. It blocks: call it off the protocol thread.
pub fn selection(file: &Path, start: (u32, u32), end: (u32, u32)) -> Option<String> {
    if start == end {
        return None;
    }
    let bytes = crate::project::read_regular(file, MAX_FILE).ok()??;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.split('\n').collect();
    let col = |line: &str, utf16: u32| -> usize {
        let mut units = 0u32;
        for (i, c) in line.char_indices() {
            if units >= utf16 {
                return i;
            }
            units += c.len_utf16() as u32;
        }
        line.len()
    };
    let mut out = String::new();
    for n in start.0..=end.0.min(lines.len().saturating_sub(1) as u32) {
        let line = lines[n as usize];
        let from = if n == start.0 { col(line, start.1) } else { 0 };
        let to = if n == end.0 {
            col(line, end.1)
        } else {
            line.len()
        };
        if from < to {
            out.push_str(&line[from..to]);
        }
        out.push('\n');
    }
    let focus = one_line(&out);
    (!focus.is_empty()).then(|| focus.chars().take(MAX_FOCUS).collect())
}

fn action(title: String, flow: &str, question: String, root: Option<&str>) -> CodeActionOrCommand {
    let mut arg = json!({ "flow": flow, "band": "small", "input": { "question": question } });
    if let Some(r) = root {
        arg["root"] = json!(r);
    }
    CodeActionOrCommand::CodeAction(CodeAction {
        title: title.clone(),
        kind: Some(CodeActionKind::new(KIND)),
        command: Some(Command {
            title,
            command: "boo.launchFlow".into(),
            arguments: Some(vec![arg]),
        }),
        ..Default::default()
    })
}

/// The flows offered for a file (`rel`: its path in the project) and a selection.
pub fn flow_actions(
    root: Option<&str>,
    rel: Option<&str>,
    focus: Option<&str>,
) -> Vec<CodeActionOrCommand> {
    if let Some(focus) = focus {
        let short: String = focus.chars().take(40).collect();
        let more = if focus.chars().count() > 40 {
            "…"
        } else {
            ""
        };
        return [
            ("code-review", "review the changes"),
            ("investigate", "investigate"),
            ("security-review", "security review"),
        ]
        .into_iter()
        .map(|(flow, what)| {
            action(
                format!("boo: {what} — \"{short}{more}\""),
                flow,
                focus.to_string(),
                root,
            )
        })
        .collect();
    }
    let file = rel.unwrap_or("this project");
    vec![
        action(
            "boo: review the changes (code-review)".into(),
            "code-review",
            "What could break in these changes?".into(),
            root,
        ),
        action(
            format!("boo: how does {file} work? (code-overview)"),
            "code-overview",
            format!("How does {file} work?"),
            root,
        ),
        action(
            format!("boo: security review of {file} (security-review)"),
            "security-review",
            format!("What can an attacker do through {file}?"),
            root,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(a: &CodeActionOrCommand) -> &Command {
        match a {
            CodeActionOrCommand::CodeAction(c) => c.command.as_ref().unwrap(),
            CodeActionOrCommand::Command(c) => c,
        }
    }

    #[test]
    fn actions_launch_flows_with_the_selection_as_focus() {
        let dir = std::env::temp_dir().join(format!("boo-actions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.rs");
        std::fs::write(
            &file,
            "// é why does the cache\n// grow without bound?\nfn x() {}\n",
        )
        .unwrap();
        // Line 0 from UTF-16 column 5 (after "// é ") to line 1 column 24.
        let focus = selection(&file, (0, 5), (1, 24)).unwrap();
        assert_eq!(focus, "why does the cache // grow without bound?");
        assert_eq!(selection(&file, (2, 0), (2, 0)), None, "no selection");
        assert_eq!(selection(&file, (3, 0), (3, 5)), None, "only blanks");
        let acts = flow_actions(Some("/p"), Some("src/a.rs"), Some(&focus));
        assert_eq!(acts.len(), 3);
        let c = command(&acts[0]);
        assert_eq!(c.command, "boo.launchFlow");
        let arg = &c.arguments.as_ref().unwrap()[0];
        assert_eq!(arg["flow"], "code-review");
        assert_eq!(arg["input"]["question"], focus.as_str());
        assert_eq!(arg["root"], "/p");
        let acts = flow_actions(None, Some("src/a.rs"), None);
        let flows: Vec<String> = acts
            .iter()
            .map(|a| {
                command(a).arguments.as_ref().unwrap()[0]["flow"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(flows, ["code-review", "code-overview", "security-review"]);
        assert!(command(&acts[1]).title.contains("src/a.rs"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
