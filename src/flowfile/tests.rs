use super::*;
use crate::codesteps::{CodeFn, Signal};
use crate::model::Category;
use serde_json::Value;

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("the schema is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft7::new(&schema()).expect("the schema is a valid draft-07 schema")
}

/// A flow file as the JSON value editors validate (TOML → JSON).
fn as_json(text: &str) -> Value {
    let t: toml::Table = toml::from_str(text).expect("valid TOML");
    serde_json::to_value(t).expect("TOML converts to JSON")
}

fn schema_errors(text: &str) -> Vec<String> {
    let v = validator();
    let instance = as_json(text);
    v.iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn builtin_flows() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_builtin_flow_satisfies_the_schema_and_points_at_it() {
    let flows = builtin_flows();
    assert!(flows.len() >= 11, "the built-in flows are there");
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/flow.schema.json");
    assert_eq!(std::fs::read_to_string(&schema_path).unwrap(), SCHEMA);
    for (file, text) in &flows {
        assert_eq!(
            text.lines().next(),
            Some("#:schema ../schemas/flow.schema.json"),
            "{file}: the first line is the schema directive"
        );
        let errors = schema_errors(text);
        assert!(errors.is_empty(), "{file}: {errors:#?}");
    }
    // And they load: the directive is a comment to the loader.
    let cat = Catalog::builtin(None);
    assert!(cat.errors.is_empty(), "{:?}", cat.errors);
    assert_eq!(cat.flows.len(), flows.len());
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_schema_lists_what_the_loader_knows() {
    let s = schema();
    let step = &s["definitions"]["step"]["properties"];
    assert_eq!(
        strings(&step["function"]["enum"]),
        CodeFn::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(
        strings(&s["properties"]["category"]["enum"]),
        Category::ALL.map(|c| c.as_str().to_string())
    );
    assert_eq!(
        strings(&step["band"]["enum"]),
        Band::ALL.map(|b| b.as_str().to_string())
    );
    assert_eq!(strings(&step["kind"]["enum"]), ["agent", "code"]);
    let when = step["when"]["description"].as_str().unwrap();
    for signal in Signal::ALL.iter().map(|s| s.as_str()) {
        assert!(when.contains(signal), "the `when` help names {signal}");
    }
    let run_command = &s["definitions"]["step"]["allOf"][2]["then"]["properties"]["args"];
    assert_eq!(
        strings(&run_command["properties"]["argv"]["items"][1]["enum"]),
        crate::codesteps::ALLOWED_GIT
    );
}

const BASE: &str = r#"
name = "demo"
title = "Demo"
category = "analysis"
description = "d"

[[steps]]
id = "signals"
kind = "code"
function = "signals"

[[steps]]
id = "look"
kind = "agent"
persona = "behavioral-analyst"
after = ["signals"]
prompt = "Look at the code."
"#;

fn loads(text: &str) -> bool {
    parse_flow("demo.toml", text, &Catalog::builtin(None).personas).is_ok()
}

#[test]
fn what_the_loader_refuses_for_a_reason_a_schema_can_see_the_schema_refuses() {
    assert!(
        loads(BASE) && schema_errors(BASE).is_empty(),
        "the base is valid"
    );
    let cases = [
        (
            "an unknown top-level key",
            BASE.replace("title = \"Demo\"", "title = \"Demo\"\ncolour = \"red\""),
        ),
        (
            "an unknown step key",
            BASE.replace("prompt = \"Look", "model = \"x\"\nprompt = \"Look"),
        ),
        (
            "a bad category",
            BASE.replace("\"analysis\"", "\"musings\""),
        ),
        (
            "a bad kind",
            BASE.replace("kind = \"agent\"", "kind = \"robot\""),
        ),
        (
            "a bad band",
            BASE.replace(
                "after = [\"signals\"]",
                "after = [\"signals\"]\nband = \"huge\"",
            ),
        ),
        (
            "an agent step without a persona",
            BASE.replace("persona = \"behavioral-analyst\"\n", ""),
        ),
        (
            "an agent step without a prompt",
            BASE.replace("prompt = \"Look at the code.\"\n", ""),
        ),
        (
            "an agent step naming a function",
            BASE.replace(
                "persona = \"behavioral-analyst\"",
                "persona = \"behavioral-analyst\"\nfunction = \"signals\"",
            ),
        ),
        (
            "a code step naming a persona",
            BASE.replace(
                "function = \"signals\"",
                "function = \"signals\"\npersona = \"behavioral-analyst\"",
            ),
        ),
        (
            "an unknown function",
            BASE.replace("function = \"signals\"", "function = \"rm_rf\""),
        ),
        (
            "a name with capitals",
            BASE.replace("name = \"demo\"", "name = \"Demo\""),
        ),
        (
            "no steps",
            BASE.split("[[steps]]").next().unwrap().to_string() + "steps = []\n",
        ),
        (
            "a missing description",
            BASE.replace("description = \"d\"\n", ""),
        ),
        (
            "an empty title",
            BASE.replace("title = \"Demo\"", "title = \" \""),
        ),
        (
            "a step id with a space",
            BASE.replace("id = \"look\"", "id = \"look here\""),
        ),
    ];
    for (what, text) in &cases {
        assert!(!loads(text), "the loader refuses {what}");
        assert!(!schema_errors(text).is_empty(), "the schema refuses {what}");
    }
}

#[test]
fn what_the_loader_accepts_the_schema_accepts() {
    let cases = [
        ("answer as a list", BASE.replace("description = \"d\"", "description = \"d\"\nanswer = [\"look\"]")),
        ("answer as a string", BASE.replace("description = \"d\"", "description = \"d\"\nanswer = \"look\"")),
        ("a label and a condition", BASE.replace("prompt = \"Look", "label = \"L\"\nwhen = \"tests || !docs\"\nprompt = \"Look")),
        ("args of git_diff", BASE.replace("function = \"signals\"", "function = \"signals\"\nargs = {}")),
        ("a read-only git command", format!("{BASE}\n[[steps]]\nid = \"log\"\nkind = \"code\"\nfunction = \"run_command\"\nargs = {{ argv = [\"git\", \"log\", \"-n\", \"5\"], cwd = \"src\" }}\n")),
    ];
    for (what, text) in &cases {
        assert!(loads(text), "the loader accepts {what}");
        let errors = schema_errors(text);
        assert!(errors.is_empty(), "the schema accepts {what}: {errors:?}");
    }
    // A command the function refuses at run time is refused while typing.
    let rm = format!("{BASE}\n[[steps]]\nid = \"rm\"\nkind = \"code\"\nfunction = \"run_command\"\nargs = {{ argv = [\"rm\", \"-rf\", \"/\"] }}\n");
    assert!(!schema_errors(&rm).is_empty());
}

#[test]
fn the_starter_loads_satisfies_the_schema_and_has_agents_in_every_band() {
    let text = starter("cache-review");
    let flow = parse_flow("cache-review.toml", &text, &Catalog::builtin(None).personas)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(flow.name, "cache-review");
    assert!(
        schema_errors(&text).is_empty(),
        "{:?}",
        schema_errors(&text)
    );
    assert!(text.starts_with("#:schema ../flow.schema.json\n"));
    for band in Band::ALL {
        assert!(crate::engine::plan(&flow, band).is_ok(), "{band}");
    }
    assert_eq!(
        crate::engine::roster(&flow, Band::Medium).len(),
        crate::engine::roster(&flow, Band::Small).len() + 1
    );
}

#[test]
fn project_of_a_file_in_dot_boo_flows() {
    assert_eq!(
        project_of(Path::new("/p/.boo/flows/x.toml")),
        Some(PathBuf::from("/p"))
    );
    assert_eq!(project_of(Path::new("/p/flows/x.toml")), None);
    assert_eq!(project_of(Path::new("x.toml")), None);
}
