use super::*;
use crate::catalog::Catalog;
use crate::testutil::{mkfifo, temp_dir, within};
use std::os::unix::fs::symlink;

fn script(name: &str, description: &str) -> String {
    format!("export const meta = {{ name: '{name}', description: '{description}' }};\nreturn 1;\n")
}

fn builtin() -> WorkflowCatalog {
    WorkflowCatalog::load(WorkflowDirs::default())
}

/// The catalog inside the binary: at least five workflows, each of which compiles,
/// has a description, a `whenToUse` and phases, names only personas boo has through
/// `agentType`, and asks its agents for the findings block.
#[test]
fn the_builtin_workflows_are_complete_and_valid() {
    let cat = builtin();
    assert!(cat.errors.is_empty(), "{:?}", cat.errors);
    for name in [
        "deep-review",
        "architecture-audit",
        "test-gap-sweep",
        "research-question",
        "dependency-audit",
    ] {
        assert!(cat.get(name).is_some(), "{name} is built in");
    }
    assert!(cat.workflows.len() >= 5);
    let personas = Catalog::builtin(None).personas;
    let agent_type = regex_lite_agent_types;
    for w in cat.workflows.values() {
        assert_eq!(w.source, WorkflowSource::Builtin);
        assert!(w.path.starts_with("builtin:workflows/"), "{}", w.path);
        assert!(!w.meta.description.is_empty(), "{}", w.name);
        assert!(
            w.meta.when_to_use.as_deref().is_some_and(|t| !t.is_empty()),
            "{}: whenToUse",
            w.name
        );
        assert!(w.meta.phases.len() >= 2, "{}: phases", w.name);
        for p in &w.meta.phases {
            assert!(
                w.script.contains(&format!("phase('{}')", p.title)),
                "{}: phase {:?} is declared in meta and opened by the script",
                w.name,
                p.title
            );
        }
        let types = agent_type(&w.script);
        assert!(types.len() >= 2, "{}: uses boo's personas", w.name);
        for t in types {
            assert!(
                personas.contains_key(&t),
                "{}: unknown persona {t:?}",
                w.name
            );
        }
        assert!(
            w.script.contains("findings block"),
            "{}: asks its agents for the findings block",
            w.name
        );
    }
}

/// The persona names a script passes as `agentType: '…'`, and those chosen from a
/// table (`['persona', 'lens']` rows handed to `agentType: persona`).
fn regex_lite_agent_types(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in script.split("agentType: '").skip(1) {
        if let Some(end) = part.find('\'') {
            out.push(part[..end].to_string());
        }
    }
    if script.contains("agentType: persona") {
        for line in script.lines() {
            let l = line.trim();
            if let Some(rest) = l.strip_prefix("['") {
                if let Some(end) = rest.find('\'') {
                    out.push(rest[..end].to_string());
                }
            }
        }
    }
    out
}

#[test]
fn user_and_project_workflows_are_found_and_never_shadow() {
    let home = temp_dir("wf-user");
    let root = temp_dir("wf-root");
    std::fs::write(
        home.0.join("deep-review.js"),
        script("deep-review", "my own deep review"),
    )
    .unwrap();
    std::fs::write(home.0.join("mine.mjs"), script("mine", "mine")).unwrap();
    std::fs::write(home.0.join("notes.txt"), "not a workflow").unwrap();
    for dir in PROJECT_DIRS {
        std::fs::create_dir_all(root.0.join(dir)).unwrap();
    }
    std::fs::write(
        root.0.join(".boo/workflows/a.js"),
        script("deep-review", "a hostile replacement"),
    )
    .unwrap();
    std::fs::write(
        root.0.join(".boo/workflows/b.js"),
        script("team-flow", "the team one"),
    )
    .unwrap();
    std::fs::write(
        root.0.join(".claude/workflows/c.js"),
        script("mine", "shadow the user one"),
    )
    .unwrap();
    std::fs::write(
        root.0.join(".claude/workflows/d.js"),
        script("claude-one", "from Claude Code"),
    )
    .unwrap();
    std::fs::write(
        root.0.join(".claude/workflows/e.js"),
        script("team-flow", "a second team-flow"),
    )
    .unwrap();
    std::fs::write(
        root.0.join(".claude/workflows/broken.js"),
        "export const meta = { name: 'broken', description: 'x' };\nconst = 1;\n",
    )
    .unwrap();
    let cat = WorkflowCatalog::load(WorkflowDirs {
        builtin_dir: None,
        user_dir: Some(&home.0),
        root: Some(&root.0),
    });
    // The user's own replaces the built-in; the project's never does.
    let dr = cat.get("deep-review").unwrap();
    assert_eq!(dr.source, WorkflowSource::User);
    assert_eq!(dr.meta.description, "my own deep review");
    let theirs = cat.get("project:deep-review").unwrap();
    assert_eq!(theirs.source, WorkflowSource::Project);
    assert_eq!(theirs.meta.description, "a hostile replacement");
    assert_eq!(cat.get("mine").unwrap().source, WorkflowSource::User);
    assert_eq!(
        cat.get("project:mine").unwrap().meta.description,
        "shadow the user one"
    );
    assert_eq!(
        cat.get("team-flow").unwrap().meta.description,
        "the team one"
    );
    assert_eq!(
        cat.get("claude-one").unwrap().source,
        WorkflowSource::Project
    );
    assert!(cat.get("architecture-audit").is_some());
    let errs: Vec<String> = cat.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        errs.iter()
            .any(|e| e.contains("e.js") && e.contains("already used by")),
        "{errs:?}"
    );
    let broken = cat
        .errors
        .iter()
        .find(|e| e.file.ends_with("broken.js"))
        .expect("the broken file is listed");
    assert_eq!(broken.line, Some(2), "{broken:?}");
    assert!(broken.column.is_some(), "{broken:?}");
    assert!(!errs.iter().any(|e| e.contains("notes.txt")));
}

#[test]
fn names_boo_keeps_are_refused() {
    let home = temp_dir("wf-names");
    std::fs::write(home.0.join("a.js"), script("project:x", "qualified")).unwrap();
    std::fs::write(home.0.join("b.js"), script(" spaced", "spaces")).unwrap();
    let cat = WorkflowCatalog::load(WorkflowDirs {
        user_dir: Some(&home.0),
        ..Default::default()
    });
    assert!(cat.get("project:x").is_none());
    assert_eq!(cat.errors.len(), 2, "{:?}", cat.errors);
    assert!(cat.errors[0].message.contains("project:"));
}

/// FIFOs, device links, links out of the root, a linked workflows folder and a huge
/// file are refused by name without blocking; the good workflow beside them loads.
#[test]
fn hostile_project_workflow_files_are_refused_without_blocking() {
    let root = temp_dir("wf-hostile");
    let outside = temp_dir("wf-outside");
    let dir = root.0.join(".boo/workflows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("good.js"), script("good", "fine")).unwrap();
    mkfifo(&dir.join("fifo.js"));
    symlink("/dev/stdin", dir.join("stdin.js")).unwrap();
    symlink("/dev/zero", dir.join("zero.js")).unwrap();
    std::fs::write(outside.0.join("x.js"), script("outside", "outside")).unwrap();
    symlink(outside.0.join("x.js"), dir.join("outside.js")).unwrap();
    let mut huge = script("huge", "huge").into_bytes();
    huge.extend(vec![b' '; 300 * 1024]);
    std::fs::write(dir.join("huge.js"), huge).unwrap();
    // `.claude` itself is a link out of the root.
    std::fs::create_dir_all(outside.0.join("workflows")).unwrap();
    std::fs::write(outside.0.join("workflows/evil.js"), script("evil", "evil")).unwrap();
    symlink(&outside.0, root.0.join(".claude")).unwrap();
    let r = root.0.clone();
    let cat = within(std::time::Duration::from_secs(10), move || {
        WorkflowCatalog::load(WorkflowDirs {
            root: Some(&r),
            ..Default::default()
        })
    })
    .expect("the loader never blocks");
    assert!(cat.get("good").is_some(), "{:?}", cat.errors);
    for bad in ["outside", "evil", "huge"] {
        assert!(cat.get(bad).is_none(), "{bad} was read");
    }
    let errs: Vec<String> = cat.errors.iter().map(|e| e.to_string()).collect();
    for bad in ["fifo.js", "stdin.js", "zero.js", "outside.js"] {
        assert!(
            errs.iter()
                .any(|e| e.contains(bad) && e.contains("not a regular file")),
            "{bad}: {errs:?}"
        );
    }
    assert!(
        errs.iter()
            .any(|e| e.contains("huge.js") && e.contains("larger than")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains(".claude") && e.contains("not a folder")),
        "{errs:?}"
    );
}

#[test]
fn a_relative_reference_stays_inside_the_root() {
    let root = temp_dir("wf-ref");
    std::fs::create_dir_all(root.0.join("flows")).unwrap();
    std::fs::write(root.0.join("flows/x.js"), script("x", "x")).unwrap();
    assert!(read_project_script(&root.0, "flows/x.js")
        .unwrap()
        .contains("name: 'x'"));
    assert!(read_project_script(&root.0, "./flows/x.js").is_ok());
    for bad in ["../x.js", "/etc/passwd", "flows/../../x.js"] {
        let e = read_project_script(&root.0, bad).unwrap_err();
        assert!(e.contains("not a path inside the project"), "{bad}: {e}");
    }
    symlink("/etc/passwd", root.0.join("flows/p.js")).unwrap();
    assert!(read_project_script(&root.0, "flows/p.js")
        .unwrap_err()
        .contains("not a regular file"));
}

#[test]
fn the_declarations_cover_the_script_api() {
    for name in [
        "function agent(",
        "function parallel",
        "function pipeline",
        "function phase(",
        "function log(",
        "function workflow(",
        "const args",
        "const budget",
        "interface BooWorkflowMeta",
        "agentType?",
        "schema?",
    ] {
        assert!(DECLARATIONS.contains(name), "{name}");
    }
}
