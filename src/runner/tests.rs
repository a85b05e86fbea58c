//! The runner with a scripted in-process backend: ordering rules, seq, policy.

use super::outbox::{run_outbox, StepUpdated, Transport};
use super::*;
use crate::agent::scripted::ScriptedBackend;
use crate::model::{StepStatus, Trace};
use std::path::Path;
use tokio::sync::mpsc;

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
        RunnerConfig {
            max_parallel: parallel,
            ..Default::default()
        },
        None,
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
            attachments: Vec::new(),
            vision: None,
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
    // The run's error names a failed step and what went wrong there.
    let error = last.run_error.unwrap();
    assert!(
        error.starts_with("step ") && error.ends_with("failed: scripted failure"),
        "{error}"
    );
}

use crate::agent::scripted::ReplayBackend;
use crate::model::TraceOutcome;

/// A one-agent flow in the project's own catalog, so replays stay simple. A project
/// flow runs only in a trusted root, so the setup trusts the root in the database the
/// tests open (`start` puts it at `<root>.db`).
fn one_agent_project() -> PathBuf {
    let root = untrusted_one_agent_project();
    let c = crate::store::open_connection(&root.with_extension("db")).unwrap();
    let key = root.canonicalize().unwrap().display().to_string();
    queries::set_trusted(&c, &key, true, "runner tests").unwrap();
    root
}

fn untrusted_one_agent_project() -> PathBuf {
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

#[tokio::test]
async fn the_roster_announces_each_agent_steps_first_chat() {
    let (msgs, store, run_id) = run_flow(vec![]).await;
    let Some(Out::RunStarted(started)) = msgs.first() else {
        panic!("the first message is runStarted: {:?}", msgs.first());
    };
    let mut agents = 0;
    for entry in &started.steps {
        match entry.kind {
            StepKind::Agent => {
                agents += 1;
                let chat = entry
                    .chat_id
                    .clone()
                    .expect("an agent step has its chat at launch");
                // The first attempt streams on the chat the roster announced.
                let running = msgs.iter().find_map(|m| match m {
                    Out::StepUpdated(u)
                        if u.step_id == entry.step_id && u.status == Some(StepStatus::Running) =>
                    {
                        Some(u.chat_id.clone())
                    }
                    _ => None,
                });
                assert_eq!(running, Some(Some(chat.clone())), "{}", entry.step_id);
                assert!(msgs
                    .iter()
                    .any(|m| matches!(m, Out::Stream(s) if s.chat_id == chat)));
            }
            StepKind::Code => assert_eq!(entry.chat_id, None, "{}", entry.step_id),
            StepKind::Script => panic!("a flow has no script step: {}", entry.step_id),
        }
    }
    assert!(agents > 0);
    let id = run_id.clone();
    let steps = store
        .call(move |c| queries::get_steps(c, &id))
        .await
        .unwrap();
    for s in steps.iter().filter(|s| s.step.kind == StepKind::Agent) {
        assert_eq!(s.step.attempt, 1);
        assert_eq!(
            started
                .steps
                .iter()
                .find(|e| e.step_id == s.step.step_id)
                .and_then(|e| e.chat_id.clone()),
            s.step.chat_id
        );
    }
}

/// A backend whose agents wait until they are cancelled.
struct Holding;
impl crate::agent::AgentBackend for Holding {
    fn check(
        &self,
    ) -> crate::agent::BoxFuture<'_, Result<crate::agent::AgentInfo, crate::agent::Unavailable>>
    {
        Box::pin(async {
            Ok(crate::agent::AgentInfo {
                path: PathBuf::from("holding"),
                version: "0.24.4".into(),
            })
        })
    }
    fn open(
        &self,
        spec: crate::agent::SessionSpec,
    ) -> crate::agent::BoxFuture<
        '_,
        Result<Box<dyn crate::agent::AgentSession>, crate::agent::AgentError>,
    > {
        Box::pin(async move {
            Ok(Box::new(HoldingSession {
                spec,
                cancel: crate::agent::Canceller::new(),
            }) as Box<dyn crate::agent::AgentSession>)
        })
    }
}
struct HoldingSession {
    spec: crate::agent::SessionSpec,
    cancel: crate::agent::Canceller,
}
impl crate::agent::AgentSession for HoldingSession {
    fn prompt(
        &mut self,
        prompt: Vec<crate::agent::ContentBlock>,
        events: mpsc::UnboundedSender<crate::agent::AgentEvent>,
    ) -> crate::agent::BoxFuture<'_, Result<crate::agent::AgentOutcome, crate::agent::AgentError>>
    {
        Box::pin(async move {
            let text = crate::agent::ContentBlock::join_text(&prompt);
            let _ = events.send(crate::agent::AgentEvent::Stream(
                crate::model::StreamEvent::Text {
                    text: format!("{} holds: {}", self.spec.step_id, text.len()),
                },
            ));
            if text.contains("answer at once") {
                return Ok(crate::agent::AgentOutcome {
                    output: "runtime answer".into(),
                    usage: crate::model::Usage::default(),
                    meta: serde_json::json!({}),
                });
            }
            self.cancel.cancelled().await;
            Err(crate::agent::AgentError::Cancelled)
        })
    }
    fn canceller(&self) -> crate::agent::Canceller {
        self.cancel.clone()
    }
    fn close(self: Box<Self>) -> crate::agent::BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn a_step_created_at_run_time_goes_through_the_scheduler() {
    use super::scheduler::{Origin, StepSpec, StepWork};
    let root = one_agent_project();
    let (sup, store, run_id, mut crx) = start(root.clone(), Arc::new(Holding), "solo", 2).await;
    // The plan's agent holds; a step that was not in the plan joins the run.
    let ctx = sup.scheduler.run_ctx(
        &run_id,
        root.canonicalize().unwrap(),
        sup.open_snapshot(&run_id).unwrap().workdir,
        None,
        lock(&sup.runs).get(&run_id).unwrap().scope.clone(),
    );
    let handle = sup
        .scheduler
        .start_step(
            &ctx,
            StepSpec {
                step_id: "child-1".into(),
                label: "A lead".into(),
                wave: 0,
                work: StepWork::Agent {
                    persona: "structural-analyst".into(),
                    prompts: vec![vec![crate::agent::ContentBlock::Text(
                        "answer at once".into(),
                    )]],
                    attachments: Default::default(),
                    spawn: false,
                },
                origin: Origin::Runtime,
                parent_step_id: Some("solo".into()),
                phase: Some("Leads".into()),
                cache_key: Some("k".repeat(64)),
                meta: None,
            },
        )
        .await
        .unwrap();
    let chat = handle
        .chat_id
        .clone()
        .expect("an agent step streams on a chat");
    let ended = handle.await;
    assert_eq!(ended.end.status, Some(StepStatus::Completed));
    let update = ended.update.expect("the end was persisted");
    assert_eq!(update.step_id, "child-1");
    assert_eq!(update.output.as_deref(), Some("runtime answer"));
    let id = run_id.clone();
    let steps = store
        .call(move |c| queries::get_steps(c, &id))
        .await
        .unwrap();
    let child = steps.iter().find(|s| s.step.step_id == "child-1").unwrap();
    assert_eq!(child.step.status, StepStatus::Completed);
    assert_eq!(child.step.wave, 0);
    assert_eq!(child.step.parent_step_id.as_deref(), Some("solo"));
    assert_eq!(child.step.phase.as_deref(), Some("Leads"));
    assert_eq!(
        child.step.cache_key.as_deref(),
        Some("k".repeat(64).as_str())
    );
    assert_eq!(child.step.chat_id.as_deref(), Some(chat.as_str()));
    // Announced as running before its stream, like any step.
    let mut seen_running = false;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), crx.recv()).await {
        match m {
            Out::StepUpdated(u) if u.step_id == "child-1" => {
                seen_running |= u.status == Some(StepStatus::Running);
            }
            Out::Stream(s) if s.step_id == "child-1" => {
                assert!(seen_running, "stream before running");
                assert_eq!(s.chat_id, chat);
            }
            _ => {}
        }
    }
    assert!(seen_running);
    // A runtime step id is unique within its run.
    let twice = sup
        .scheduler
        .start_step(
            &ctx,
            StepSpec {
                step_id: "child-1".into(),
                label: "again".into(),
                wave: 0,
                work: StepWork::Agent {
                    persona: "structural-analyst".into(),
                    prompts: vec![vec![crate::agent::ContentBlock::Text("x".into())]],
                    attachments: Default::default(),
                    spawn: false,
                },
                origin: Origin::Runtime,
                parent_step_id: None,
                phase: None,
                cache_key: None,
                meta: None,
            },
        )
        .await;
    assert!(
        matches!(twice, Err(scheduler::StartError::Store(_))),
        "{:?}",
        twice.err()
    );
    // A stopped run starts nothing more.
    assert_eq!(sup.cancel(&run_id).await.unwrap(), RunStatus::Cancelled);
    let again = sup
        .scheduler
        .start_step(
            &ctx,
            StepSpec {
                step_id: "child-2".into(),
                label: "late".into(),
                wave: 0,
                work: StepWork::Agent {
                    persona: "structural-analyst".into(),
                    prompts: vec![vec![crate::agent::ContentBlock::Text("x".into())]],
                    attachments: Default::default(),
                    spawn: false,
                },
                origin: Origin::Runtime,
                parent_step_id: None,
                phase: None,
                cache_key: None,
                meta: None,
            },
        )
        .await;
    assert!(
        matches!(again, Err(scheduler::StartError::Stopped)),
        "{:?}",
        again.err()
    );
}

#[tokio::test]
async fn a_run_that_stops_on_an_internal_error_ends_on_a_step_of_its_roster() {
    let root = one_agent_project();
    let (sup, store, run_id, mut crx) = start(root, Arc::new(Holding), "solo", 1).await;
    // Let the agent start, then end the run the way a driver error does.
    for _ in 0..100 {
        let id = run_id.clone();
        let steps = store
            .call(move |c| queries::get_step_states(c, &id))
            .await
            .unwrap();
        if steps[0].step.status == StepStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let scope = lock(&sup.runs).get(&run_id).unwrap().scope.clone();
    scope.stop(scope::StopReason::Shutdown);
    sup.wait(&run_id).await;
    finish::fail_on_internal_error(&sup, &run_id, "internal error: the disk vanished".into()).await;
    let mut last: Option<StepUpdated> = None;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), crx.recv()).await {
        if let Out::StepUpdated(u) = m {
            assert!(!u.step_id.is_empty(), "no phantom step: {u:?}");
            last = Some(u);
        }
    }
    let last = last.unwrap();
    assert_eq!(last.step_id, "solo");
    assert_eq!(last.run_status, Some(RunStatus::Failed));
    assert_eq!(
        last.run_error.as_deref(),
        Some("internal error: the disk vanished")
    );
    let id = run_id.clone();
    let (run, steps) = store
        .call(move |c| Ok((queries::get_run(c, &id)?, queries::get_steps(c, &id)?)))
        .await
        .unwrap();
    assert_eq!(run.unwrap().run.summary.status, RunStatus::Failed);
    assert!(steps.iter().all(|s| s.step.status.is_terminal()));
}

#[tokio::test]
async fn the_api_key_never_reaches_the_database_or_the_clients() {
    const KEY: &str = "sk-test-9f8e7d6c5b4a";
    let root = temp_repo();
    let store = Store::open(&root.with_extension("db")).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ctx, mut crx) = mpsc::unbounded_channel();
    tokio::spawn(run_outbox(rx, store.clone(), Collect(ctx)));
    let backend = Arc::new(ScriptedBackend {
        reply: format!("The endpoint answered 401 for key {KEY}.\n```findings\n[]\n```"),
        fail_steps: vec![],
    });
    let sup = Supervisor::new(
        store.clone(),
        backend,
        tx,
        RunnerConfig {
            secrets: vec![KEY.to_string()],
            ..Default::default()
        },
        None,
    );
    sup.register().await.unwrap();
    let run_id = sup
        .launch(LaunchRequest {
            flow: "code-review".into(),
            band: Band::Small,
            question: "anything?".into(),
            root,
            model: None,
            fast: false,
            attachments: Vec::new(),
            vision: None,
        })
        .await
        .unwrap();
    sup.wait(&run_id).await;
    let mut sent = String::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), crx.recv()).await {
        sent.push_str(&format!("{m:?}"));
    }
    assert!(sent.contains("[redacted]"), "the answer was sent, masked");
    assert!(!sent.contains(KEY));
    let id = run_id.clone();
    let (run, steps) = store
        .call(move |c| Ok((queries::get_run(c, &id)?, queries::get_steps(c, &id)?)))
        .await
        .unwrap();
    let stored = format!("{:?}{:?}", run.unwrap().report, steps);
    assert!(stored.contains("401 for key [redacted]"));
    assert!(!stored.contains(KEY));
}

#[tokio::test]
async fn a_project_flow_in_an_untrusted_root_is_refused_without_a_run_row() {
    let root = untrusted_one_agent_project();
    let store = Store::open(&root.with_extension("db")).unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let sup = Supervisor::new(
        store.clone(),
        Arc::new(Holding),
        tx,
        RunnerConfig::default(),
        None,
    );
    sup.register().await.unwrap();
    let req = LaunchRequest {
        flow: "solo".into(),
        band: Band::Small,
        question: "anything?".into(),
        root: root.clone(),
        model: None,
        fast: false,
        attachments: Vec::new(),
        vision: None,
    };
    let err = sup.launch(req.clone()).await.unwrap_err();
    let canonical = root.canonicalize().unwrap().display().to_string();
    assert!(matches!(&err, LaunchError::Untrusted { root, .. } if *root == canonical));
    assert!(
        err.to_string().contains(&format!("boo trust {canonical}")),
        "{err}"
    );
    let (runs, _) = store
        .call(|c| queries::list_runs(c, None, 50, None))
        .await
        .unwrap();
    assert!(runs.is_empty());
    // Once trusted, the same launch goes through.
    store
        .call(move |c| queries::set_trusted(c, &canonical, true, "test"))
        .await
        .unwrap();
    let id = sup.launch(req).await.unwrap();
    let scope = lock(&sup.runs).get(&id).unwrap().scope.clone();
    scope.stop(scope::StopReason::Shutdown);
    sup.wait(&id).await;
}

/// A repository whose `.git/shallow` is a FIFO: `git log` waits on it for good.
/// A project whose `.git/shallow` is a FIFO: `git log` blocks on it. The snapshot copies
/// only regular files (the launch does not hang on it), so the same FIFO is planted in the
/// run's snapshot too, where the code steps run; returns that folder.
fn hanging_log_project() -> PathBuf {
    let root = one_agent_project();
    crate::testutil::mkfifo(&root.join(".git/shallow"));
    root
}

fn hang_snapshot_log(sup: &Supervisor, run_id: &str) -> PathBuf {
    let work = sup.open_snapshot(run_id).unwrap().workdir;
    let _ = std::fs::remove_file(work.join(".git/shallow"));
    crate::testutil::mkfifo(&work.join(".git/shallow"));
    work
}

/// Processes whose working folder is `root` (the git a code step started there).
fn processes_in(root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|c| c == root))
        .map(|e| std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default())
        .collect()
}

/// Starts a `run_command` code step (`argv`) in the running run of `sup`.
async fn start_code_step(
    sup: &Arc<Supervisor>,
    run_id: &str,
    root: &Path,
    id: &str,
    argv: &[&str],
) -> scheduler::StepHandle {
    use super::scheduler::{Origin, StepSpec, StepWork};
    let ctx = sup.scheduler.run_ctx(
        run_id,
        root.canonicalize().unwrap(),
        sup.open_snapshot(run_id).unwrap().workdir,
        None,
        lock(&sup.runs).get(run_id).unwrap().scope.clone(),
    );
    sup.scheduler
        .start_step(
            &ctx,
            StepSpec {
                step_id: id.into(),
                label: "a command".into(),
                wave: 0,
                work: StepWork::Code {
                    function: crate::codesteps::CodeFn::RunCommand,
                    args: serde_json::json!({ "argv": argv }),
                    inputs: vec![],
                },
                origin: Origin::Runtime,
                parent_step_id: None,
                phase: None,
                cache_key: None,
                meta: None,
            },
        )
        .await
        .unwrap()
}

/// A code step waiting on a FIFO once left its run `running` until the server
/// restarted: a cancel could not end it. Now the cancel ends it as cancelled at once
/// and kills its git.
#[tokio::test]
async fn a_cancel_ends_a_hung_code_step_and_kills_its_git() {
    let root = hanging_log_project();
    let (sup, _store, run_id, _crx) = start(root.clone(), Arc::new(Holding), "solo", 2).await;
    let root = hang_snapshot_log(&sup, &run_id);
    let handle = start_code_step(&sup, &run_id, &root, "hang", &["git", "log", "--oneline"]).await;
    // Let git start and block on the FIFO.
    let t = std::time::Instant::now();
    while processes_in(&root).is_empty() && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!processes_in(&root).is_empty(), "git started");
    let t = std::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), sup.cancel(&run_id))
        .await
        .expect("the cancel returns")
        .unwrap();
    assert_eq!(status, RunStatus::Cancelled);
    let ended = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the step ends");
    assert_eq!(ended.end.status, Some(StepStatus::Cancelled));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(processes_in(&root), Vec::<String>::new(), "git was killed");
}

/// Past its deadline a hung code step fails, naming the limit, and its git is killed.
#[tokio::test]
async fn a_code_step_past_its_deadline_fails_and_kills_its_git() {
    let root = hanging_log_project();
    let store = Store::open(&root.with_extension("db")).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ctx, _crx) = mpsc::unbounded_channel();
    tokio::spawn(run_outbox(rx, store.clone(), Collect(ctx)));
    let sup = Supervisor::new(
        store,
        Arc::new(Holding),
        tx,
        RunnerConfig {
            code_deadline: Duration::from_secs(1),
            ..Default::default()
        },
        None,
    );
    sup.register().await.unwrap();
    let run_id = sup
        .launch(LaunchRequest {
            flow: "solo".into(),
            band: Band::Small,
            question: "anything?".into(),
            root: root.clone(),
            model: None,
            fast: false,
            attachments: Vec::new(),
            vision: None,
        })
        .await
        .unwrap();
    let root = hang_snapshot_log(&sup, &run_id);
    let t = std::time::Instant::now();
    let handle = start_code_step(&sup, &run_id, &root, "late", &["git", "log", "--oneline"]).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the step ends");
    assert_eq!(ended.end.status, Some(StepStatus::Failed));
    let error = ended.end.error.unwrap_or_default();
    assert!(error.contains("did not finish within 1s"), "{error}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(processes_in(&root), Vec::<String>::new(), "git was killed");
    sup.cancel(&run_id).await.unwrap();
}

/// Code steps are inside the read-only proof: one that changes the project fails as
/// fatal, like an agent step (before, only agent steps were bracketed).
#[tokio::test]
async fn a_code_step_that_changes_the_project_fails_as_fatal() {
    let root = one_agent_project();
    let (sup, _store, run_id, _crx) = start(root.clone(), Arc::new(Holding), "solo", 2).await;
    let scope = lock(&sup.runs).get(&run_id).unwrap().scope.child();
    let canon = root.canonicalize().unwrap();
    let target = canon.join("a.rs");
    let r = dispatch::bracket_code(&sup.scheduler, &canon, &scope, move || {
        std::fs::write(&target, "changed\n").map_err(|e| e.to_string())?;
        Ok("done".into())
    })
    .await;
    match r {
        dispatch::StepResult::Failed { error, fatal, .. } => {
            assert!(fatal);
            assert!(error.contains("a.rs"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // A refs-only change is caught as well (what `git branch -D` did).
    let canon2 = canon.clone();
    let r = dispatch::bracket_code(&sup.scheduler, &canon, &scope, move || {
        crate::testutil::git(&canon2, &["branch", "made-by-a-code-step"]);
        Ok("done".into())
    })
    .await;
    assert!(
        matches!(r, dispatch::StepResult::Failed { fatal: true, .. }),
        "{r:?}"
    );
    sup.cancel(&run_id).await.unwrap();
}

// ---- workflow runs -------------------------------------------------------------

const FAN_OUT: &str = r#"export const meta = { name: 'fan', description: 'fan out then pipeline' };
phase('Survey');
log('starting');
const parts = await parallel([1, 2, 3].map(i => () => agent(`look at part ${i}`)));
phase('Refine');
const refined = await pipeline(['x', 'y'], (prev, item) => agent(`refine ${item}`), (prev) => agent(`check ${prev.length}`));
return { parts: parts.length, refined: refined.length };
"#;

/// Launches a workflow on `root` with a fresh supervisor over `db`, waits for its
/// end and returns the run id and every delivered message.
async fn run_workflow_on(
    root: &std::path::Path,
    db: &std::path::Path,
    script: &str,
    fresh: bool,
) -> (Store, String, Vec<Out>) {
    let store = Store::open(db).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ctx, mut crx) = mpsc::unbounded_channel();
    tokio::spawn(run_outbox(rx, store.clone(), Collect(ctx)));
    let backend = Arc::new(ScriptedBackend {
        reply: "An answer.".into(),
        fail_steps: vec![],
    });
    let sup = Supervisor::new(store.clone(), backend, tx, RunnerConfig::default(), None);
    sup.register().await.unwrap();
    let run_id = sup
        .launch_workflow(workflow::WorkflowLaunch {
            script: workflow::ScriptRef::Text(script.into()),
            args: None,
            root: root.to_path_buf(),
            model: None,
            budget: None,
            fresh,
            attachments: Vec::new(),
            vision: None,
        })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), sup.wait(&run_id))
        .await
        .expect("the workflow run ends");
    drop(sup);
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), crx.recv()).await {
        got.push(m);
    }
    (store, run_id, got)
}

fn last_update(msgs: &[Out]) -> StepUpdated {
    msgs.iter()
        .rev()
        .find_map(|m| match m {
            Out::StepUpdated(u) => Some(u.clone()),
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn a_workflow_runs_its_agents_and_a_second_run_comes_from_the_cache() {
    let root = temp_repo();
    let db = root.with_extension("wf.db");
    let (store, run_id, msgs) = run_workflow_on(&root, &db, FAN_OUT, false).await;
    assert!(
        matches!(&msgs[0], Out::RunStarted(s) if s.steps.len() == 1 && s.steps[0].step_id == "script")
    );
    let last = last_update(&msgs);
    assert_eq!(last.step_id, "script");
    assert_eq!(
        last.run_status,
        Some(RunStatus::Completed),
        "{:?}",
        last.run_error
    );
    assert_eq!(
        last.result,
        Some(serde_json::json!({"parts": 3, "refined": 2}))
    );
    assert!(last.report.as_deref().unwrap().starts_with("## Result"));
    // stepAdded precedes every other message of its step.
    let mut added = std::collections::HashSet::new();
    for m in &msgs {
        match m {
            Out::StepAdded(a) => {
                assert!(!a.cached);
                assert_eq!(a.parent_step_id.as_deref(), Some("script"));
                added.insert(a.step_id.clone());
            }
            Out::StepUpdated(u) if u.step_id != "script" => assert!(added.contains(&u.step_id)),
            Out::Stream(s) => assert!(added.contains(&s.step_id)),
            _ => {}
        }
    }
    assert_eq!(added.len(), 7);
    let logs: Vec<(u64, String, String)> = msgs
        .iter()
        .filter_map(|m| match m {
            Out::RunLog(l) => Some((l.seq, l.kind.clone(), l.message.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        logs,
        vec![
            (1, "phase".into(), "Survey".into()),
            (2, "log".into(), "starting".into()),
            (3, "phase".into(), "Refine".into()),
        ]
    );
    let id = run_id.clone();
    let steps = store
        .call(move |c| queries::get_steps(c, &id))
        .await
        .unwrap();
    let agents: Vec<_> = steps
        .iter()
        .filter(|s| s.step.kind == StepKind::Agent)
        .collect();
    assert_eq!(agents.len(), 7);
    assert!(agents
        .iter()
        .all(|s| s.step.status == StepStatus::Completed));
    let survey = agents
        .iter()
        .filter(|s| s.step.phase.as_deref() == Some("Survey"))
        .count();
    assert_eq!(survey, 3);
    assert!(agents
        .iter()
        .all(|s| s.step.cache_key.as_deref().is_some_and(|k| k.len() == 64)));

    // The same script on the same project: every agent from the cache, no process.
    let (store2, run2, msgs2) = run_workflow_on(&root, &db, FAN_OUT, false).await;
    assert_eq!(last_update(&msgs2).run_status, Some(RunStatus::Completed));
    assert!(
        !msgs2.iter().any(|m| matches!(m, Out::Stream(_))),
        "no agent ran"
    );
    let id = run2.clone();
    let steps2 = store2
        .call(move |c| queries::get_steps(c, &id))
        .await
        .unwrap();
    let agents2: Vec<_> = steps2
        .iter()
        .filter(|s| s.step.kind == StepKind::Agent)
        .collect();
    assert_eq!(agents2.len(), 7);
    assert!(agents2.iter().all(|s| s.step.chat_id.is_none()
        && s.step.meta.as_ref().and_then(|m| m.get("cached")) == Some(&serde_json::json!(true))));

    // fresh: look-ups skipped, the agents run again.
    let (_, _, msgs3) = run_workflow_on(&root, &db, FAN_OUT, true).await;
    assert!(msgs3.iter().any(|m| matches!(m, Out::Stream(_))));
}

#[tokio::test]
async fn a_script_error_fails_the_run_with_its_position() {
    let root = temp_repo();
    let db = root.with_extension("wf-err.db");
    let script = "export const meta = { name: 'bad', description: 'throws' };\nconst a = 1;\nthrow new Error('no luck');\n";
    let (_, _, msgs) = run_workflow_on(&root, &db, script, false).await;
    let last = last_update(&msgs);
    assert_eq!(last.run_status, Some(RunStatus::Failed));
    let err = last.run_error.unwrap();
    assert!(err.contains("no luck") && err.contains("3:"), "{err}");
}

/// A backend whose sessions lose their process: `once` steps on their first attempt
/// only, `always` steps on every attempt. Records every session it opens.
struct Losing {
    once: Vec<&'static str>,
    always: Vec<&'static str>,
    opened: std::sync::Mutex<Vec<(String, bool)>>,
}
impl crate::agent::AgentBackend for Losing {
    fn check(
        &self,
    ) -> crate::agent::BoxFuture<'_, Result<crate::agent::AgentInfo, crate::agent::Unavailable>>
    {
        Box::pin(async {
            Ok(crate::agent::AgentInfo {
                path: PathBuf::from("losing"),
                version: "0.24.4".into(),
            })
        })
    }
    fn open(
        &self,
        spec: crate::agent::SessionSpec,
    ) -> crate::agent::BoxFuture<
        '_,
        Result<Box<dyn crate::agent::AgentSession>, crate::agent::AgentError>,
    > {
        let step = spec.step_id.clone();
        lock(&self.opened).push((step.clone(), spec.isolated));
        let lose = self.always.contains(&step.as_str())
            || (self.once.contains(&step.as_str()) && !spec.isolated);
        Box::pin(async move {
            Ok(Box::new(LosingSession {
                lose,
                cancel: crate::agent::Canceller::new(),
            }) as Box<dyn crate::agent::AgentSession>)
        })
    }
}
struct LosingSession {
    lose: bool,
    cancel: crate::agent::Canceller,
}
impl crate::agent::AgentSession for LosingSession {
    fn prompt(
        &mut self,
        _prompt: Vec<crate::agent::ContentBlock>,
        events: mpsc::UnboundedSender<crate::agent::AgentEvent>,
    ) -> crate::agent::BoxFuture<'_, Result<crate::agent::AgentOutcome, crate::agent::AgentError>>
    {
        Box::pin(async move {
            if self.lose {
                // Half a tool call, then the process is gone.
                let _ = events.send(crate::agent::AgentEvent::Stream(
                    crate::model::StreamEvent::ToolCall {
                        tool_call_id: "c1".into(),
                        name: "read_file".into(),
                        input: serde_json::json!({}),
                    },
                ));
                return Err(crate::agent::AgentError::Lost {
                    message: "qwen crashed (killed by signal 9)".into(),
                    meta: serde_json::json!({"agentPid": 42}),
                });
            }
            Ok(crate::agent::AgentOutcome {
                output: "fine\n```findings\n[]\n```".into(),
                usage: crate::model::Usage::default(),
                meta: serde_json::json!({}),
            })
        })
    }
    fn canceller(&self) -> crate::agent::Canceller {
        self.cancel.clone()
    }
    fn close(self: Box<Self>) -> crate::agent::BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn a_step_whose_process_died_is_retried_once_in_a_session_of_its_own() {
    let backend = Arc::new(Losing {
        once: vec!["correctness"],
        always: vec!["security"],
        opened: std::sync::Mutex::new(Vec::new()),
    });
    let (sup, store, run_id, _crx) = start(temp_repo(), backend.clone(), "code-review", 2).await;
    sup.wait(&run_id).await;
    let opened = lock(&backend.opened).clone();
    let of = |step: &str| -> Vec<bool> {
        opened
            .iter()
            .filter(|(s, _)| s == step)
            .map(|(_, isolated)| *isolated)
            .collect()
    };
    // Retried once, and the retry runs isolated; a step that was not lost runs once.
    assert_eq!(of("correctness"), vec![false, true]);
    assert_eq!(of("security"), vec![false, true], "never a third attempt");
    assert_eq!(of("verdict"), vec![false]);
    let id = run_id.clone();
    let steps = store
        .call(move |c| queries::get_steps(c, &id))
        .await
        .unwrap();
    let step = |id: &str| steps.iter().find(|s| s.step.step_id == id).unwrap();
    let correctness = step("correctness");
    assert_eq!(correctness.step.status, StepStatus::Completed);
    let meta = correctness.step.meta.clone().unwrap_or_default();
    assert!(
        meta["retriedAfter"]
            .as_str()
            .is_some_and(|m| m.contains("signal 9")),
        "{meta}"
    );
    let security = step("security");
    assert_eq!(security.step.status, StepStatus::Failed);
    let error = security.step.error.clone().unwrap_or_default();
    assert!(
        error.contains("signal 9") && error.contains("retried once"),
        "{error}"
    );
    // The lost attempt's half tool call ends as an error trace; it never hangs open.
    let id = run_id.clone();
    let traces = store
        .call(move |c| Ok(queries::list_traces(c, &id, None, 0, 100)?.0))
        .await
        .unwrap();
    let lost: Vec<&Trace> = traces
        .iter()
        .filter(|t| t.step_id == "correctness")
        .collect();
    assert_eq!(lost.len(), 1, "{traces:?}");
    assert_eq!(lost[0].outcome, Some(TraceOutcome::Error));
    assert!(lost[0].finished_at.is_some());
}

#[test]
fn workflow_models_map_claude_aliases_and_the_alias_table() {
    use workflow::resolve_model;
    let aliases: std::collections::BTreeMap<String, String> = [
        ("opus".to_string(), "qwen-big".to_string()),
        ("fast".to_string(), "qwen-small".to_string()),
    ]
    .into();
    let run = Some("qwen-run");
    let r = |m: Option<&str>| resolve_model(m, &aliases, run);
    assert_eq!(r(None).unwrap().as_deref(), Some("qwen-run"));
    assert_eq!(r(Some("inherit")).unwrap().as_deref(), Some("qwen-run"));
    for claude in ["haiku", "sonnet", "claude-sonnet-4-5", " haiku "] {
        assert_eq!(
            r(Some(claude)).unwrap().as_deref(),
            Some("qwen-run"),
            "{claude}"
        );
    }
    // The table wins, also over Claude Code's own aliases.
    assert_eq!(r(Some("opus")).unwrap().as_deref(), Some("qwen-big"));
    assert_eq!(r(Some("fast")).unwrap().as_deref(), Some("qwen-small"));
    // Any other name is a model the endpoint serves: passed on.
    assert_eq!(
        r(Some("qwen3-coder")).unwrap().as_deref(),
        Some("qwen3-coder")
    );
    // A name that would read as a flag is refused (the agent resolves to null).
    assert!(r(Some("--yolo")).unwrap_err().contains("--yolo"));
    // Without a run model, an alias maps to none (qwen's own default).
    assert_eq!(resolve_model(Some("sonnet"), &aliases, None).unwrap(), None);
}
