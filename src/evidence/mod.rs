//! Findings: tolerant parsing of what models write, citation checks against the files
//! under the root, and merging of the same issue found by several agents.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
    fn parse(s: &str) -> Severity {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "blocker" => Severity::Critical,
            "high" | "major" | "error" => Severity::High,
            "medium" | "moderate" | "warning" => Severity::Medium,
            "low" | "minor" => Severity::Low,
            _ => Severity::Info,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    pub path: String,
    pub lines: Option<(u32, u32)>,
    pub quote: Option<String>,
    /// The citation gave line numbers that are not line numbers (a negative or
    /// fractional value, text, an end that does not parse): it cannot be verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_lines: Option<String>,
    /// A citation of an image the run was launched with (`{"attachment": name,
    /// "region": "…"}`) instead of a file: shown as such, never checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<ImageCitation>,
}

/// Where in an attached image a finding points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageCitation {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Line numbers past this many bytes into a file are not checked.
pub const CITATION_SCAN_CAP: u64 = 64 * 1024 * 1024;
/// A cited range longer than this is not checked (nobody reads that much at once).
pub const CITATION_MAX_LINES: u32 = 5_000;
/// A cited line longer than this is not checked (minified or binary content).
pub const CITATION_MAX_LINE: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub title: String,
    pub severity: Severity,
    pub claim: String,
    pub evidence: Vec<Citation>,
}

/// What a step's answer held.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedAnswer {
    /// The prose with the findings block removed.
    pub prose: String,
    pub findings: Vec<Finding>,
    /// Why the block could not be read, when there was one.
    pub problem: Option<String>,
    pub had_block: bool,
}

/// Finds the findings block (the last fence tagged `findings`, else the last `json`
/// fence that holds findings) and parses it leniently.
pub fn parse_answer(text: &str) -> ParsedAnswer {
    let mut best: Option<(usize, usize, &str)> = None; // (start, end, body)
    for tag in ["findings", "json", ""] {
        let mut search = 0;
        while let Some(off) = text[search..].find("```") {
            let start = search + off;
            let after = &text[start + 3..];
            let line_end = after.find('\n').unwrap_or(after.len());
            let info = after[..line_end].trim().to_ascii_lowercase();
            let body_start = start + 3 + line_end + 1;
            if body_start > text.len() {
                break;
            }
            let close = text[body_start..].find("```");
            let (body_end, end) = match close {
                Some(c) => (body_start + c, body_start + c + 3),
                None => (text.len(), text.len()),
            };
            let body = &text[body_start..body_end];
            let matches = match tag {
                "findings" => info == "findings",
                "json" => info == "json" && looks_like_findings(body),
                _ => info.is_empty() && looks_like_findings(body),
            };
            if matches {
                best = Some((start, end, body));
            }
            search = end.min(text.len());
            if close.is_none() || search >= text.len() {
                break;
            }
        }
        if best.is_some() {
            break;
        }
    }
    let Some((start, end, body)) = best else {
        return ParsedAnswer {
            prose: text.trim().to_string(),
            ..Default::default()
        };
    };
    let mut prose = format!("{}{}", &text[..start], &text[end..])
        .trim()
        .to_string();
    while prose.contains("\n\n\n") {
        prose = prose.replace("\n\n\n", "\n\n");
    }
    match parse_findings_json(body) {
        Ok(findings) => ParsedAnswer {
            prose,
            findings,
            problem: None,
            had_block: true,
        },
        Err(problem) => ParsedAnswer {
            prose,
            findings: Vec::new(),
            problem: Some(problem),
            had_block: true,
        },
    }
}

fn looks_like_findings(body: &str) -> bool {
    body.contains("\"title\"") || body.contains("\"claim\"")
}

/// Removes commas that directly precede `]` or `}` (outside strings).
fn strip_trailing_commas(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut in_str = false;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c == '"' {
            in_str = true;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some(']') | Some('}')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

pub fn parse_findings_json(body: &str) -> Result<Vec<Finding>, String> {
    let body = body.trim();
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(first) => serde_json::from_str(&strip_trailing_commas(body))
            .map_err(|_| format!("the findings block is not valid JSON ({first})"))?,
    };
    let items = match value {
        Value::Array(a) => a,
        Value::Object(ref o) if o.get("findings").is_some_and(|f| f.is_array()) => {
            o["findings"].as_array().cloned().unwrap_or_default()
        }
        Value::Object(_) => vec![value],
        _ => return Err("the findings block holds neither a list nor an object".into()),
    };
    Ok(items.iter().filter_map(finding_from).collect())
}

fn str_of(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(|x| x.as_str()))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn finding_from(v: &Value) -> Option<Finding> {
    if !v.is_object() {
        return None;
    }
    let title = str_of(v, &["title", "name", "summary"]);
    let claim = str_of(v, &["claim", "description", "detail", "details"]);
    if title.is_none() && claim.is_none() {
        return None;
    }
    let evidence = match v.get("evidence").or_else(|| v.get("citations")) {
        Some(Value::Array(a)) => a.iter().filter_map(citation_from).collect(),
        Some(o @ Value::Object(_)) => citation_from(o).into_iter().collect(),
        _ => citation_from(v).into_iter().collect(),
    };
    Some(Finding {
        title: title
            .clone()
            .unwrap_or_else(|| claim.clone().unwrap_or_default()),
        severity: Severity::parse(&str_of(v, &["severity", "level"]).unwrap_or_default()),
        claim: claim.unwrap_or_default(),
        evidence,
    })
}

fn citation_from(v: &Value) -> Option<Citation> {
    if let Some(name) = str_of(v, &["attachment", "image"]) {
        return Some(Citation {
            path: String::new(),
            lines: None,
            quote: None,
            bad_lines: None,
            attachment: Some(ImageCitation {
                name,
                region: str_of(v, &["region", "area", "where"]),
            }),
        });
    }
    let path = str_of(v, &["path", "file"])?;
    // A line number past u32 is past the end of any file boo checks: it saturates
    // (and fails the range check) instead of wrapping round to a small number.
    let saturate = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let num = |x: &Value| -> Option<u32> {
        x.as_u64().map(saturate).or_else(|| {
            x.as_str()
                .and_then(|s| s.trim().parse::<u64>().ok().map(saturate))
        })
    };
    let raw = v.get("lines").or_else(|| v.get("line"));
    let lines = match raw {
        Some(Value::Array(a)) if !a.is_empty() => {
            let s = num(&a[0]);
            // An end that is there but does not parse is not the start line.
            let e = match a.get(1) {
                Some(end) => num(end),
                None => s,
            };
            s.zip(e)
        }
        Some(Value::String(s)) if s.contains('-') => {
            let (a, b) = s.split_once('-')?;
            let n = |t: &str| t.trim().parse::<u64>().ok().map(saturate);
            n(a).zip(n(b))
        }
        Some(Value::Null) | None => None,
        Some(x) => num(x).map(|n| (n, n)),
    };
    let bad_lines = match (raw, lines) {
        (Some(r), None) if !r.is_null() => {
            Some(format!("the line numbers {r} are not line numbers"))
        }
        _ => None,
    };
    // `path:12` or `path:12-20` written into the path itself.
    let (path, lines) = match (lines, path.rsplit_once(':')) {
        (None, Some((p, l)))
            if l.chars().all(|c| c.is_ascii_digit() || c == '-') && !l.is_empty() =>
        {
            let r = match l.split_once('-') {
                Some((a, b)) => a.parse().ok().zip(b.parse().ok()),
                None => l.parse().ok().map(|n| (n, n)),
            };
            (p.to_string(), r)
        }
        _ => (path, lines),
    };
    Some(Citation {
        path,
        lines,
        quote: str_of(v, &["quote", "snippet", "code"]),
        bad_lines,
        attachment: None,
    })
}

/// The result of checking one citation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedCitation {
    pub path: String,
    pub lines: Option<(u32, u32)>,
    pub quote: Option<String>,
    pub ok: bool,
    pub reason: Option<String>,
    /// A citation of an attached image (`path` empty): never checked against the
    /// image itself; `ok` says the run has an attachment of that name
    /// ([`check_images`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<ImageCitation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    Verified,
    Unverified,
    NoEvidence,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckedFinding {
    pub title: String,
    pub severity: Severity,
    pub claim: String,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub evidence: Vec<CheckedCitation>,
    /// The steps (and their personas) that reported it.
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub step_id: String,
    pub agent: String,
}

fn normalize_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Resolves a cited path to a file inside `root`, refusing anything that escapes it
/// (`..`, absolute paths elsewhere, symlinks pointing out). Returns the relative path
/// for display and the real file.
pub fn resolve_inside(root: &Path, cited: &str) -> Result<(String, PathBuf), String> {
    let canon_root = root
        .canonicalize()
        .map_err(|e| format!("the project root cannot be read: {e}"))?;
    let cited_path = Path::new(cited.trim());
    let rel: PathBuf = if cited_path.is_absolute() {
        match cited_path
            .strip_prefix(&canon_root)
            .or_else(|_| cited_path.strip_prefix(root))
        {
            Ok(r) => r.to_path_buf(),
            Err(_) => return Err(format!("{cited} is an absolute path outside the project")),
        }
    } else {
        cited_path.to_path_buf()
    };
    let mut clean = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => clean.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("{cited} leaves the project (`..`)")),
            _ => return Err(format!("{cited} is not a path inside the project")),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err("the citation has an empty path".into());
    }
    let full = canon_root.join(&clean);
    let real = full
        .canonicalize()
        .map_err(|_| format!("{} does not exist", clean.display()))?;
    if !real.starts_with(&canon_root) {
        return Err(format!(
            "{} is a link that points outside the project",
            clean.display()
        ));
    }
    if !real.is_file() {
        return Err(format!("{} is not a file", clean.display()));
    }
    Ok((clean.display().to_string(), real))
}

/// Why the cited lines could not be read.
enum Short {
    /// The file ended first; it has this many lines.
    EndOfFile(u64),
    /// The lines lie past [`CITATION_SCAN_CAP`] bytes.
    Cap,
    /// This cited line is longer than [`CITATION_MAX_LINE`] bytes.
    LineTooLong(u64),
}

/// Reads lines `start..=end` (1-based) of a file, and nothing past them: the file is
/// scanned in blocks, holding only the bytes of the cited lines (each at most
/// [`CITATION_MAX_LINE`]), up to [`CITATION_SCAN_CAP`] bytes in all.
fn read_lines(path: &Path, start: u32, end: u32) -> std::io::Result<Result<Vec<String>, Short>> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path)?;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file.take(CITATION_SCAN_CAP));
    let (start, end) = (u64::from(start), u64::from(end));
    let mut cited = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut line: u64 = 1;
    let mut scanned: u64 = 0;
    let mut partial = false;
    loop {
        let block = reader.fill_buf()?;
        if block.is_empty() {
            if scanned >= CITATION_SCAN_CAP {
                return Ok(Err(Short::Cap));
            }
            // A last line without a newline is still a line.
            if partial && line == end {
                cited.push(String::from_utf8_lossy(&current).into_owned());
                return Ok(Ok(cited));
            }
            return Ok(Err(Short::EndOfFile(line - 1 + u64::from(partial))));
        }
        let len = block.len();
        let mut at = 0;
        while at < len {
            let newline = block[at..].iter().position(|&b| b == b'\n');
            let stop = newline.map_or(len, |i| at + i);
            if line >= start {
                if current.len() + (stop - at) > CITATION_MAX_LINE {
                    return Ok(Err(Short::LineTooLong(line)));
                }
                current.extend_from_slice(&block[at..stop]);
            }
            partial = newline.is_none();
            if newline.is_none() {
                break;
            }
            if line >= start {
                let text = String::from_utf8_lossy(&current);
                cited.push(text.trim_end_matches('\r').to_string());
                current.clear();
            }
            if line == end {
                return Ok(Ok(cited));
            }
            line += 1;
            at = stop + 1;
        }
        scanned += len as u64;
        reader.consume(len);
    }
}

/// The number of lines of a file, or `None` past [`CITATION_SCAN_CAP`] bytes.
fn count_lines(path: &Path) -> std::io::Result<Option<u64>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?.take(CITATION_SCAN_CAP + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut lines, mut seen, mut last) = (0u64, 0u64, b'\n');
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        if seen > CITATION_SCAN_CAP {
            return Ok(None);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    // A last line without a newline still counts.
    Ok(Some(lines + u64::from(seen > 0 && last != b'\n')))
}

/// Checks one citation against the files under `root`.
pub fn check_citation(root: &Path, c: &Citation) -> CheckedCitation {
    let mut out = CheckedCitation {
        path: c.path.clone(),
        lines: c.lines,
        quote: c.quote.clone(),
        ok: false,
        reason: None,
        attachment: c.attachment.clone(),
    };
    if c.attachment.is_some() {
        return out;
    }
    let (rel, real) = match resolve_inside(root, &c.path) {
        Ok(x) => x,
        Err(e) => {
            out.reason = Some(e);
            return out;
        }
    };
    out.path = rel.clone();
    if let Some(why) = &c.bad_lines {
        out.reason = Some(format!("{why} (citing {rel})"));
        return out;
    }
    let Some((start, end)) = c.lines else {
        out.reason = Some(format!("the citation of {rel} gives no line numbers"));
        return out;
    };
    let (start, end) = (start.min(end), start.max(end));
    if start == 0 {
        let total = match count_lines(&real) {
            Ok(Some(n)) => n.to_string(),
            Ok(None) => format!("more than {} MiB of", CITATION_SCAN_CAP / (1024 * 1024)),
            Err(e) => {
                out.reason = Some(format!("{rel} cannot be read: {e}"));
                return out;
            }
        };
        out.reason = Some(format!(
            "{rel} has {total} lines; the citation points at {start}-{end} (lines are counted from 1)"
        ));
        return out;
    }
    if end - start >= CITATION_MAX_LINES {
        out.reason = Some(format!(
            "the citation of {rel} spans {} lines; at most {CITATION_MAX_LINES} are checked",
            end - start + 1
        ));
        return out;
    }
    let cited = match read_lines(&real, start, end) {
        Ok(Ok(lines)) => lines,
        Ok(Err(Short::EndOfFile(total))) => {
            out.reason = Some(format!(
                "{rel} has {total} lines; the citation points at {start}-{end}"
            ));
            return out;
        }
        Ok(Err(Short::Cap)) => {
            out.reason = Some(format!(
                "{rel} lines {start}-{end} lie more than {} MiB into the file; they were not checked",
                CITATION_SCAN_CAP / (1024 * 1024)
            ));
            return out;
        }
        Ok(Err(Short::LineTooLong(n))) => {
            out.reason = Some(format!(
                "{rel} line {n} is longer than {} KiB; it was not checked",
                CITATION_MAX_LINE / 1024
            ));
            return out;
        }
        Err(e) => {
            out.reason = Some(format!("{rel} cannot be read: {e}"));
            return out;
        }
    };
    out.lines = Some((start, end));
    if let Some(q) = c.quote.as_deref().filter(|q| !q.trim().is_empty()) {
        let hay = normalize_ws(&cited.join("\n"));
        let needle = normalize_ws(q);
        if !hay.contains(&needle) {
            out.reason = Some(format!(
                "the quote does not appear in {rel} lines {start}-{end}"
            ));
            return out;
        }
    }
    out.ok = true;
    out
}

/// Checks every citation of a finding and gives its verdict.
pub fn check_finding(root: &Path, f: &Finding, source: Source) -> CheckedFinding {
    let evidence: Vec<CheckedCitation> =
        f.evidence.iter().map(|c| check_citation(root, c)).collect();
    // Images are shown as cited, never checked: the verdict comes from the files.
    let files: Vec<&CheckedCitation> = evidence.iter().filter(|e| e.attachment.is_none()).collect();
    let (verdict, reason) = if evidence.is_empty() {
        (
            Verdict::NoEvidence,
            Some("no citation was given".to_string()),
        )
    } else if files.is_empty() {
        let names: Vec<&str> = evidence
            .iter()
            .filter_map(|e| e.attachment.as_ref().map(|a| a.name.as_str()))
            .collect();
        (
            Verdict::Unverified,
            Some(format!(
                "it cites only the attached image(s) {}, which boo shows but does not check",
                names.join(", ")
            )),
        )
    } else if let Some(bad) = files.iter().find(|e| !e.ok) {
        (Verdict::Unverified, bad.reason.clone())
    } else {
        (Verdict::Verified, None)
    };
    CheckedFinding {
        title: f.title.clone(),
        severity: f.severity,
        claim: f.claim.clone(),
        verdict,
        reason,
        evidence,
        sources: vec![source],
    }
}

/// Holds a finding's image citations to the run's attachments: a citation of an image
/// the run was not given (a name the agent made up or misspelled) fails like a citation
/// of a missing file and makes the finding unverified; one of a real attachment is marked
/// found (`ok`) and still never makes a finding verified on its own. Names match exactly,
/// or ignoring case, or without their extension.
pub fn check_images(f: &mut CheckedFinding, names: &[String]) {
    let key = |n: &str| {
        let n = n.trim().to_lowercase();
        match n.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem.to_string(),
            _ => n,
        }
    };
    let mut missing = None;
    for e in &mut f.evidence {
        let Some(img) = &e.attachment else { continue };
        let found = names
            .iter()
            .find(|n| **n == img.name || key(n) == key(&img.name));
        match found {
            Some(n) => {
                e.ok = true;
                e.reason = None;
                if *n != img.name {
                    e.attachment = Some(ImageCitation {
                        name: n.clone(),
                        region: img.region.clone(),
                    });
                }
            }
            None => {
                let why = if names.is_empty() {
                    format!(
                        "it cites the image `{}`, but the run has no attachments",
                        img.name
                    )
                } else {
                    format!(
                        "it cites the image `{}`, which is not one of the run's attachments ({})",
                        img.name,
                        names.join(", ")
                    )
                };
                e.ok = false;
                e.reason = Some(why.clone());
                missing.get_or_insert(why);
            }
        }
    }
    if let Some(why) = missing {
        f.verdict = Verdict::Unverified;
        f.reason = Some(why);
    }
}

fn title_key(t: &str) -> String {
    t.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn overlaps(a: &CheckedCitation, b: &CheckedCitation) -> bool {
    a.ok && b.ok
        && a.path == b.path
        && match (a.lines, b.lines) {
            (Some((s1, e1)), Some((s2, e2))) => s1 <= e2 && s2 <= e1,
            _ => false,
        }
}

fn similar_titles(a: &str, b: &str) -> bool {
    let words = |t: &str| -> std::collections::BTreeSet<String> {
        title_key(t)
            .split(' ')
            .filter(|w| w.len() >= 3)
            .map(|w| w.trim_end_matches('s').to_string())
            .collect()
    };
    let (wa, wb) = (words(a), words(b));
    if wa.is_empty() || wb.is_empty() {
        return false;
    }
    let common = wa.intersection(&wb).count();
    common * 2 >= wa.len().max(wb.len())
}

/// The same issue found by several agents becomes one finding with all its sources:
/// same verdict and either the same title, or similar titles with overlapping verified
/// citations.
pub fn merge(findings: Vec<CheckedFinding>) -> Vec<CheckedFinding> {
    let mut out: Vec<CheckedFinding> = Vec::new();
    for f in findings {
        let key = title_key(&f.title);
        let same = out.iter_mut().find(|g| {
            g.verdict == f.verdict
                && (title_key(&g.title) == key
                    || (f.verdict == Verdict::Verified
                        && similar_titles(&g.title, &f.title)
                        && g.evidence
                            .iter()
                            .any(|a| f.evidence.iter().any(|b| overlaps(a, b)))))
        });
        match same {
            Some(g) => {
                g.severity = g.severity.min(f.severity);
                for s in f.sources {
                    if !g.sources.contains(&s) {
                        g.sources.push(s);
                    }
                }
                for e in f.evidence {
                    if !g
                        .evidence
                        .iter()
                        .any(|x| x.path == e.path && x.lines == e.lines)
                    {
                        g.evidence.push(e);
                    }
                }
                if g.claim.len() < f.claim.len() {
                    g.claim = f.claim;
                }
            }
            None => out.push(f),
        }
    }
    out
}

#[cfg(test)]
mod tests;
