//! The runner with a scripted in-process backend: ordering rules, seq, policy.

use super::outbox::{run_outbox, Transport};
use super::*;
use crate::agent::scripted::ScriptedBackend;

struct Collect(mpsc::UnboundedSender<Out>);
impl Transport for Collect {
    fn deliver(&mut self, msg: Out) -> crate::agent::BoxFuture<'_, ()> {
        let _ = self.0.send(msg);
        Box::pin(async {})
    }
}

fn temp_repo() -> PathBuf {
    crate::testutil::repo("runner", &[("a.rs", "fn main() {}\n")])
}

/// Starts a supervisor on `root` with `backend`, launches `flow` at band small, and
/// returns it with its store, the run id and the delivered messages.
async fn start(
    root: PathBuf,
    backend: Arc<dyn crate::agent::AgentBackend>,
    flow: &str,
    parallel: usize,
) -> (Arc<Supervisor>, Store, String, mpsc::UnboundedReceiver<Out>) {
    // The database lives outside the project: anything written inside it would
    // (rightly) fail the read-only proof.
    let store = Store::open(&root.with_extension("db")).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ctx, crx) = mpsc::unbounded_channel();
    tokio::spawn(run_outbox(rx, store.clone(), Collect(ctx)));
    let sup = Supervisor::new(
        store.clone(),
        backend,
        tx,
        RunnerConfig::from_env(Some(parallel), None),
    );
    sup.register().await.unwrap();
    let run_id = sup
        .launch(LaunchRequest {
            flow: flow.into(),
            band: Band::Small,
            question: "anything?".into(),
            root,
            model: None,
            fast: false,
        })
        .await
        .unwrap();
    (sup, store, run_id, crx)
}

async fn run_flow(fail: Vec<String>) -> (Vec<Out>, Store, String) {
    let reply = "All good.\n```findings\n[{\"title\": \"Entry point\", \"severity\": \"low\", \"claim\": \"main is empty\", \"evidence\": [{\"path\": \"a.rs\", \"lines\": [1, 1], \"quote\": \"fn main() {}\"}]}]\n```".to_string();
    let backend = Arc::new(ScriptedBackend {
        reply,
        fail_steps: fail,
    });
    let (sup, store, run_id, mut crx) = start(temp_repo(), backend, "code-review", 2).await;
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
        matches!(msgs.first(), Some(Out::RunStarted(_))),
        "{:?}",
        msgs.first()
    );
    let last_step = msgs
        .iter()
        .rev()
        .find_map(|m| match m {
            Out::StepUpdated(u) => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_step.run_status, Some(RunStatus::Completed));
    assert!(last_step.report.as_deref().unwrap().contains("Entry point"));
    // Nothing about the run after its terminal update (progress and diagnostics aside).
    let pos = msgs
        .iter()
        .rposition(|m| matches!(m, Out::StepUpdated(_)))
        .unwrap();
    assert!(msgs[pos + 1..]
        .iter()
        .all(|m| matches!(m, Out::Progress { .. } | Out::Findings { .. })));
    // A step's running update precedes its stream; seq is contiguous per chat.
    let mut running = std::collections::HashSet::new();
    let mut seqs: HashMap<String, u64> = HashMap::new();
    for m in &msgs {
        match m {
            Out::StepUpdated(u) if u.status == Some(StepStatus::Running) => {
                running.insert(u.step_id.clone());
            }
            Out::Stream(s) => {
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
            Out::StepUpdated(u) => u.report.clone(),
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
            Out::StepUpdated(u) => Some(u.clone()),
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

use crate::agent::scripted::ReplayBackend;
use crate::model::TraceOutcome;

/// A one-agent flow in the project's own catalog, so replays stay simple.
fn one_agent_project() -> PathBuf {
    let root = temp_repo();
    std::fs::create_dir_all(root.join(".boo/flows")).unwrap();
    std::fs::write(
        root.join(".boo/flows/solo.toml"),
        "name = \"solo\"\ntitle = \"Solo\"\ncategory = \"analysis\"\ndescription = \"d\"\n\n[[steps]]\nid = \"solo\"\nkind = \"agent\"\npersona = \"structural-analyst\"\nprompt = \"Look.\"\n",
    )
    .unwrap();
    let git = |args: &[&str]| crate::testutil::git(&root, args);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "flow"]);
    root
}

async fn replay(file: &str, hold: bool) -> (Arc<Supervisor>, Store, String) {
    let path = format!(
        "{}/tests/fixtures/qwen-0.24.4/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let lines = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let backend = Arc::new(ReplayBackend {
        lines,
        hold_after_first_call: hold,
    });
    let (sup, store, run_id, _) = start(one_agent_project(), backend, "solo", 1).await;
    (sup, store, run_id)
}

async fn traces_of(store: &Store, run_id: &str) -> Vec<Trace> {
    let id = run_id.to_string();
    store
        .call(move |c| Ok(queries::list_traces(c, &id, None, 0, 100)?.0))
        .await
        .unwrap()
}

#[tokio::test]
async fn traces_and_usage_from_every_reference_transcript() {
    let cases: &[(&str, &[(&str, TraceOutcome)])] = &[
        (
            "run-read-partial.jsonl",
            &[("glob", TraceOutcome::Ok), ("read_file", TraceOutcome::Ok)],
        ),
        ("run-write.jsonl", &[("write_file", TraceOutcome::Denied)]),
        (
            "run-hard-worktree.jsonl",
            &[("enter_worktree", TraceOutcome::Denied)],
        ),
        ("run-text.jsonl", &[]),
        ("run-err401.jsonl", &[]),
    ];
    for (file, expected) in cases {
        let (sup, store, run_id) = replay(file, false).await;
        sup.wait(&run_id).await;
        let traces = traces_of(&store, &run_id).await;
        let got: Vec<(&str, TraceOutcome)> = traces
            .iter()
            .map(|t| (t.tool.as_str(), t.outcome.unwrap()))
            .collect();
        assert_eq!(&got, expected, "{file}");
        for t in &traces {
            assert!(t.finished_at.is_some() && t.latency_ms.is_some(), "{file}");
            assert!(t.usage.is_some(), "the turn's usage is attached: {file}");
        }
        if *file == "run-read-partial.jsonl" {
            assert_eq!(traces[0].turn, 1);
            assert_eq!(traces[1].turn, 2);
            assert!(traces[1].output.as_deref().unwrap().contains("hello world"));
            let id = run_id.clone();
            let steps = store
                .call(move |c| queries::get_steps(c, &id))
                .await
                .unwrap();
            let u = steps[0].step.usage;
            assert_eq!(
                (u.input_tokens, u.output_tokens, u.cache_read_tokens),
                (3702, 168, 3000)
            );
            assert_eq!(u.cache_hit_rate, Some(0.8104));
            let id = run_id.clone();
            let turns = store
                .call(move |c| queries::turn_usages(c, &id))
                .await
                .unwrap();
            assert_eq!(turns.len(), 3);
            assert!(turns.iter().all(|t| t
                .2
                .cache_hit_rate()
                .is_some_and(|r| (r - 0.8104).abs() < 0.001)));
            let id = run_id.clone();
            let run = store
                .call(move |c| queries::get_run(c, &id))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(run.run.usage.input_tokens, 3702);
            assert!(run
                .report
                .unwrap()
                .contains("3000 read from the prompt cache (81% cache hit rate)"));
        }
    }
}

#[tokio::test]
async fn a_step_cancelled_mid_call_closes_its_trace_as_an_error() {
    let (sup, store, run_id) = replay("run-read-partial.jsonl", true).await;
    // Wait for the open trace, then cancel.
    for _ in 0..100 {
        if !traces_of(&store, &run_id).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = sup.cancel(&run_id).await.unwrap();
    assert_eq!(status, RunStatus::Cancelled);
    store.flush().await.unwrap();
    let traces = traces_of(&store, &run_id).await;
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].outcome, Some(TraceOutcome::Error));
    assert!(traces[0].error.as_deref().unwrap().contains("ended before"));
}
