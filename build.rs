//! Embeds the built-in catalog (flows/*.toml, personas/*.md, workflows/*.js and the
//! workflow API's declarations) into the binary so an installed `boo` works from any
//! directory.

use std::fs;
use std::io::Write;
use std::path::Path;

fn list(dir: &str, ext: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(ext))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn main() {
    println!("cargo:rerun-if-changed=flows");
    println!("cargo:rerun-if-changed=personas");
    println!("cargo:rerun-if-changed=workflows");
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut f =
        fs::File::create(Path::new(&out_dir).join("catalog_files.rs")).expect("write OUT_DIR");
    for (dir, ext, name) in [
        ("flows", ".toml", "FLOW_FILES"),
        ("personas", ".md", "PERSONA_FILES"),
    ] {
        let files = list(&format!("{root}/{dir}"), ext);
        for file in &files {
            println!("cargo:rerun-if-changed={dir}/{file}");
        }
        writeln!(f, "pub static {name}: &[(&str, &str)] = &[").unwrap();
        for file in files {
            writeln!(
                f,
                "    ({:?}, include_str!({:?})),",
                format!("{dir}/{file}"),
                format!("{root}/{dir}/{file}")
            )
            .unwrap();
        }
        writeln!(f, "];").unwrap();
    }
    let mut w =
        fs::File::create(Path::new(&out_dir).join("workflow_files.rs")).expect("write OUT_DIR");
    let files = list(&format!("{root}/workflows"), ".js");
    writeln!(w, "pub static WORKFLOW_FILES: &[(&str, &str)] = &[").unwrap();
    for file in files {
        println!("cargo:rerun-if-changed=workflows/{file}");
        writeln!(
            w,
            "    ({:?}, include_str!({:?})),",
            format!("workflows/{file}"),
            format!("{root}/workflows/{file}")
        )
        .unwrap();
    }
    writeln!(w, "];").unwrap();
    println!("cargo:rerun-if-changed=workflows/boo-workflow.d.ts");
    writeln!(
        w,
        "pub static DECLARATIONS: &str = include_str!({:?});",
        format!("{root}/workflows/boo-workflow.d.ts")
    )
    .unwrap();
}
