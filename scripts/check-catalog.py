#!/usr/bin/env python3
"""Check boo's flow catalog: personas/*.md and flows/*.toml (and the waves table in docs/catalog.md).

Enforces the rules of the catalog loader (names, kinds, functions, bands, signals, dependencies, cycles, a `when`
with the signals step upstream within its own band, one agent step per band) plus the catalog's own conventions (the
persona brief format, the eleven required flows, roster sizes per band, the answer step alone in the last wave,
every specialist read by the answer, every persona used).

A step may depend on a step of a larger band: such a dependency is optional and is dropped in the bands that do not
run that step, both when the loader plans a run and when this script computes the waves.

Prints one line per problem ("<file>: <field>: <problem>"), then the planned waves of every flow and band, then
"N passed, M failed" (one check per file). Exit status 1 when any check failed.

Usage:
  scripts/check-catalog.py [--root DIR]      check the catalog under DIR (default: the repository root)
  scripts/check-catalog.py --markdown        print only the generated tables (waves, persona usage) for docs/catalog.md
  scripts/check-catalog.py --write-doc       replace the generated tables between the markers in docs/catalog.md
  scripts/check-catalog.py --self-test       break a copy of the catalog in many ways; every break must be caught

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PERSONAS = [
    "adversarial-security-analyst", "adversarial-validator", "behavioral-analyst", "codebase-explorer",
    "concurrency-analyst", "content-auditor", "data-engineer", "devops-engineer", "edge-case-explorer",
    "evidence-based-investigator", "gap-analyzer", "information-architect", "junior-developer", "on-call-engineer",
    "plan-synthesizer", "project-scanner", "readability-editor", "risk-analyst", "software-architect",
    "structural-analyst", "system-architect", "test-engineer", "user-experience-designer",
]
PERSONA_KEYS = ["name", "title", "lens"]
PERSONA_SECTIONS = [
    "Posture", "What to look for", "What to ignore", "How to cite", "Output contract", "Example of a good finding",
]
PERSONA_MIN_WORDS, PERSONA_MAX_WORDS = 250, 600
READ_TOOLS = ["read_file", "grep_search", "glob"]

CATEGORIES = ["analysis", "discovery", "planning", "authoring", "review"]
BANDS = ["small", "medium", "large"]
BAND_RANK = {b: i for i, b in enumerate(BANDS)}
KINDS = ["code", "agent"]
# These three lists mirror the Rust source (codesteps::CodeFn, codesteps::Signal, codesteps::ALLOWED_GIT); the Rust
# test `the_catalog_checker_knows_the_same_names` fails when they differ.
FUNCTIONS = ["git_diff", "signals", "run_command", "verify_evidence", "merge_findings", "render_report"]
SIGNALS = ["concurrency", "auth", "schemas", "infrastructure", "frontend", "api", "tests", "docs", "diff"]
GIT_SUBCOMMANDS = ["log", "show", "blame", "shortlog", "ls-files", "status", "diff", "rev-parse", "branch", "tag"]
SEVERITIES = ["critical", "high", "medium", "low", "info"]
NAME_RE = re.compile(r"^[a-z0-9-]+$")

REQUIRED_FLOWS = {
    "code-review": "review", "security-review": "review",
    "architectural-analysis": "analysis", "code-overview": "analysis",
    "investigate": "discovery", "project-discovery": "discovery",
    "plan-a-feature": "planning", "test-planning": "planning", "gap-analysis": "planning",
    "adr-draft": "authoring", "runbook-draft": "authoring",
}
FLOW_KEYS = {"name", "title", "category", "description", "answer", "steps"}
STEP_KEYS = {"id", "kind", "function", "persona", "label", "band", "after", "when", "prompt", "args", "attachments", "spawn"}
# Roster sizes, counted in agent steps relative to the small band (Han's sizing: required roles plus specialists).
MEDIUM_EXTRA = (2, 3)
LARGE_EXTRA = (4, 6)
# The small band must cover correctness and security.
SECURITY_PERSONAS = {"adversarial-security-analyst"}
CORRECTNESS_PERSONAS = {
    "behavioral-analyst", "evidence-based-investigator", "edge-case-explorer", "test-engineer",
    "adversarial-validator", "gap-analyzer", "structural-analyst", "codebase-explorer", "on-call-engineer",
    "software-architect",
}
PROMPT_MIN_WORDS = 40
# Prompts must be byte-stable: no template variables, no dates, and not the sections boo appends itself.
PROMPT_FORBIDDEN = [
    (re.compile(r"\{\{|\}\}|\{[a-z_]+\}|\$\{|\$[A-Z_]{3,}"), "looks like a template variable"),
    (re.compile(r"\b(19|20)\d\d-\d\d-\d\d\b"), "contains a date"),
    (re.compile(r"^##\s*(Question|Earlier steps)\b", re.M), "contains a section boo appends itself"),
]
WAVES_BEGIN = "<!-- generated:begin (scripts/check-catalog.py --markdown; do not edit by hand) -->"
WAVES_END = "<!-- generated:end -->"


@dataclass
class Report:
    """Problems per file; every file is one check."""
    problems: dict[str, list[str]] = field(default_factory=dict)

    def touch(self, file: str) -> None:
        self.problems.setdefault(file, [])

    def add(self, file: str, where: str, what: str) -> None:
        self.problems.setdefault(file, []).append(f"{file}: {where}: {what}")


# ---------------------------------------------------------------- personas

def split_front_matter(text: str) -> tuple[list[str] | None, str]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return None, text
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return lines[1:i], "\n".join(lines[i + 1:])
    return None, text


def check_findings_example(block: str, rep: Report, file: str) -> None:
    where = "## Example of a good finding"
    try:
        data = json.loads(block)
    except json.JSONDecodeError as e:
        rep.add(file, where, f"the findings block is not valid JSON ({e.msg} at line {e.lineno})")
        return
    if not isinstance(data, list) or not data:
        rep.add(file, where, "the findings block must be a non-empty JSON array")
        return
    for n, item in enumerate(data):
        at = f"{where}: finding {n + 1}"
        if not isinstance(item, dict):
            rep.add(file, at, "is not an object")
            continue
        extra = set(item) - {"title", "severity", "claim", "evidence"}
        if extra:
            rep.add(file, at, f"unknown keys {sorted(extra)}")
        for key in ("title", "claim"):
            if not isinstance(item.get(key), str) or not item.get(key, "").strip():
                rep.add(file, f"{at}: {key}", "missing or empty")
        if item.get("severity") not in SEVERITIES:
            rep.add(file, f"{at}: severity", f"{item.get('severity')!r} is not one of {SEVERITIES}")
        ev = item.get("evidence")
        if not isinstance(ev, list) or not ev:
            rep.add(file, f"{at}: evidence", "must be a non-empty list")
            continue
        for m, cite in enumerate(ev):
            cat = f"{at}: evidence {m + 1}"
            if not isinstance(cite, dict):
                rep.add(file, cat, "is not an object")
                continue
            path = cite.get("path")
            if not isinstance(path, str) or not path or path.startswith("/") or ".." in Path(path).parts:
                rep.add(file, f"{cat}: path", f"{path!r} must be a relative path inside the project")
            lines = cite.get("lines")
            if (not isinstance(lines, list) or len(lines) != 2 or not all(isinstance(x, int) for x in lines)
                    or lines[0] < 1 or lines[1] < lines[0]):
                rep.add(file, f"{cat}: lines", f"{lines!r} must be [start, end], 1-based, start <= end")
            if not isinstance(cite.get("quote"), str) or not cite["quote"].strip():
                rep.add(file, f"{cat}: quote", "missing or empty")


def check_persona(path: Path, rep: Report) -> None:
    file = f"personas/{path.name}"
    rep.touch(file)
    stem = path.stem
    if stem not in PERSONAS:
        rep.add(file, "file name", f"{stem!r} is not one of the 23 personas")
    text = path.read_text(encoding="utf-8")
    fm, body = split_front_matter(text)
    if fm is None:
        rep.add(file, "front matter", "must start with a '---' line and end with a '---' line")
        return
    seen: dict[str, str] = {}
    for n, line in enumerate(fm, start=2):
        if not line.strip():
            continue
        m = re.match(r"^([a-z_]+):[ \t]*(.*)$", line)
        if not m:
            rep.add(file, f"front matter line {n}", f"{line!r} is not 'key: value'")
            continue
        key, value = m.group(1), m.group(2).strip()
        if key in seen:
            rep.add(file, f"front matter: {key}", "duplicate key")
        if key not in PERSONA_KEYS:
            rep.add(file, f"front matter: {key}", f"unknown key (allowed: {', '.join(PERSONA_KEYS)})")
        if not value:
            rep.add(file, f"front matter: {key}", "empty value")
        if value[:1] in ("'", '"', "[", "{", "|", ">"):
            rep.add(file, f"front matter: {key}", "plain text only (no quotes or nesting)")
        seen[key] = value
    for key in PERSONA_KEYS:
        if key not in seen:
            rep.add(file, f"front matter: {key}", "missing")
    if "name" in seen and seen["name"] != stem:
        rep.add(file, "front matter: name", f"{seen['name']!r} must equal the file stem {stem!r}")

    headings = re.findall(r"^## (.+?)\s*$", body, flags=re.M)
    if headings != PERSONA_SECTIONS:
        rep.add(file, "sections", f"expected exactly {PERSONA_SECTIONS} in this order, found {headings}")
    if re.search(r"^#(?!#)", body, flags=re.M):
        rep.add(file, "sections", "no level-1 heading in the brief (the title is in the front matter)")
    sections: dict[str, str] = {}
    parts = re.split(r"^## (.+?)\s*$", body, flags=re.M)
    for i in range(1, len(parts) - 1, 2):
        sections[parts[i]] = parts[i + 1]
    for name in PERSONA_SECTIONS:
        if name in sections and len(sections[name].split()) < 15:
            rep.add(file, f"## {name}", "too short to guide the model")
    words = len(body.split())
    if not PERSONA_MIN_WORDS <= words <= PERSONA_MAX_WORDS:
        rep.add(file, "brief", f"{words} words; must be {PERSONA_MIN_WORDS}-{PERSONA_MAX_WORDS}")
    for tool in READ_TOOLS:
        if f"`{tool}`" not in body:
            rep.add(file, "brief", f"must name the read-only tool `{tool}`")
    if "never run" not in body.lower():
        rep.add(file, "## Posture", "must say the persona never runs, writes or changes anything")
    cite = sections.get("How to cite", "")
    for word in ("`path`", "`lines`", "`quote`", "1-based", "inclusive", "did not read"):
        if word not in cite:
            rep.add(file, "## How to cite", f"must explain {word}")
    contract = sections.get("Output contract", "")
    for word in ("prose first", "`findings`", "`[]`", "`severity`", "`evidence`"):
        if word not in contract:
            rep.add(file, "## Output contract", f"must mention {word}")
    example = sections.get("Example of a good finding", "")
    m = re.search(r"^```findings\s*\n(.*?)^```\s*$", example, flags=re.M | re.S)
    if not m:
        rep.add(file, "## Example of a good finding", "must hold one fenced block tagged `findings`")
    else:
        check_findings_example(m.group(1), rep, file)


# ---------------------------------------------------------------- flows

class WhenError(Exception):
    pass


def parse_when(expr: str) -> set[str]:
    """Parse a signal condition (names, !, &&, ||, parentheses); return the names used."""
    tokens = re.findall(r"\s*(\|\||&&|!|\(|\)|[A-Za-z_][A-Za-z0-9_-]*|\S)", expr)
    if "".join(tokens).replace(" ", "") != re.sub(r"\s+", "", expr):
        raise WhenError("cannot tokenize")
    pos = 0
    names: set[str] = set()

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        return tok

    def p_or() -> None:
        p_and()
        while peek() == "||":
            take()
            p_and()

    def p_and() -> None:
        p_unary()
        while peek() == "&&":
            take()
            p_unary()

    def p_unary() -> None:
        tok = peek()
        if tok is None:
            raise WhenError("ends too early")
        if tok == "!":
            take()
            p_unary()
        elif tok == "(":
            take()
            p_or()
            if peek() != ")":
                raise WhenError("missing ')'")
            take()
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", tok):
            names.add(take())
        else:
            raise WhenError(f"unexpected {tok!r}")

    if not tokens:
        raise WhenError("is empty")
    p_or()
    if pos != len(tokens):
        raise WhenError(f"unexpected {tokens[pos]!r}")
    return names


@dataclass
class Flow:
    name: str
    title: str
    category: str
    answer: str | None
    steps: list[dict]

    def band_steps(self, band: str) -> list[dict]:
        return [s for s in self.steps if BAND_RANK.get(s.get("band", "small"), 99) <= BAND_RANK[band]]

    def band_after(self, step: dict, band: str) -> list[str]:
        """The dependencies `step` keeps when the flow runs in `band`, as the engine plans them: a dependency on a
        step of a larger band is optional and dropped where that step does not run; any other dependency is kept
        (an unknown one is an error reported elsewhere)."""
        bands = {s.get("id"): s.get("band", "small") for s in self.steps}
        return [d for d in step.get("after", [])
                if d not in bands or BAND_RANK.get(bands[d], 99) <= BAND_RANK[band]]

    def waves(self, band: str) -> list[list[dict]]:
        """Dependency levels of the steps that run in `band` (assumes a valid, acyclic flow)."""
        steps = self.band_steps(band)
        by_id = {s["id"]: s for s in steps}
        level: dict[str, int] = {}

        def lv(sid: str) -> int:
            if sid not in level:
                deps = self.band_after(by_id[sid], band)
                level[sid] = 1 + max((lv(d) for d in deps), default=-1)
            return level[sid]

        out: list[list[dict]] = []
        for s in steps:
            n = lv(s["id"])
            while len(out) <= n:
                out.append([])
            out[n].append(s)
        return out


def load_flow(path: Path, rep: Report) -> Flow | None:
    file = f"flows/{path.name}"
    rep.touch(file)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        rep.add(file, "toml", f"does not parse: {e}")
        return None
    stem = path.stem
    for key in sorted(set(data) - FLOW_KEYS):
        rep.add(file, key, f"unknown field (allowed: {', '.join(sorted(FLOW_KEYS))})")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        rep.add(file, "name", f"{name!r} must match [a-z0-9-]+")
    elif name != stem:
        rep.add(file, "name", f"{name!r} must equal the file stem {stem!r}")
    for key in ("title", "description"):
        if not isinstance(data.get(key), str) or not data.get(key, "").strip():
            rep.add(file, key, "missing or empty")
    desc = data.get("description", "")
    if isinstance(desc, str) and len(re.findall(r"[.!?](\s|$)", desc.strip())) > 2:
        rep.add(file, "description", "one or two sentences")
    if data.get("category") not in CATEGORIES:
        rep.add(file, "category", f"{data.get('category')!r} is not one of {CATEGORIES}")
    answer = data.get("answer")
    if answer is not None and not isinstance(answer, str):
        rep.add(file, "answer", "must be a step id")
        answer = None
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
        rep.add(file, "steps", "must be a non-empty array of tables ([[steps]])")
        return None
    return Flow(name=stem, title=str(data.get("title", "")), category=str(data.get("category", "")),
                answer=answer, steps=steps)


def check_flow(flow: Flow, persona_names: set[str], rep: Report) -> bool:
    """Check one flow; return True when its structure is sound enough to plan waves."""
    file = f"flows/{flow.name}.toml"
    before = len(rep.problems.get(file, []))
    ids: dict[str, dict] = {}
    for n, s in enumerate(flow.steps, start=1):
        sid = s.get("id")
        at = f"steps[{n}]" + (f" ({sid})" if isinstance(sid, str) else "")
        for key in sorted(set(s) - STEP_KEYS):
            rep.add(file, f"{at}.{key}", f"unknown field (allowed: {', '.join(sorted(STEP_KEYS))})")
        if not isinstance(sid, str) or not NAME_RE.match(sid):
            rep.add(file, f"{at}.id", f"{sid!r} must match [a-z0-9-]+")
            continue
        if sid in ids:
            rep.add(file, f"{at}.id", f"duplicate step id {sid!r}")
        ids[sid] = s
        kind = s.get("kind")
        if kind not in KINDS:
            rep.add(file, f"{at}.kind", f"{kind!r} is not one of {KINDS}")
        band = s.get("band", "small")
        if band not in BANDS:
            rep.add(file, f"{at}.band", f"{band!r} is not one of {BANDS}")
        label = s.get("label")
        if not isinstance(label, str) or not label.strip():
            rep.add(file, f"{at}.label", "missing or empty")
        elif len(label) > 60:
            rep.add(file, f"{at}.label", "keep it short (at most 60 characters)")
        after = s.get("after", [])
        if not isinstance(after, list) or not all(isinstance(d, str) for d in after):
            rep.add(file, f"{at}.after", "must be an array of step ids")
            s["after"] = []
        elif len(set(after)) != len(after):
            rep.add(file, f"{at}.after", "lists a step twice")
        if kind == "code":
            fn = s.get("function")
            if fn not in FUNCTIONS:
                rep.add(file, f"{at}.function", f"{fn!r} is not one of {FUNCTIONS}")
            for key in ("persona", "prompt", "attachments", "spawn"):
                if key in s:
                    rep.add(file, f"{at}.{key}", "only agent steps have this field")
            if fn == "run_command":
                args = s.get("args")
                argv = args.get("argv") if isinstance(args, dict) else None
                if not isinstance(args, dict) or set(args) != {"argv"}:
                    rep.add(file, f"{at}.args", "run_command needs args = { argv = [...] } and nothing else")
                if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
                    rep.add(file, f"{at}.args.argv", "must be a non-empty array of strings")
                elif argv[0] != "git" or len(argv) < 2 or argv[1] not in GIT_SUBCOMMANDS:
                    rep.add(file, f"{at}.args.argv", f"{argv[:2]} is not allowed (git {', '.join(GIT_SUBCOMMANDS)})")
            elif "args" in s:
                rep.add(file, f"{at}.args", "only run_command takes args")
        elif kind == "agent":
            persona = s.get("persona")
            if persona not in persona_names or persona not in PERSONAS:
                rep.add(file, f"{at}.persona", f"unknown persona {persona!r}")
            for key in ("function", "args"):
                if key in s:
                    rep.add(file, f"{at}.{key}", "only code steps have this field")
            for key in ("attachments", "spawn"):
                if key in s and not isinstance(s[key], bool):
                    rep.add(file, f"{at}.{key}", "must be true or false")
            prompt = s.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                rep.add(file, f"{at}.prompt", "agent steps need a prompt")
            else:
                if len(prompt.split()) < PROMPT_MIN_WORDS:
                    rep.add(file, f"{at}.prompt", f"only {len(prompt.split())} words; write a real task")
                for rx, why in PROMPT_FORBIDDEN:
                    if rx.search(prompt):
                        rep.add(file, f"{at}.prompt", f"{why} (prompts must be byte-stable)")
    # dependencies: known, not self. A dependency on a step of a larger band is allowed: it is optional, and
    # dropped in the bands that do not run that step (see Flow.band_after).
    for sid, s in ids.items():
        for dep in s.get("after", []):
            if dep == sid:
                rep.add(file, f"{sid}.after", "a step cannot depend on itself")
            elif dep not in ids:
                rep.add(file, f"{sid}.after", f"unknown step {dep!r}")
    # cycles (depth-first search, colours)
    colour: dict[str, int] = {}
    cyclic = False

    def visit(sid: str, trail: list[str]) -> None:
        nonlocal cyclic
        colour[sid] = 1
        for dep in ids[sid].get("after", []):
            if dep not in ids or dep == sid:
                continue
            if colour.get(dep) == 1:
                cyc = trail[trail.index(dep):] + [dep] if dep in trail else [sid, dep]
                rep.add(file, f"{sid}.after", f"dependency cycle: {' -> '.join(cyc)}")
                cyclic = True
            elif dep not in colour:
                visit(dep, trail + [dep])
        colour[sid] = 2

    for sid in ids:
        if sid not in colour:
            visit(sid, [sid])
    if cyclic:
        return False

    def ancestors(sid: str, band: str) -> set[str]:
        """Every step `sid` (transitively) depends on when the flow runs in `band`."""
        seen: set[str] = set()
        stack = flow.band_after(ids[sid], band)
        while stack:
            d = stack.pop()
            if d in ids and d not in seen:
                seen.add(d)
                stack.extend(flow.band_after(ids[d], band))
        return seen

    def conditional(sid: str) -> bool:
        return "when" in ids[sid]

    # when: syntax, known signals, needs the signals step upstream within the step's own band
    for sid, s in ids.items():
        if "when" not in s:
            continue
        expr = s["when"]
        if not isinstance(expr, str):
            rep.add(file, f"{sid}.when", "must be a string")
            continue
        try:
            names = parse_when(expr)
        except WhenError as e:
            rep.add(file, f"{sid}.when", f"{expr!r} {e}")
            continue
        for nm in sorted(names - set(SIGNALS)):
            rep.add(file, f"{sid}.when", f"unknown signal {nm!r} (known: {', '.join(SIGNALS)})")
        own = s.get("band", "small") if s.get("band", "small") in BANDS else "large"
        if not any(ids[a].get("kind") == "code" and ids[a].get("function") == "signals" for a in ancestors(sid, own)):
            rep.add(file, f"{sid}.when", f"needs the `signals` code step among its (transitive) dependencies "
                    f"within its own band {own!r} (dependencies on larger bands are dropped there)")
    # a step may read conditional or larger-band steps, but never only those: in every band it runs, at least one
    # of its dependencies runs there unconditionally, so it never works from nothing but skipped steps
    for sid, s in ids.items():
        if not s.get("after") or s.get("band", "small") not in BANDS:
            continue
        for band in BANDS[BAND_RANK[s.get("band", "small")]:]:
            kept = [d for d in flow.band_after(s, band) if d in ids]
            if kept and all(conditional(d) for d in kept):
                rep.add(file, f"{sid}.after", f"in band {band!r} depends only on conditional steps "
                        f"{kept}; add an unconditional dependency so a skip never leaves it with no input")
                break
    # code steps that read agent output need an agent input in every band they run in
    for sid, s in ids.items():
        if s.get("function") in ("verify_evidence", "merge_findings"):
            own = s.get("band", "small") if s.get("band", "small") in BANDS else "large"
            if not any(ids.get(d, {}).get("kind") == "agent" and "when" not in ids[d]
                       for d in flow.band_after(s, own)):
                rep.add(file, f"{sid}.after", f"{s['function']} needs at least one agent step to read: an "
                        f"unconditional agent step that runs in its own band {own!r}")
    # answer: an unconditional small agent step, alone in the last wave of every band
    if flow.answer is None:
        rep.add(file, "answer", "name the synthesizing step whose prose leads the report")
    elif flow.answer not in ids:
        rep.add(file, "answer", f"unknown step {flow.answer!r}")
    else:
        a = ids[flow.answer]
        if a.get("kind") != "agent":
            rep.add(file, "answer", f"{flow.answer!r} must be an agent step")
        if a.get("band", "small") != "small":
            rep.add(file, "answer", f"{flow.answer!r} must run in every band (band = \"small\")")
        if "when" in a:
            rep.add(file, "answer", f"{flow.answer!r} must not be conditional")
    # every band needs an agent step (needs no sound structure, so it is checked before the early return)
    counts = {}
    for band in BANDS:
        counts[band] = sum(1 for s in flow.band_steps(band) if s.get("kind") == "agent")
        if not counts[band]:
            rep.add(file, f"band {band}", "has no agent step")
    if len(rep.problems.get(file, [])) > before:
        return False
    # per band: waves, answer alone in the last wave, roster coverage and sizes
    for band in BANDS:
        waves = flow.waves(band)
        if len(waves) < 2:
            rep.add(file, f"band {band}", "needs at least two waves")
        last = [s["id"] for s in waves[-1]]
        if flow.answer and last != [flow.answer]:
            rep.add(file, f"band {band}", f"the last wave must be the answer step {flow.answer!r} alone, not {last}")
    # every specialist's output reaches the answer in the bands where the specialist runs: the answer, or an agent
    # step upstream of it (a validator, a risk pass, a draft the answer edits), lists it in `after`, so its prose is
    # read by a writer and not only its findings by a code step. Every `after` is followed (the large band keeps
    # them all); a path through a code step such as verify_evidence does not count.
    if flow.answer in ids:
        writers, stack = {flow.answer}, [flow.answer]
        while stack:
            for d in ids[stack.pop()].get("after", []):
                if d in ids and ids[d].get("kind") == "agent" and d not in writers:
                    writers.add(d)
                    stack.append(d)
        for sid, s in ids.items():
            if s.get("kind") == "agent" and sid not in writers:
                rep.add(file, f"{flow.answer}.after", f"the agent step {sid!r} never reaches the answer; list it in "
                        "the answer's `after` (or in an agent step the answer reads) so its output informs the answer")
    small = [s for s in flow.band_steps("small") if s.get("kind") == "agent" and "when" not in s]
    small_personas = {s.get("persona") for s in small}
    if not small_personas & SECURITY_PERSONAS:
        rep.add(file, "band small", f"must cover security unconditionally ({', '.join(sorted(SECURITY_PERSONAS))})")
    if not small_personas & CORRECTNESS_PERSONAS:
        rep.add(file, "band small", "must cover correctness unconditionally (a correctness persona)")
    for band, (lo, hi) in (("medium", MEDIUM_EXTRA), ("large", LARGE_EXTRA)):
        extra = counts.get(band, 0) - counts.get("small", 0)
        if not lo <= extra <= hi:
            rep.add(file, f"band {band}", f"adds {extra} agent steps to small; must add {lo}-{hi}")
        # a band that adds only signal-gated specialists equals the band below on a project without those signals
        if not any(s.get("kind") == "agent" and s.get("band") == band and "when" not in s for s in flow.steps):
            rep.add(file, f"band {band}", "adds no unconditional specialist; without its signals it would equal "
                    "the band below")
    return len(rep.problems.get(file, [])) == before


# ---------------------------------------------------------------- catalog

def describe_step(s: dict) -> str:
    if s.get("kind") == "agent":
        text = f"{s['id']} ({s.get('persona')})"
    else:
        text = f"{s['id']} [{s.get('function')}]"
    if "when" in s:
        text += f" if {s['when']}"
    return text


def waves_markdown(flows: list[Flow]) -> str:
    """One small table per flow: a row per band, a column per wave."""
    out = []
    for flow in flows:
        per_band = {band: flow.waves(band) for band in BANDS}
        width = max(len(w) for w in per_band.values())
        out.append(f"**`{flow.name}`** ({flow.category}; answer: `{flow.answer}`)")
        out.append("")
        out.append("| band | agents | " + " | ".join(f"wave {i + 1}" for i in range(width)) + " |")
        out.append("| --- | --- | " + " | ".join("---" for _ in range(width)) + " |")
        for band, waves in per_band.items():
            agents = sum(1 for s in flow.band_steps(band) if s.get("kind") == "agent")
            cells = ["<br>".join(describe_step(s) for s in w) for w in waves]
            cells += [""] * (width - len(cells))
            out.append(f"| {band} | {agents} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def persona_front_matter(path: Path) -> dict[str, str]:
    fm, _ = split_front_matter(path.read_text(encoding="utf-8"))
    out = {}
    for line in fm or []:
        m = re.match(r"^([a-z_]+):[ \t]*(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def generated_markdown(root: Path, flows: list[Flow]) -> str:
    """The generated part of docs/catalog.md: the waves of every flow and band, then who uses which persona."""
    out = ["### Waves per flow and band", "",
           "Steps in `[brackets]` are code steps; `if …` marks a specialist that runs only when the signal holds "
           "(otherwise it is skipped). Agent counts include conditional steps.", ""]
    out.append(waves_markdown(flows))
    out += ["### Persona usage", "", "| persona | title | lens | used by (step ids) |", "| --- | --- | --- | --- |"]
    for name in PERSONAS:
        path = root / "personas" / f"{name}.md"
        fm = persona_front_matter(path) if path.is_file() else {}
        uses = []
        for flow in flows:
            ids = [s["id"] for s in flow.steps if s.get("persona") == name]
            if ids:
                uses.append(f"{flow.name} ({', '.join(ids)})")
        out.append(f"| `{name}` | {fm.get('title', '')} | {fm.get('lens', '').replace('|', '/')} | {'; '.join(uses)} |")
    return "\n".join(out) + "\n"


def waves_text(flows: list[Flow]) -> str:
    out = []
    for flow in flows:
        out.append(f"{flow.name} ({flow.category})")
        for band in BANDS:
            waves = flow.waves(band)
            out.append(f"  {band}:")
            for i, w in enumerate(waves):
                out.append(f"    wave {i + 1}: " + ", ".join(describe_step(s) for s in w))
    return "\n".join(out)


def check_catalog(root: Path) -> tuple[Report, list[Flow]]:
    rep = Report()
    pdir, fdir = root / "personas", root / "flows"
    persona_files = sorted(pdir.glob("*.md")) if pdir.is_dir() else []
    for p in persona_files:
        check_persona(p, rep)
    present = {p.stem for p in persona_files}
    for name in PERSONAS:
        if name not in present:
            rep.add(f"personas/{name}.md", "file", "missing")
    flows: list[Flow] = []
    used: set[str] = set()
    for path in sorted(fdir.glob("*.toml")) if fdir.is_dir() else []:
        flow = load_flow(path, rep)
        if flow is None:
            continue
        used |= {s.get("persona") for s in flow.steps if isinstance(s, dict) and s.get("kind") == "agent"}
        if check_flow(flow, present, rep):
            flows.append(flow)
    names = {p.stem for p in fdir.glob("*.toml")} if fdir.is_dir() else set()
    for name, category in REQUIRED_FLOWS.items():
        if name not in names:
            rep.add(f"flows/{name}.toml", "file", f"missing (a required {category} flow)")
    for flow in flows:
        want = REQUIRED_FLOWS.get(flow.name)
        if want and flow.category != want:
            rep.add(f"flows/{flow.name}.toml", "category", f"{flow.category!r}; this flow belongs to {want!r}")
    for name in sorted(present & set(PERSONAS) - used):
        rep.add(f"personas/{name}.md", "usage", "no flow uses this persona")
    # the waves table in docs/catalog.md must match the flows
    doc = root / "docs" / "catalog.md"
    rep.touch("docs/catalog.md")
    if not doc.is_file():
        rep.add("docs/catalog.md", "file", "missing")
    else:
        text = doc.read_text(encoding="utf-8")
        if WAVES_BEGIN not in text or WAVES_END not in text:
            rep.add("docs/catalog.md", "generated tables", f"missing the markers {WAVES_BEGIN!r} … {WAVES_END!r}")
        else:
            current = text.split(WAVES_BEGIN, 1)[1].split(WAVES_END, 1)[0].strip()
            if current != generated_markdown(root, flows).strip():
                rep.add("docs/catalog.md", "generated tables",
                        "out of date; regenerate with scripts/check-catalog.py --markdown")
        prose = text.split(WAVES_BEGIN, 1)[0] + text.split(WAVES_END, 1)[-1]
        for name in sorted(names):
            if not re.search(rf"^##+ `{re.escape(name)}`", prose, flags=re.M):
                rep.add("docs/catalog.md", "flows", f"has no section headed `{name}` describing the flow")
    return rep, flows


def run(root: Path, show_waves: bool = True) -> int:
    rep, flows = check_catalog(root)
    for file in sorted(rep.problems):
        for line in rep.problems[file]:
            print(line)
    if show_waves and flows:
        print()
        print(waves_text(flows))
        print()
    failed = sum(1 for f in rep.problems if rep.problems[f])
    passed = len(rep.problems) - failed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


# ---------------------------------------------------------------- self-test

SELFTEST_PROMPT = ("Read the files named in the earlier steps and examine them closely for the issue this step "
                   "is about. Describe what you found in prose, cite every claim with a path, a line range and an "
                   "exact quote, and end with the findings block. Keep to the question; do not review unrelated code.")

SELFTEST_FLOW = f'''name = "zz-selftest"
title = "Self test"
category = "review"
description = "A fixture flow used only by the self-test."
answer = "synth"

[[steps]]
id = "signals"
kind = "code"
function = "signals"
label = "Scan signals"

[[steps]]
id = "log"
kind = "code"
function = "run_command"
label = "Recent history"
args = {{ argv = ["git", "log", "--oneline", "-n", "5"] }}

[[steps]]
id = "sec"
kind = "agent"
persona = "adversarial-security-analyst"
after = ["signals", "log"]
label = "Security"
prompt = """{SELFTEST_PROMPT}"""

[[steps]]
id = "beh"
kind = "agent"
persona = "behavioral-analyst"
after = ["signals"]
label = "Behaviour"
prompt = """{SELFTEST_PROMPT}"""

[[steps]]
id = "m1"
kind = "agent"
persona = "edge-case-explorer"
after = ["signals"]
band = "medium"
label = "Edge cases"
prompt = """{SELFTEST_PROMPT}"""

[[steps]]
id = "m2"
kind = "agent"
persona = "test-engineer"
after = ["signals"]
band = "medium"
when = "tests && !docs"
label = "Tests"
prompt = """{SELFTEST_PROMPT}"""

[[steps]]
id = "l1"
kind = "agent"
persona = "data-engineer"
after = ["m1"]
band = "large"
when = "schemas || (api && auth)"
label = "Data"
prompt = """{SELFTEST_PROMPT}"""

[[steps]]
id = "l2"
kind = "agent"
persona = "devops-engineer"
after = ["signals"]
band = "large"
label = "Ops"
prompt = """{SELFTEST_PROMPT}"""

[[steps]]
id = "verify"
kind = "code"
function = "verify_evidence"
after = ["sec", "beh", "m1", "m2", "l1", "l2"]
label = "Check citations"

[[steps]]
id = "synth"
kind = "agent"
persona = "plan-synthesizer"
after = ["sec", "beh", "m1", "m2", "l1", "l2", "verify"]
label = "Answer"
prompt = """{SELFTEST_PROMPT}"""
'''

# The fixture's waves per band: the answer and verify list medium and large specialists; those dependencies are
# dropped in the bands that do not run them, exactly as the engine plans a run.
SELFTEST_WAVES = {
    "small": [["signals", "log"], ["sec", "beh"], ["verify"], ["synth"]],
    "medium": [["signals", "log"], ["sec", "beh", "m1", "m2"], ["verify"], ["synth"]],
    "large": [["signals", "log"], ["sec", "beh", "m1", "m2", "l2"], ["l1"], ["verify"], ["synth"]],
}

# (description, file to mutate, old text, new text, expected substring of a problem line)
SELFTEST_FLOW_BREAKS = [
    ("unknown persona", 'persona = "behavioral-analyst"', 'persona = "behaviour-analyst"', "unknown persona"),
    ("unknown function", 'function = "verify_evidence"', 'function = "check_evidence"', "function"),
    ("unknown band", 'band = "large"\nlabel = "Ops"', 'band = "huge"\nlabel = "Ops"', "band"),
    ("unknown signal", '"tests && !docs"', '"tests && !documentation"', "unknown signal"),
    ("bad when syntax", '"tests && !docs"', '"tests && (docs"', "missing ')'"),
    ("dangling operator", '"tests && !docs"', '"tests &&"', "ends too early"),
    ("duplicate id", 'id = "beh"', 'id = "sec"', "duplicate step id"),
    ("unknown dependency", '"l2", "verify"]', '"l2", "verfy"]', "unknown step"),
    ("unknown larger-band dependency", '"m1", "m2", "l1", "l2", "verify"]', '"m1", "m3", "l1", "l2", "verify"]',
     "unknown step"),
    ("cycle", 'after = ["signals", "log"]', 'after = ["signals", "log", "synth"]', "dependency cycle"),
    ("cycle through a larger band", 'after = ["signals"]\nband = "medium"\nlabel = "Edge cases"',
     'after = ["signals", "synth"]\nband = "medium"\nlabel = "Edge cases"', "dependency cycle"),
    ("when without signals", 'after = ["signals"]\nband = "medium"\nwhen', 'band = "medium"\nwhen', "signals"),
    ("signals reached only through a larger band", 'after = ["signals"]\nband = "medium"\nwhen',
     'after = ["l2"]\nband = "medium"\nwhen', "within its own band"),
    ("disallowed command", '["git", "log",', '["git", "push",', "not allowed"),
    ("shell command", '["git", "log",', '["sh", "-c",', "not allowed"),
    ("answer not last", 'answer = "synth"', 'answer = "sec"', "last wave"),
    ("unknown answer", 'answer = "synth"', 'answer = "summary"', "unknown step"),
    ("bad category", 'category = "review"', 'category = "reviews"', "category"),
    ("name differs from stem", 'name = "zz-selftest"', 'name = "selftest"', "file stem"),
    ("template variable", SELFTEST_PROMPT[:40], "{question} " + SELFTEST_PROMPT[:40], "template variable"),
    ("date in prompt", SELFTEST_PROMPT[:40], "As of 2025-01-31, " + SELFTEST_PROMPT[:40], "date"),
    ("unknown step field", 'label = "Behaviour"', 'label = "Behaviour"\nmodel = "qwen"', "unknown field"),
    ("prompt on a code step", 'label = "Check citations"', 'label = "Check citations"\nprompt = "x"',
     "only agent steps"),
    ("agent without prompt", 'label = "Answer"\nprompt', 'label = "Answer"\nnotes', "unknown field"),
    ("verify without agents", 'after = ["sec", "beh", "m1", "m2", "l1", "l2"]', 'after = ["signals"]',
     "needs at least one agent"),
    ("verify reads only larger-band agents", 'after = ["sec", "beh", "m1", "m2", "l1", "l2"]',
     'after = ["m1", "m2", "l1", "l2"]', "needs at least one agent"),
    # verify still reads l2, so this also proves that a path through a code step is not enough
    ("specialist never reaches the answer", '"l1", "l2", "verify"]', '"l1", "verify"]', "never reaches the answer"),
    ("too few medium specialists", 'band = "medium"\nwhen', 'band = "large"\nwhen', "must add 2-3"),
    ("no security in small", 'persona = "adversarial-security-analyst"', 'persona = "junior-developer"',
     "cover security"),
    ("only conditional specialists in large", 'band = "large"\nlabel = "Ops"',
     'band = "large"\nwhen = "infrastructure"\nlabel = "Ops"', "no unconditional specialist"),
    ("only conditional dependencies", 'after = ["signals"]\nband = "large"\nlabel = "Ops"',
     'after = ["m2"]\nband = "large"\nlabel = "Ops"', "depends only on conditional steps"),
]

SELFTEST_PERSONA_BREAKS = [
    ("name differs from stem", "name: risk-analyst", "name: risk-analyzer", "file stem"),
    ("missing section", "## What to ignore", "## Things to skip", "sections"),
    ("unknown front matter key", "lens:", "tools: read_file\nlens:", "unknown key"),
    ("broken example JSON", '"severity": "critical"', '"severity": "critical",,', "not valid JSON"),
    ("bad severity", '"severity": "critical"', '"severity": "urgent"', "severity"),
    ("too long", "## Posture\n", "## Posture\n\n" + "Read more. " * 300, "words"),
]


def replace_in(rel: str, old: str, new: str):
    """A self-test break: replace the first `old` by `new` in one file of the case directory."""
    def prepare(case: Path) -> bool:
        path = case / rel
        text = path.read_text(encoding="utf-8")
        if old not in text:
            return False
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return True
    return prepare


def move_small_agents_to_medium(case: Path) -> bool:
    path = case / "flows" / "zz-selftest.toml"
    blocks = path.read_text(encoding="utf-8").split("[[steps]]\n")
    moved = 0
    for n, block in enumerate(blocks):
        if n and 'kind = "agent"' in block and "\nband = " not in "\n" + block:
            blocks[n] = 'band = "medium"\n' + block
            moved += 1
    path.write_text("[[steps]]\n".join(blocks), encoding="utf-8")
    return moved > 0


def remove_persona(case: Path) -> bool:
    (case / "personas" / "gap-analyzer.md").unlink()
    return True


def unuse_persona(case: Path) -> bool:
    changed = False
    for f in (case / "flows").glob("*.toml"):
        t = f.read_text(encoding="utf-8")
        n = t.replace('persona = "gap-analyzer"', 'persona = "risk-analyst"')
        changed |= n != t
        f.write_text(n, encoding="utf-8")
    return changed


def self_test(root: Path) -> int:
    flow = "flows/zz-selftest.toml"
    persona = "personas/risk-analyst.md"
    cases = [(desc, replace_in(flow, old, new), expect, flow) for desc, old, new, expect in SELFTEST_FLOW_BREAKS]
    cases.append(("no agent in small", move_small_agents_to_medium, "has no agent step", flow))
    cases += [(f"persona: {desc}", replace_in(persona, old, new), expect, persona)
              for desc, old, new, expect in SELFTEST_PERSONA_BREAKS]
    cases.append(("missing persona file", remove_persona, "missing", "personas/gap-analyzer.md"))
    cases.append(("persona nobody uses", unuse_persona, "no flow uses", "personas/gap-analyzer.md"))
    cases.append(("stale waves table", replace_in("docs/catalog.md", WAVES_END, "| extra | row |\n" + WAVES_END),
                  "out of date", "docs/catalog.md"))
    cases.append(("missing required flow", lambda c: (c / "flows" / "runbook-draft.toml").unlink() is None,
                  "missing", "flows/runbook-draft.toml"))
    failures = 0
    with tempfile.TemporaryDirectory(prefix="boo-catalog-") as tmp:
        base = Path(tmp) / "base"
        for sub in ("personas", "flows", "docs"):
            if (root / sub).is_dir():
                shutil.copytree(root / sub, base / sub)
        (base / "flows" / "zz-selftest.toml").write_text(SELFTEST_FLOW, encoding="utf-8")
        # the fixture flow joins the waves table: regenerate the table of the copied doc
        _, flows = check_catalog(base)
        doc = base / "docs" / "catalog.md"
        if doc.is_file() and WAVES_BEGIN in doc.read_text(encoding="utf-8"):
            head, rest = doc.read_text(encoding="utf-8").split(WAVES_BEGIN, 1)
            tail = rest.split(WAVES_END, 1)[1]
            doc.write_text(head + WAVES_BEGIN + "\n" + generated_markdown(base, flows) + WAVES_END + tail
                           + "\n## `zz-selftest`\n\nThe self-test fixture.\n", encoding="utf-8")
        rep, _ = check_catalog(base)
        problems = [p for lines in rep.problems.values() for p in lines]
        if problems:
            print("self-test: the unbroken catalog (plus the fixture flow) must pass first, but:")
            for p in problems:
                print("  " + p)
            return 1
        print("ok   the unbroken catalog passes")
        fixture = next((f for f in check_catalog(base)[1] if f.name == "zz-selftest"), None)
        for band, want in SELFTEST_WAVES.items():
            got = [[s["id"] for s in w] for w in fixture.waves(band)] if fixture else None
            if got != want:
                failures += 1
                print(f"FAIL fixture waves in band {band}: expected {want}, got {got}")
            else:
                print(f"ok   fixture waves in band {band} drop the larger bands' dependencies: {got}")
        for desc, prepare, expect, expect_file in cases:
            case = Path(tmp) / "case"
            if case.exists():
                shutil.rmtree(case)
            shutil.copytree(base, case)
            if not prepare(case):
                failures += 1
                print(f"FAIL {desc}: the break did not apply (did the fixture change?)")
                continue
            rep, _ = check_catalog(case)
            hits = [p for p in rep.problems.get(expect_file, []) if expect in p]
            if hits:
                print(f"ok   {desc}: {hits[0]}")
                continue
            failures += 1
            print(f"FAIL {desc}: expected a problem containing {expect!r} in {expect_file}; got:")
            for lines in rep.problems.values():
                for p in lines:
                    print("       " + p)
    checks = len(cases) + len(SELFTEST_WAVES)
    print(f"self-test: {checks - failures} of {checks} checks passed ({len(cases)} breaks, "
          f"{len(SELFTEST_WAVES)} wave plans)")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--markdown", action="store_true", help="print only the generated Markdown tables for docs/catalog.md")
    ap.add_argument("--write-doc", action="store_true", help="refresh the generated tables in docs/catalog.md")
    ap.add_argument("--self-test", action="store_true", help="check that the checker catches broken catalogs")
    args = ap.parse_args()
    root = args.root.resolve()
    if args.self_test:
        return self_test(root)
    if args.markdown:
        _, flows = check_catalog(root)
        sys.stdout.write(generated_markdown(root, flows))
        return 0
    if args.write_doc:
        _, flows = check_catalog(root)
        doc = root / "docs" / "catalog.md"
        text = doc.read_text(encoding="utf-8")
        if WAVES_BEGIN not in text or WAVES_END not in text:
            print(f"docs/catalog.md: generated tables: add the markers {WAVES_BEGIN} and {WAVES_END} first")
            return 1
        head, rest = text.split(WAVES_BEGIN, 1)
        tail = rest.split(WAVES_END, 1)[1]
        doc.write_text(head + WAVES_BEGIN + "\n" + generated_markdown(root, flows) + WAVES_END + tail, encoding="utf-8")
        print("docs/catalog.md: generated tables refreshed")
        return 0
    return run(root)


if __name__ == "__main__":
    sys.exit(main())
