use super::*;
use crate::model::{Band, Category, RunStatus, StepKind, StepStatus};
use std::collections::{BTreeMap, HashMap};

fn step(id: &str, kind: StepKind, after: &[&str], band: Band, when: Option<&str>) -> StepDef {
    StepDef {
        id: id.into(),
        kind,
        agent: if kind == StepKind::Code {
            "signals".into()
        } else {
            "test-engineer".into()
        },
        label: id.into(),
        after: after.iter().map(|s| s.to_string()).collect(),
        band,
        when: when.map(|w| Cond::parse(w).unwrap()),
        prompt: "do it".into(),
        args: serde_json::json!({}),
        attachments: true,
        spawn: false,
    }
}

fn flow() -> FlowDef {
    FlowDef {
        name: "f".into(),
        title: "F".into(),
        category: Category::Review,
        description: String::new(),
        answer: vec![],
        source: "test".into(),
        steps: vec![
            step("signals", StepKind::Code, &[], Band::Small, None),
            step("a", StepKind::Agent, &["signals"], Band::Small, None),
            step("b", StepKind::Agent, &["signals"], Band::Medium, None),
            step(
                "conc",
                StepKind::Agent,
                &["signals"],
                Band::Small,
                Some("concurrency"),
            ),
            step("final", StepKind::Agent, &["a", "conc"], Band::Small, None),
        ],
    }
}

fn waves(p: &Plan) -> Vec<(String, u32)> {
    p.steps.iter().map(|s| (s.id.clone(), s.wave)).collect()
}

#[test]
fn plans_rosters_and_waves_per_band() {
    let small = plan(&flow(), Band::Small).unwrap();
    assert_eq!(
        waves(&small),
        vec![
            ("signals".into(), 1),
            ("a".into(), 2),
            ("conc".into(), 2),
            ("final".into(), 3)
        ]
    );
    assert_eq!(small.answer, vec!["final".to_string()]);
    let medium = plan(&flow(), Band::Medium).unwrap();
    assert_eq!(medium.steps.len(), 5);
    assert_eq!(medium.waves(), 3);
}

#[test]
fn detects_cycles_and_unknown_dependencies() {
    let mut f = flow();
    f.steps[0].after = vec!["final".into()];
    assert!(plan(&f, Band::Small).unwrap_err().contains("cycle"));
    let mut f = flow();
    f.steps[1].after = vec!["nope".into()];
    assert!(plan(&f, Band::Small).unwrap_err().contains("nope"));
    // A dependency on a larger band's step is dropped where that step does not run.
    let mut f = flow();
    f.steps[4].after = vec!["a".into(), "b".into()];
    let small = plan(&f, Band::Small).unwrap();
    assert_eq!(small.step("final").unwrap().after, vec!["a".to_string()]);
    let medium = plan(&f, Band::Medium).unwrap();
    assert_eq!(
        medium.step("final").unwrap().after,
        vec!["a".to_string(), "b".to_string()]
    );
}

fn states(pairs: &[(&str, StepStatus)]) -> HashMap<String, StepState> {
    pairs
        .iter()
        .map(|(k, s)| {
            (
                k.to_string(),
                StepState {
                    status: *s,
                    fatal: false,
                },
            )
        })
        .collect()
}

#[test]
fn decides_wave_by_wave() {
    let p = plan(&flow(), Band::Small).unwrap();
    let none = BTreeMap::new();
    assert_eq!(
        decide(&p, &states(&[]), &none, false),
        Decision::Start(vec!["signals".into()])
    );
    let st = states(&[("signals", StepStatus::Running)]);
    assert_eq!(decide(&p, &st, &none, false), Decision::Wait);
    // The condition is false: `conc` is skipped before its wave starts.
    let st = states(&[("signals", StepStatus::Completed)]);
    assert_eq!(
        decide(&p, &st, &none, false),
        Decision::Skip(vec![("conc".into(), SkipReason::Condition)])
    );
    let st = states(&[
        ("signals", StepStatus::Completed),
        ("conc", StepStatus::Skipped),
    ]);
    assert_eq!(
        decide(&p, &st, &none, false),
        Decision::Start(vec!["a".into()])
    );
    // With the signal on, both agents of wave 2 start together.
    let on: BTreeMap<String, bool> = [("concurrency".to_string(), true)].into();
    let st = states(&[("signals", StepStatus::Completed)]);
    assert_eq!(
        decide(&p, &st, &on, false),
        Decision::Start(vec!["a".into(), "conc".into()])
    );
    let st = states(&[
        ("signals", StepStatus::Completed),
        ("a", StepStatus::Completed),
        ("conc", StepStatus::Running),
    ]);
    assert_eq!(decide(&p, &st, &on, false), Decision::Wait);
    let st = states(&[
        ("signals", StepStatus::Completed),
        ("a", StepStatus::Completed),
        ("conc", StepStatus::Skipped),
        ("final", StepStatus::Completed),
    ]);
    assert_eq!(
        decide(&p, &st, &none, false),
        Decision::Finish(RunStatus::Completed)
    );
}

#[test]
fn failure_policy() {
    let p = plan(&flow(), Band::Small).unwrap();
    let none = BTreeMap::new();
    // A failed agent does not stop the others; dependents still run.
    let st = states(&[
        ("signals", StepStatus::Completed),
        ("a", StepStatus::Failed),
        ("conc", StepStatus::Completed),
    ]);
    assert_eq!(
        decide(&p, &st, &none, false),
        Decision::Start(vec!["final".into()])
    );
    // When every agent input failed, the dependent is skipped (it would only repeat
    // the failure); skipped inputs do not count either way.
    let st = states(&[
        ("signals", StepStatus::Completed),
        ("a", StepStatus::Failed),
        ("conc", StepStatus::Skipped),
    ]);
    assert_eq!(
        decide(&p, &st, &none, false),
        Decision::Skip(vec![("final".into(), SkipReason::InputsFailed)])
    );
    // Some agent work survived: the run completes.
    let st = states(&[
        ("signals", StepStatus::Completed),
        ("a", StepStatus::Failed),
        ("conc", StepStatus::Skipped),
        ("final", StepStatus::Completed),
    ]);
    assert_eq!(outcome(&p, &st), RunStatus::Completed);
    // Every agent failed: the run fails.
    let st = states(&[
        ("signals", StepStatus::Completed),
        ("a", StepStatus::Failed),
        ("conc", StepStatus::Skipped),
        ("final", StepStatus::Failed),
    ]);
    assert_eq!(outcome(&p, &st), RunStatus::Failed);
    // A fatal step fails the run at once (after running steps end).
    let mut st = states(&[
        ("signals", StepStatus::Completed),
        ("a", StepStatus::Failed),
        ("conc", StepStatus::Running),
    ]);
    st.get_mut("a").unwrap().fatal = true;
    assert_eq!(decide(&p, &st, &none, false), Decision::Wait);
    st.get_mut("conc").unwrap().status = StepStatus::Completed;
    assert_eq!(
        decide(&p, &st, &none, false),
        Decision::Finish(RunStatus::Failed)
    );
}

#[test]
fn cancel_waits_for_running_steps_then_finishes() {
    let p = plan(&flow(), Band::Small).unwrap();
    let none = BTreeMap::new();
    let st = states(&[("signals", StepStatus::Running)]);
    assert_eq!(decide(&p, &st, &none, true), Decision::Wait);
    let st = states(&[("signals", StepStatus::Cancelled)]);
    assert_eq!(
        decide(&p, &st, &none, true),
        Decision::Finish(RunStatus::Cancelled)
    );
    let all = vec![
        ("signals".to_string(), StepStatus::Completed),
        ("a".to_string(), StepStatus::Pending),
        ("b".to_string(), StepStatus::Running),
    ];
    assert_eq!(to_cancel(&all), vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn reconcile_restarts_only_running_steps_of_live_runs() {
    let steps = vec![
        ("signals".to_string(), StepStatus::Completed),
        ("a".to_string(), StepStatus::Running),
        ("conc".to_string(), StepStatus::Pending),
    ];
    assert_eq!(reconcile(RunStatus::Running, &steps), vec!["a".to_string()]);
    assert!(reconcile(RunStatus::Cancelled, &steps).is_empty());
}
