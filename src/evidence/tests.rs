use super::*;
use std::fs;

fn root() -> crate::testutil::TempDir {
    crate::testutil::temp_dir("ev")
}

fn cite(path: &str, lines: Option<(u32, u32)>, quote: Option<&str>) -> Citation {
    Citation {
        bad_lines: None,
        path: path.into(),
        lines,
        quote: quote.map(String::from),
        attachment: None,
    }
}

#[test]
fn verifier_table() {
    let dir = root();
    let r = &dir.0;
    fs::create_dir_all(r.join("src")).unwrap();
    fs::write(
        r.join("src/cache.rs"),
        "fn a() {}\nlet x =   compute(1,\n   2);\nend\n",
    )
    .unwrap();
    let outside = dir
        .0
        .parent()
        .unwrap()
        .join(format!("boo-outside-{}", std::process::id()));
    fs::write(&outside, "secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, r.join("link")).unwrap();
    let abs_inside = r.join("src/cache.rs").display().to_string();
    let cases: Vec<(Citation, bool, &str)> = vec![
        (
            cite("src/cache.rs", Some((2, 3)), Some("let x = compute(1, 2);")),
            true,
            "",
        ),
        (cite("./src/cache.rs", Some((1, 1)), None), true, ""),
        (cite(&abs_inside, Some((1, 1)), Some("fn a() {}")), true, ""),
        (
            cite("src/cache.rs", Some((2, 3)), Some("let y")),
            false,
            "quote",
        ),
        (
            cite("src/cache.rs", Some((4, 9)), None),
            false,
            "has 4 lines",
        ),
        (
            cite("src/cache.rs", Some((0, 1)), None),
            false,
            "has 4 lines",
        ),
        (cite("src/cache.rs", None, None), false, "no line numbers"),
        (
            cite("src/missing.rs", Some((1, 1)), None),
            false,
            "does not exist",
        ),
        (
            cite("../etc/passwd", Some((1, 1)), None),
            false,
            "leaves the project",
        ),
        (
            cite("/etc/passwd", Some((1, 1)), None),
            false,
            "absolute path outside",
        ),
        (
            cite("link", Some((1, 1)), None),
            false,
            "outside the project",
        ),
        (cite("src", Some((1, 1)), None), false, "not a file"),
    ];
    for (c, ok, why) in cases {
        let got = check_citation(r, &c);
        assert_eq!(got.ok, ok, "{c:?} → {got:?}");
        if !ok {
            assert!(
                got.reason.as_deref().unwrap_or("").contains(why),
                "{c:?}: {:?} lacks {why:?}",
                got.reason
            );
        }
    }
    fs::remove_file(outside).ok();
}

#[test]
fn verdicts() {
    let dir = root();
    fs::write(dir.0.join("a.txt"), "one\ntwo\n").unwrap();
    let src = Source {
        step_id: "s".into(),
        agent: "p".into(),
    };
    let f = |ev: Vec<Citation>| Finding {
        title: "t".into(),
        severity: Severity::High,
        claim: "c".into(),
        evidence: ev,
    };
    assert_eq!(
        check_finding(
            &dir.0,
            &f(vec![cite("a.txt", Some((1, 2)), Some("one two"))]),
            src.clone()
        )
        .verdict,
        Verdict::Verified
    );
    let u = check_finding(
        &dir.0,
        &f(vec![
            cite("a.txt", Some((1, 1)), None),
            cite("b.txt", Some((1, 1)), None),
        ]),
        src.clone(),
    );
    assert_eq!(u.verdict, Verdict::Unverified);
    assert!(u.reason.unwrap().contains("b.txt"));
    assert_eq!(
        check_finding(&dir.0, &f(vec![]), src).verdict,
        Verdict::NoEvidence
    );
}

#[test]
fn tolerant_parsing() {
    // Prose around the block, trailing commas.
    let a = parse_answer("Here it is.\n\n```findings\n[{\"title\": \"T\", \"severity\": \"HIGH\", \"claim\": \"C\", \"evidence\": [{\"path\": \"a.rs\", \"lines\": [1, 2], \"quote\": \"q\"},],},]\n```\nThanks.");
    assert_eq!(a.prose, "Here it is.\n\nThanks.");
    assert_eq!(a.findings.len(), 1);
    assert_eq!(a.findings[0].severity, Severity::High);
    assert_eq!(a.findings[0].evidence[0].lines, Some((1, 2)));
    // A single object instead of an array; `line` and `file` spellings; path:line.
    let b = parse_answer("```findings\n{\"title\": \"T\", \"claim\": \"C\", \"evidence\": {\"file\": \"x.rs:12\"}}\n```");
    assert_eq!(
        b.findings[0].evidence[0],
        cite("x.rs", Some((12, 12)), None)
    );
    let c = parse_answer("```findings\n{\"findings\": [{\"title\": \"T\", \"evidence\": [{\"path\": \"y\", \"line\": 3}]}]}\n```");
    assert_eq!(c.findings[0].evidence[0].lines, Some((3, 3)));
    // No block at all.
    let d = parse_answer("Just prose.");
    assert!(!d.had_block && d.findings.is_empty() && d.prose == "Just prose.");
    // A broken block is reported, never a crash.
    let e = parse_answer("x\n```findings\n[{\"title\": \n```");
    assert!(e.had_block && e.problem.is_some());
    // An unterminated block still parses.
    let f = parse_answer("```findings\n[{\"title\": \"T\", \"claim\": \"C\"}]");
    assert_eq!(f.findings.len(), 1);
    // A json fence that holds findings counts when there is no findings fence.
    let g = parse_answer("```json\n[{\"title\": \"T\", \"claim\": \"C\"}]\n```");
    assert_eq!(g.findings.len(), 1);
    // Empty array.
    assert!(parse_answer("```findings\n[]\n```").findings.is_empty());
}

#[test]
fn merging_keeps_every_source() {
    let dir = root();
    fs::write(dir.0.join("a.txt"), "one\ntwo\nthree\n").unwrap();
    let mk = |title: &str, lines: (u32, u32), agent: &str, sev: Severity| {
        check_finding(
            &dir.0,
            &Finding {
                title: title.into(),
                severity: sev,
                claim: "c".into(),
                evidence: vec![cite("a.txt", Some(lines), None)],
            },
            Source {
                step_id: agent.into(),
                agent: agent.into(),
            },
        )
    };
    let merged = merge(vec![
        mk("Race in cache", (1, 2), "a", Severity::Medium),
        mk("Cache race!", (2, 3), "b", Severity::High),
        mk("race in cache", (3, 3), "c", Severity::Low),
        mk("Unrelated", (1, 1), "d", Severity::Low),
    ]);
    // Similar titles with overlapping citations merge; the same title merges; an
    // unrelated finding on an overlapping line stays apart.
    assert_eq!(merged.len(), 2, "{merged:#?}");
    assert_eq!(merged[0].severity, Severity::High);
    assert_eq!(merged[0].sources.len(), 3);
    assert_eq!(merged[1].title, "Unrelated");
}

#[test]
fn hostile_line_numbers_are_never_verified() {
    let dir = root();
    let r = &dir.0;
    fs::write(r.join("a.rs"), "one\ntwo\r\nthree").unwrap();
    let parsed = |lines: &str| {
        let a = parse_answer(&format!(
            "x\n```findings\n[{{\"title\": \"t\", \"severity\": \"low\", \"claim\": \"c\", \"evidence\": [{{\"path\": \"a.rs\", \"lines\": {lines}}}]}}]\n```"
        ));
        a.findings[0].evidence[0].clone()
    };
    // 2^32 + 1 must not wrap round to line 1.
    let c = parsed("[4294967297, 4294967297]");
    let checked = check_citation(r, &c);
    assert!(!checked.ok, "{checked:?}");
    assert!(checked.reason.unwrap().contains("has 3 lines"));
    // An end that is not a line number does not fall back to the start line.
    for bad in ["[1, \"x\"]", "[1, -3]", "[1, 2.5]", "\"a-b\""] {
        let c = parsed(bad);
        let checked = check_citation(r, &c);
        assert!(!checked.ok, "{bad}: {checked:?}");
        assert!(
            checked
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("not line numbers"),
            "{bad}: {checked:?}"
        );
    }
    // CRLF and a last line without a newline are read right.
    assert!(check_citation(r, &cite("a.rs", Some((2, 3)), Some("two three"))).ok);
    assert!(check_citation(r, &cite("a.rs", Some((3, 3)), Some("three"))).ok);
    assert!(!check_citation(r, &cite("a.rs", Some((4, 4)), None)).ok);
}

#[test]
fn a_huge_cited_file_is_scanned_only_as_far_as_the_cap() {
    let dir = root();
    let r = &dir.0;
    // 1 GiB without a newline (sparse: no disk used).
    let f = fs::File::create(r.join("huge.bin")).unwrap();
    f.set_len(1 << 30).unwrap();
    let one = check_citation(r, &cite("huge.bin", Some((1, 1)), Some("x")));
    assert!(!one.ok);
    assert!(one.reason.unwrap().contains("longer than 1024 KiB"));
    let two = check_citation(r, &cite("huge.bin", Some((2, 2)), None));
    assert!(!two.ok);
    assert!(two.reason.unwrap().contains("more than 64 MiB"));
    let zero = check_citation(r, &cite("huge.bin", Some((0, 1)), None));
    assert!(zero.reason.unwrap().contains("more than 64 MiB of lines"));
    // A huge range is refused before anything is read.
    let wide = check_citation(r, &cite("huge.bin", Some((1, 1_000_000)), None));
    assert!(wide.reason.unwrap().contains("at most 5000"));
}

#[test]
fn a_finding_may_cite_an_attached_image_which_is_shown_not_checked() {
    let dir = root();
    let r = &dir.0;
    std::fs::create_dir_all(r.join("src")).unwrap();
    std::fs::write(r.join("src/lib.rs"), "pub fn add(a: u32) -> u32 { a }\n").unwrap();
    let text = "Done.\n```findings\n[\
        {\"title\": \"Sidebar overlaps\", \"severity\": \"medium\", \"claim\": \"c\",\
         \"evidence\": [{\"attachment\": \"layout.png\", \"region\": \"top left, the sidebar\"}]},\
        {\"title\": \"Mixed\", \"severity\": \"low\", \"claim\": \"c\",\
         \"evidence\": [{\"path\": \"src/lib.rs\", \"lines\": [1, 1], \"quote\": \"pub fn add\"},\
                        {\"attachment\": \"layout.png\"}]}\
    ]\n```\n";
    let parsed = parse_answer(text);
    assert_eq!(parsed.findings.len(), 2, "{parsed:?}");
    let cited = &parsed.findings[0].evidence[0];
    assert_eq!(
        cited.attachment,
        Some(ImageCitation {
            name: "layout.png".into(),
            region: Some("top left, the sidebar".into())
        })
    );
    let src = Source {
        step_id: "s".into(),
        agent: "a".into(),
    };
    let only_image = check_finding(r, &parsed.findings[0], src.clone());
    assert_eq!(only_image.verdict, Verdict::Unverified);
    assert!(
        only_image.reason.as_deref().unwrap().contains("layout.png"),
        "{only_image:?}"
    );
    assert!(!only_image.evidence[0].ok);
    assert_eq!(
        only_image.evidence[0].attachment.as_ref().unwrap().name,
        "layout.png"
    );
    // With a file citation that checks out, the image does not make it unverified.
    let mixed = check_finding(r, &parsed.findings[1], src);
    assert_eq!(mixed.verdict, Verdict::Verified, "{mixed:?}");
    assert_eq!(mixed.evidence.len(), 2);
}

#[test]
fn an_image_citation_names_one_of_the_runs_attachments_or_the_finding_is_unverified() {
    let dir = root();
    let r = &dir.0;
    std::fs::create_dir_all(r.join("src")).unwrap();
    std::fs::write(r.join("src/lib.rs"), "pub fn add(a: u32) -> u32 { a }\n").unwrap();
    let text = "Done.\n```findings\n[\
        {\"title\": \"Real image\", \"severity\": \"low\", \"claim\": \"c\",\
         \"evidence\": [{\"path\": \"src/lib.rs\", \"lines\": [1, 1]},\
                        {\"attachment\": \"Layout\", \"region\": \"header\"}]},\
        {\"title\": \"Made-up image\", \"severity\": \"low\", \"claim\": \"c\",\
         \"evidence\": [{\"path\": \"src/lib.rs\", \"lines\": [1, 1]},\
                        {\"attachment\": \"sidebar.png\"}]}\
    ]\n```\n";
    let parsed = parse_answer(text);
    let src = Source {
        step_id: "s".into(),
        agent: "a".into(),
    };
    let names = vec!["layout.png".to_string(), "mock.webp".to_string()];
    // Matched ignoring case and extension, and shown under the attachment's own name.
    let mut real = check_finding(r, &parsed.findings[0], src.clone());
    check_images(&mut real, &names);
    assert_eq!(real.verdict, Verdict::Verified, "{real:?}");
    assert!(real.evidence[1].ok);
    assert_eq!(
        real.evidence[1].attachment.as_ref().unwrap().name,
        "layout.png"
    );
    // An image the run was not given: unverified, and the reason lists what there is.
    let mut made_up = check_finding(r, &parsed.findings[1], src.clone());
    check_images(&mut made_up, &names);
    assert_eq!(made_up.verdict, Verdict::Unverified, "{made_up:?}");
    let why = made_up.reason.as_deref().unwrap();
    assert!(
        why.contains("sidebar.png") && why.contains("layout.png, mock.webp"),
        "{why}"
    );
    assert!(!made_up.evidence[1].ok);
    // A run without attachments says so.
    let mut none = check_finding(r, &parsed.findings[1], src);
    check_images(&mut none, &[]);
    assert!(none.reason.unwrap().contains("the run has no attachments"));
}
