//! Attachments end to end with the real `boo serve` and the fake qwen: launch with
//! images (inline and by path), list and fetch them, refusals that create no run,
//! deduplication across runs and `boo gc`, and the CLI's `--attach`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);
const PNG: &[u8] = include_bytes!("fixtures/images/red-3x2.png");
const PNG_4X4: &[u8] = include_bytes!("fixtures/images/red-4x4.png");

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let v = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[((v >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn vision_env() -> Vec<(&'static str, String)> {
    vec![("BOO_VISION_MODEL", "1".to_string())]
}

fn run_count(s: &mut Server) -> usize {
    let runs = s.request("boo/listRuns", json!({"root": null})).unwrap();
    runs["runs"].as_array().map(Vec::len).unwrap_or(0)
}

fn launch_with(s: &mut Server, attachments: Value) -> Result<Value, (i64, String)> {
    s.request(
        "boo/launchFlow",
        json!({"flow": "code-review", "input": {"question": "Does the layout match?"},
               "attachments": attachments}),
    )
}

#[test]
fn attached_images_are_listed_on_the_run_and_fetched_byte_identical() {
    let t = TempDir::new("attach-run");
    let root = project(t.path());
    std::fs::write(t.path().join("mock.png"), PNG_4X4).unwrap();
    let mut s = Server::start(&t.path().join("boo.db"), &vision_env());
    let init = s.initialize(&root);
    let features = &init["capabilities"]["experimental"]["boo"]["features"];
    assert!(
        features.as_array().unwrap().contains(&json!("attachments")),
        "{features}"
    );
    let r = launch_with(
        &mut s,
        json!([
            {"name": "screenshot.png", "mimeType": "image/png", "data": b64(PNG)},
            {"path": t.path().join("mock.png").display().to_string()}
        ]),
    )
    .unwrap_or_else(|e| panic!("{e:?}; {}", s.stderr()));
    let run_id = r["runId"].as_str().unwrap().to_string();
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    let atts = got["run"]["attachments"].as_array().unwrap().clone();
    assert_eq!(atts.len(), 2, "{atts:?}");
    assert_eq!(atts[0]["name"], "screenshot.png");
    assert_eq!(atts[0]["mimeType"], "image/png");
    assert_eq!(atts[0]["bytes"], PNG.len());
    assert_eq!(
        (atts[0]["width"].clone(), atts[0]["height"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(atts[0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(atts[1]["name"], "mock.png");
    assert_eq!(
        (atts[1]["width"].clone(), atts[1]["height"].clone()),
        (json!(4), json!(4))
    );
    for (a, bytes) in atts.iter().zip([PNG, PNG_4X4]) {
        let f = s
            .request(
                "boo/getAttachment",
                json!({"attachmentId": a["attachmentId"]}),
            )
            .unwrap();
        assert_eq!(f["data"], b64(bytes), "byte-identical");
        assert_eq!(f["name"], a["name"]);
        assert_eq!(f["mimeType"], "image/png");
    }
    // The report lists them at the top; the exports carry them (JSON with their ids).
    let report = got["report"].as_str().unwrap();
    assert!(
        report.contains("**Attachments**")
            && report.contains("- `screenshot.png` — image/png, 3×2 px"),
        "{report}"
    );
    let md = s
        .request(
            "boo/exportRun",
            json!({"runId": run_id, "format": "markdown"}),
        )
        .unwrap();
    assert!(md["content"]
        .as_str()
        .unwrap()
        .contains("`mock.png` — image/png, 4×4 px"));
    let js = s
        .request("boo/exportRun", json!({"runId": run_id, "format": "json"}))
        .unwrap();
    let js: Value = serde_json::from_str(js["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        js["attachments"][0]["attachmentId"],
        atts[0]["attachmentId"]
    );
    assert_eq!(js["attachments"][1]["name"], "mock.png");
    // The images never enter the project tree.
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert!(!names.iter().any(|n| n.ends_with(".png")), "{names:?}");
    let (c, m) = s
        .request("boo/getAttachment", json!({"attachmentId": "nope"}))
        .unwrap_err();
    assert!(
        c == -32001 && m.contains("unknown attachmentId nope"),
        "{c} {m}"
    );
    // A run without attachments lists none.
    let r = s
        .request(
            "boo/launchFlow",
            json!({"flow": "code-review", "input": {"question": "q"}}),
        )
        .unwrap();
    let id = r["runId"].as_str().unwrap().to_string();
    s.wait_run_end(&id, LONG);
    let got = s.request("boo/getRun", json!({"runId": id})).unwrap();
    assert_eq!(got["run"]["attachments"], json!([]));
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn refused_attachments_name_the_file_and_create_no_run() {
    let t = TempDir::new("attach-refused");
    let root = project(t.path());
    std::fs::write(t.path().join("notes.png"), b"not an image at all").unwrap();
    let db = t.path().join("boo.db");
    {
        // A text-only model (nothing declared): refused, saying how to declare one.
        let mut s = Server::start(&db, &[]);
        s.initialize(&root);
        let (c, m) = launch_with(&mut s, json!([{"name": "a.png", "data": b64(PNG)}])).unwrap_err();
        assert!(
            c == -32602 && m.contains("BOO_VISION_MODEL=1") && m.contains("test-model"),
            "{c} {m}"
        );
        // The per-run flag declares it for one launch.
        let r = s
            .request(
                "boo/launchFlow",
                json!({"flow": "code-review", "input": {"question": "q"}, "visionModel": true,
                       "attachments": [{"name": "a.png", "data": b64(PNG)}]}),
            )
            .unwrap();
        s.wait_run_end(r["runId"].as_str().unwrap(), LONG);
        assert_eq!(run_count(&mut s), 1);
        assert_eq!(s.stop(), Some(0));
    }
    let mut s = Server::start(&db, &vision_env());
    s.initialize(&root);
    let huge = "A".repeat(10_200_000);
    let mut jpeg_named_png = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0, 0];
    jpeg_named_png.extend([0xFF, 0xC0, 0x00, 0x11, 0x08, 0, 5, 0, 7]);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!([{"name": "big.png", "data": huge}]),
            vec!["attachments[0] big.png", "9900000"],
        ),
        (
            json!([{"path": t.path().join("notes.png").display().to_string()}]),
            vec!["notes.png", "not a PNG, JPEG, GIF or WebP"],
        ),
        (
            json!([{"name": "a.png", "mimeType": "image/gif", "data": b64(PNG)}]),
            vec![
                "a.png",
                "mimeType says image/gif but the content is image/png",
            ],
        ),
        (
            json!([{"name": "shot.png", "data": b64(&jpeg_named_png)}]),
            vec![
                "shot.png",
                "the name says image/png but the content is image/jpeg",
            ],
        ),
        (
            json!([{"name": "ok.png", "data": b64(PNG)}, {"name": "x.svg", "data": b64(b"<svg/>")}]),
            vec!["attachments[1] x.svg", "not a PNG"],
        ),
        (
            json!([{"data": b64(PNG)}]),
            vec!["attachments[0]", "needs a `name`"],
        ),
        (
            json!([{"name": "a.png", "data": b64(PNG), "path": "/x.png"}]),
            vec!["either"],
        ),
        (
            json!((0..6)
                .map(|i| json!({"name": format!("{i}.png"), "data": b64(PNG)}))
                .collect::<Vec<_>>()),
            vec!["at most 5"],
        ),
        (
            json!([{"path": t.path().join("missing.png").display().to_string()}]),
            vec!["missing.png", "cannot read"],
        ),
    ];
    for (atts, wants) in &cases {
        let (c, m) = launch_with(&mut s, atts.clone()).unwrap_err();
        assert_eq!(c, -32602, "{m}");
        for w in wants {
            assert!(m.contains(w), "{m:?} lacks {w:?}");
        }
    }
    // Workflows take attachments too, and refuse them the same way.
    let (c, m) = s
        .request(
            "boo/launchWorkflow",
            json!({"script": "export const meta = {name: 'w', description: 'd'};\nreturn 1;",
                   "attachments": [{"name": "a.png", "mimeType": "image/gif", "data": b64(PNG)}]}),
        )
        .unwrap_err();
    assert!(c == -32602 && m.contains("a.png"), "{c} {m}");
    assert_eq!(run_count(&mut s), 1, "no refused launch left a run");
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn an_image_is_stored_once_across_runs_and_goes_with_its_last_run() {
    let t = TempDir::new("attach-dedup");
    let root = project(t.path());
    let db = t.path().join("boo.db");
    let png_file = t.path().join("shot.png");
    std::fs::write(&png_file, PNG).unwrap();
    // Two runs from the command line attach the same file; a workflow run, too.
    let file = png_file.display().to_string();
    let root_s = root.display().to_string();
    for _ in 0..2 {
        let out = boo_cli(
            &db,
            &[
                "run",
                "code-review",
                "q",
                "--root",
                &root_s,
                "--attach",
                &file,
                "--vision",
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = boo_cli(
        &db,
        &[
            "run",
            "code-review",
            "q",
            "--root",
            &root_s,
            "--attach",
            &file,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BOO_VISION_MODEL=1") && err.contains("--vision"),
        "{err}"
    );
    let script = t.path().join("w.js");
    std::fs::write(
        &script,
        "export const meta = {name: 'w', description: 'looks'};\nreturn 'seen';\n",
    )
    .unwrap();
    let out = boo_cli(
        &db,
        &[
            "workflow",
            "run",
            &script.display().to_string(),
            "--root",
            &root_s,
            "--attach",
            &file,
        ],
        &vision_env(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let count_images = || rusqlite_count(&db);
    assert_eq!(count_images(), 1, "stored once");
    let mut s = Server::start(&db, &[]);
    s.initialize(&root);
    let runs = s.request("boo/listRuns", json!({"root": null})).unwrap();
    let ids: Vec<String> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let mut shas = Vec::new();
    for id in &ids {
        let got = s.request("boo/getRun", json!({"runId": id})).unwrap();
        let a = &got["run"]["attachments"][0];
        assert_eq!(a["name"], "shot.png");
        shas.push(a["sha256"].clone());
    }
    assert!(shas.iter().all(|x| *x == shas[0]));
    assert_eq!(s.stop(), Some(0));
    // gc: every run is older than 0 s, so the image goes with the last of them.
    std::thread::sleep(Duration::from_millis(20));
    let out = boo_cli(&db, &["gc", "--older-than", "0s"], &[]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && said.contains("removed 3 run(s)")
            && said.contains("1 attached image(s)"),
        "{said}"
    );
    assert_eq!(count_images(), 0);
}

/// Rows of the attachments table.
fn rusqlite_count(db: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT COUNT(*) FROM attachments", [], |r| r.get(0))
        .unwrap()
}

/// `boo/spawnAgent` takes images like the other launches: listed on the agent's run,
/// refused (no run) for a model not declared to take them.
#[test]
fn a_spawned_agent_gets_the_attached_images() {
    let t = TempDir::new("attach-agent");
    let root = project(t.path());
    let mut s = Server::start(&t.path().join("boo.db"), &[]);
    s.initialize(&root);
    let image = json!([{"name": "ui.png", "mimeType": "image/png", "data": b64(PNG)}]);
    let (code, msg) = s
        .request(
            "boo/spawnAgent",
            json!({"persona": "codebase-explorer", "prompt": "What does the screen show?",
                   "attachments": image}),
        )
        .unwrap_err();
    assert!(
        code == -32602 && msg.contains("BOO_VISION_MODEL"),
        "{code} {msg}"
    );
    assert_eq!(run_count(&mut s), 0);
    let r = s
        .request(
            "boo/spawnAgent",
            json!({"persona": "codebase-explorer", "prompt": "What does the screen show?",
                   "attachments": image, "visionModel": true}),
        )
        .unwrap_or_else(|e| panic!("{e:?}; {}", s.stderr()));
    let run_id = r["runId"].as_str().unwrap().to_string();
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let got = s.request("boo/getRun", json!({"runId": run_id})).unwrap();
    assert_eq!(got["run"]["kind"], "agent");
    let atts = got["run"]["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert_eq!(atts[0]["name"], "ui.png");
    assert_eq!(atts[0]["bytes"], PNG.len());
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(data))
}

/// A flow step with `attachments = false` gets the prompt without the run's images; the
/// other agent steps get each image, byte-identical, with their prompt.
#[test]
fn a_flow_step_may_leave_the_images_out() {
    let t = TempDir::new("attach-optout");
    let root = project(t.path());
    let rec = t.path().join("records");
    std::fs::create_dir_all(&rec).unwrap();
    std::fs::create_dir_all(root.join(".boo/flows")).unwrap();
    std::fs::write(
        root.join(".boo/flows/looks.toml"),
        r#"
name = "looks"
title = "Looks"
category = "review"
description = "One agent looks at the screenshots, one reads the code only."

[[steps]]
id = "eyes"
kind = "agent"
persona = "codebase-explorer"
prompt = "Describe what the screenshots show."

[[steps]]
id = "code"
kind = "agent"
persona = "codebase-explorer"
attachments = false
prompt = "Read the code only."
"#,
    )
    .unwrap();
    let mut env = vision_env();
    env.push(("FAKE_QWEN_DIR", rec.display().to_string()));
    let mut s = Server::start(&t.path().join("boo.db"), &env);
    s.initialize(&root);
    s.request("boo/trustRoot", json!({"root": root, "trusted": true}))
        .unwrap();
    let r = s
        .request(
            "boo/launchFlow",
            json!({"flow": "looks", "input": {"question": "Does the layout match?"},
                   "attachments": [
                       {"name": "small.png", "mimeType": "image/png", "data": b64(PNG)},
                       {"name": "big.png", "mimeType": "image/png", "data": b64(PNG_4X4)}]}),
        )
        .unwrap_or_else(|e| panic!("{e:?}; {}", s.stderr()));
    let run_id = r["runId"].as_str().unwrap().to_string();
    let end = s.wait_run_end(&run_id, LONG);
    assert_eq!(end["runStatus"], "completed", "{end}");
    let records = agent_records(&rec);
    let of = |step: &str| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["env"]["BOO_STEP_ID"] == step)
            .cloned()
            .collect()
    };
    let (eyes, code) = (of("eyes"), of("code"));
    assert_eq!(eyes.len(), 1, "{records:?}");
    assert_eq!(code.len(), 1, "{records:?}");
    let got: Vec<(String, u64)> = eyes[0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["sha256"].as_str().unwrap().to_string(),
                i["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (sha256_hex(PNG), PNG.len() as u64),
            (sha256_hex(PNG_4X4), PNG_4X4.len() as u64)
        ],
        "both images, in launch order, byte-identical"
    );
    assert_eq!(code[0]["images"], json!([]), "{}", code[0]);
    assert!(
        !code[0]["prompt"].as_str().unwrap().contains("small.png"),
        "the opted-out step is not told about the images: {}",
        code[0]["prompt"]
    );
    s.stop();
}
