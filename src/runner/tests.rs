//! The runner with a scripted in-process backend: ordering rules, seq, policy.

use super::outbox::{run_outbox, Outgoing, Transport};
use super::*;
use crate::agent::scripted::ScriptedBackend;

struct Collect(mpsc::UnboundedSender<Outgoing>);
impl Transport for Collect {
    fn deliver(&mut self, msg: Outgoing) -> crate::agent::BoxFuture<'_, ()> {
        let _ = self.0.send(msg);
        Box::pin(async {})
    }
}

fn temp_repo() -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "boo-runner-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&p).unwrap();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(&p)
            .args([
                "-c",
                "user.email=t@e",
                "-c",
                "user.name=t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .output()
            .unwrap();
    };
    git(&["init", "-q"]);
    std::fs::write(p.join("a.rs"), "fn main() {}\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-qm", "i"]);
    p
}

async fn run_flow(fail: Vec<String>) -> (Vec<Outgoing>, Store, String) {
    let root = temp_repo();
    // The database lives outside the project: anything written inside it would
    // (rightly) fail the read-only proof.
    let store = Store::open(&root.with_extension("db")).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ctx, mut crx) = mpsc::unbounded_channel();
    tokio::spawn(run_outbox(rx, store.clone(), Collect(ctx)));
    let reply = "All good.\n```findings\n[{\"title\": \"Entry point\", \"severity\": \"low\", \"claim\": \"main is empty\", \"evidence\": [{\"path\": \"a.rs\", \"lines\": [1, 1], \"quote\": \"fn main() {}\"}]}]\n```".to_string();
    let sup = Supervisor::new(
        store.clone(),
        Arc::new(ScriptedBackend {
            reply,
            fail_steps: fail,
        }),
        tx,
        RunnerConfig::from_env(Some(2), None),
    );
    sup.register().await.unwrap();
    let run_id = sup
        .launch(LaunchRequest {
            flow: "code-review".into(),
            band: Band::Small,
            question: "anything?".into(),
            root: root.clone(),
            model: None,
            fast: false,
        })
        .await
        .unwrap();
    sup.wait(&run_id).await;
    drop(sup);
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), crx.recv()).await {
        got.push(m);
    }
    (got, store, run_id)
}

#[tokio::test]
async fn a_run_follows_the_ordering_rules() {
    let (msgs, store, run_id) = run_flow(vec![]).await;
    assert!(
        matches!(msgs.first(), Some(Outgoing::RunStarted(_))),
        "{:?}",
        msgs.first()
    );
    let last_step = msgs
        .iter()
        .rev()
        .find_map(|m| match m {
            Outgoing::StepUpdated(u) => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_step.run_status, Some(RunStatus::Completed));
    assert!(last_step.report.as_deref().unwrap().contains("Entry point"));
    // Nothing about the run after its terminal update (progress and diagnostics aside).
    let pos = msgs
        .iter()
        .rposition(|m| matches!(m, Outgoing::StepUpdated(_)))
        .unwrap();
    assert!(msgs[pos + 1..]
        .iter()
        .all(|m| matches!(m, Outgoing::Progress { .. } | Outgoing::Findings { .. })));
    // A step's running update precedes its stream; seq is contiguous per chat.
    let mut running = std::collections::HashSet::new();
    let mut seqs: HashMap<String, u64> = HashMap::new();
    for m in &msgs {
        match m {
            Outgoing::StepUpdated(u) if u.status == Some(StepStatus::Running) => {
                running.insert(u.step_id.clone());
            }
            Outgoing::Stream(s) => {
                assert!(
                    running.contains(&s.step_id),
                    "stream before running: {}",
                    s.step_id
                );
                let e = seqs.entry(s.chat_id.clone()).or_insert(0);
                assert_eq!(s.seq, *e + 1);
                *e = s.seq;
            }
            _ => {}
        }
    }
    assert!(!seqs.is_empty());
    // The persisted transcript matches what was streamed.
    for (chat, last) in seqs {
        let (events, last_db) = store
            .call(move |c| queries::transcript(c, &chat))
            .await
            .unwrap();
        assert_eq!(last_db, last);
        assert!(!events.is_empty());
    }
    let id = run_id.clone();
    let row = store
        .call(move |c| queries::get_run(c, &id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.run.summary.status, RunStatus::Completed);
    assert_eq!(row.run.usage.input_tokens, 30);
}

#[tokio::test]
async fn a_failed_agent_does_not_throw_away_the_others_work() {
    let (msgs, store, run_id) = run_flow(vec!["security".into()]).await;
    let id = run_id.clone();
    let steps = store
        .call(move |c| queries::get_steps(c, &id))
        .await
        .unwrap();
    let st = |id: &str| {
        steps
            .iter()
            .find(|s| s.step.step_id == id)
            .unwrap()
            .step
            .status
    };
    assert_eq!(st("security"), StepStatus::Failed);
    assert_eq!(st("correctness"), StepStatus::Completed);
    // Dependents still ran, and the run completed with the failure named in the report.
    assert_eq!(st("verdict"), StepStatus::Completed);
    let report = msgs
        .iter()
        .rev()
        .find_map(|m| match m {
            Outgoing::StepUpdated(u) => u.report.clone(),
            _ => None,
        })
        .unwrap();
    assert!(
        report.contains("1 step(s) failed") && report.contains("scripted failure"),
        "{report}"
    );
}

#[tokio::test]
async fn every_agent_failing_fails_the_run() {
    let (msgs, _, _) = run_flow(vec![
        "security".into(),
        "correctness".into(),
        "verdict".into(),
    ])
    .await;
    let last = msgs
        .iter()
        .rev()
        .find_map(|m| match m {
            Outgoing::StepUpdated(u) => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last.run_status, Some(RunStatus::Failed));
    assert!(last.run_error.unwrap().contains("failed"));
}

#[test]
fn prompts_put_the_stable_part_first() {
    let a = stable_prompt("Tester", "brief", "Check", "Look at tests.");
    assert!(a.starts_with(OUTPUT_CONTRACT));
    let v = variable_prompt(
        "why?",
        &[
            ("a".into(), "A".into(), StepStatus::Completed, "out".into()),
            ("b".into(), "B".into(), StepStatus::Failed, String::new()),
        ],
    );
    assert!(v.contains("## Question\n\nwhy?"));
    assert!(v.contains("### A (`a`)\n\nout"));
    assert!(v.contains("failed; its output is not available"));
}
