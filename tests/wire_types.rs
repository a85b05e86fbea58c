//! The editor clients declare the server's wire types.
//!
//! The server's side comes from `src/lsp/ext.rs` itself (compiled into this test):
//! every wire type describes its fields, and serializing its samples proves the
//! description is what serde sends — each field's wire name, whether it may be left
//! out (optional) and whether it may be null. The clients' sides are read from
//! `editors/vscode/src/protocol.ts` (TypeScript interfaces and aliases) and
//! `editors/nvim/lua/boo/protocol.lua` (LuaCATS classes and aliases). A type or
//! field missing, extra, optional or nullable differently, or of another type fails
//! the test with the type and field named. So do the method tables (which params and
//! result types each method carries).

#[macro_use]
#[allow(dead_code, unused_macros)]
#[path = "../src/lsp/shape.rs"]
mod shape;
#[allow(dead_code)]
#[path = "../src/lsp/ext.rs"]
mod ext;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

// ---- the common model -----------------------------------------------------------

/// A field's type, as both sides are brought to.
#[derive(Debug, Clone, PartialEq)]
enum T {
    Str,
    Int,
    Float,
    /// TypeScript's `number`: an integer or a float.
    Num,
    Bool,
    Any,
    Lits(BTreeSet<String>),
    Array(Box<T>),
    Map(Box<T>),
    /// A named object type.
    Obj(String),
}

impl fmt::Display for T {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            T::Str => f.write_str("string"),
            T::Int => f.write_str("integer"),
            T::Float => f.write_str("float"),
            T::Num => f.write_str("number"),
            T::Bool => f.write_str("boolean"),
            T::Any => f.write_str("any"),
            T::Lits(l) => {
                let quoted: Vec<String> = l.iter().map(|s| format!("\"{s}\"")).collect();
                f.write_str(&quoted.join(" | "))
            }
            T::Array(t) => write!(f, "{t}[]"),
            T::Map(t) => write!(f, "map of {t}"),
            T::Obj(n) => f.write_str(n),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    /// May be left out.
    optional: bool,
    /// May be null.
    nullable: bool,
    ty: T,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            if self.optional { "?: " } else { ": " },
            self.ty,
            if self.nullable { " | null" } else { "" }
        )
    }
}

type Fields = BTreeMap<String, Field>;

#[derive(Debug, Clone)]
enum Decl {
    Object(Fields),
    Enum(BTreeSet<String>),
    Union {
        tag: String,
        variants: BTreeMap<String, Fields>,
    },
}

impl Decl {
    fn kind(&self) -> &'static str {
        match self {
            Decl::Object(_) => "an object",
            Decl::Enum(_) => "a set of strings",
            Decl::Union { .. } => "a tagged union",
        }
    }
}

/// One side's types and method tables.
#[derive(Debug, Default)]
struct Side {
    types: BTreeMap<String, Decl>,
    /// method → (params type, result type)
    requests: BTreeMap<String, (String, String)>,
    /// method → params type
    notifications: BTreeMap<String, String>,
}

// ---- the server: ext.rs, proven against serde -------------------------------------

fn camel(rust: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in rust.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn lower(owner: &str, ty: &shape::Ty, reg: &shape::Registry) -> T {
    match ty {
        shape::Ty::Str => T::Str,
        shape::Ty::Int => T::Int,
        shape::Ty::Float => T::Float,
        shape::Ty::Bool => T::Bool,
        shape::Ty::Any => T::Any,
        shape::Ty::Array(t) => T::Array(Box::new(lower(owner, t, reg))),
        shape::Ty::Map(t) => T::Map(Box::new(lower(owner, t, reg))),
        shape::Ty::Named(n) => match &reg.types[n].def {
            shape::Def::Enum(values) => T::Lits(values.iter().map(|v| v.to_string()).collect()),
            _ => T::Obj(n.to_string()),
        },
        shape::Ty::Option(_) => panic!(
            "{owner}: an Option inside an array, a map or another Option has no client spelling"
        ),
    }
}

fn value_fits(v: &Value, ty: &T) -> bool {
    match ty {
        T::Str => v.is_string(),
        T::Int => v.is_i64() || v.is_u64(),
        T::Float | T::Num => v.is_number(),
        T::Bool => v.is_boolean(),
        T::Any => true,
        T::Lits(l) => v.as_str().is_some_and(|s| l.contains(s)),
        T::Array(t) => v
            .as_array()
            .is_some_and(|a| a.iter().all(|x| value_fits(x, t))),
        T::Map(t) => v
            .as_object()
            .is_some_and(|o| o.values().all(|x| value_fits(x, t))),
        T::Obj(_) => v.is_object(),
    }
}

/// The fields of a struct (or union variant) as serde sends them: names from the
/// full sample, optional = left out of the sparse one.
fn object_of(
    owner: &str,
    fields: &[shape::FieldDef],
    full: &Value,
    sparse: &Value,
    tag: Option<&str>,
    reg: &shape::Registry,
) -> Fields {
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object()
            .unwrap_or_else(|| panic!("{owner}: serde sends {v}, not an object"))
            .keys()
            .filter(|k| Some(k.as_str()) != tag)
            .cloned()
            .collect()
    };
    let declared: BTreeSet<String> = fields.iter().map(|f| camel(f.name)).collect();
    assert_eq!(
        keys(full),
        declared,
        "{owner}: serde sends other fields than the declaration lists (a rename, flatten or skip the description cannot see)"
    );
    let always = keys(sparse);
    let mut out = Fields::new();
    for f in fields {
        let wire = camel(f.name);
        let optional = !always.contains(&wire);
        let mut ty = &f.ty;
        if optional {
            if let shape::Ty::Option(inner) = ty {
                ty = inner;
            }
        }
        let (nullable, ty) = match ty {
            shape::Ty::Option(inner) => (true, &**inner),
            t => (false, t),
        };
        let field = Field {
            optional,
            nullable,
            ty: lower(owner, ty, reg),
        };
        for sample in [full, sparse] {
            if let Some(v) = sample.get(&wire) {
                assert!(
                    (v.is_null() && (field.nullable || field.ty == T::Any))
                        || (!v.is_null() && value_fits(v, &field.ty)),
                    "{owner}.{wire}: serde sends {v}, which is not `{}{}`",
                    field.ty,
                    if field.nullable { " | null" } else { "" }
                );
            }
        }
        out.insert(wire, field);
    }
    out
}

fn server() -> Side {
    let mut reg = shape::Registry::default();
    let requests = ext::describe_requests(&mut reg);
    let notifications = ext::describe_notifications(&mut reg);
    ext::describe_others(&mut reg);
    let mut side = Side::default();
    for (name, info) in &reg.types {
        let decl = match &info.def {
            shape::Def::Enum(values) => {
                let sent: Vec<&str> = info.samples.iter().filter_map(|v| v.as_str()).collect();
                assert_eq!(&sent, values, "{name}: serde sends other strings");
                Decl::Enum(values.iter().map(|v| v.to_string()).collect())
            }
            shape::Def::Struct(fields) => Decl::Object(object_of(
                name,
                fields,
                &info.samples[0],
                &info.samples[1],
                None,
                &reg,
            )),
            shape::Def::Union { tag, variants } => {
                let mut out = BTreeMap::new();
                for (i, (value, fields)) in variants.iter().enumerate() {
                    let (full, sparse) = (&info.samples[2 * i], &info.samples[2 * i + 1]);
                    assert_eq!(full[tag], *value, "{name}: the tag serde sends");
                    assert_eq!(sparse[tag], *value, "{name}: the tag serde sends");
                    let owner = format!("{name}.{value}");
                    out.insert(
                        value.to_string(),
                        object_of(&owner, fields, full, sparse, Some(tag), &reg),
                    );
                }
                Decl::Union {
                    tag: tag.to_string(),
                    variants: out,
                }
            }
        };
        side.types.insert(name.to_string(), decl);
    }
    for (m, p, r) in requests {
        side.requests.insert(m.into(), (p.into(), r.into()));
    }
    for (m, p) in notifications {
        side.notifications.insert(m.into(), p.into());
    }
    side
}

// ---- TypeScript ---------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Id(String),
    Str(String),
    P(char),
}

fn lex_ts(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if ch == '\'' || ch == '"' || ch == '`' {
            let mut s = String::new();
            i += 1;
            while i < c.len() && c[i] != ch {
                if c[i] == '\\' {
                    i += 1;
                }
                if let Some(x) = c.get(i) {
                    s.push(*x);
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if ch.is_alphanumeric() || ch == '_' || ch == '$' {
            let mut s = String::new();
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                s.push(c[i]);
                i += 1;
            }
            out.push(Tok::Id(s));
        } else {
            out.push(Tok::P(ch));
            i += 1;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum TsTy {
    Prim(String),
    Lit(String),
    Ref(String, Vec<TsTy>),
    Array(Box<TsTy>),
    Obj(Vec<Member>),
    Union(Vec<TsTy>),
}

#[derive(Debug, Clone, PartialEq)]
struct Member {
    name: String,
    optional: bool,
    ty: TsTy,
}

#[derive(Debug, Clone)]
enum TsDecl {
    Interface {
        extends: Vec<String>,
        members: Vec<Member>,
    },
    Alias(TsTy),
}

struct TsParser {
    toks: Vec<Tok>,
    i: usize,
}

impl TsParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
    fn at(&self, p: char) -> bool {
        self.peek() == Some(&Tok::P(p))
    }
    fn eat(&mut self, p: char) -> bool {
        let yes = self.at(p);
        if yes {
            self.i += 1;
        }
        yes
    }
    fn expect(&mut self, p: char) {
        assert!(
            self.eat(p),
            "protocol.ts: expected `{p}` at {:?}",
            self.peek()
        );
    }
    fn ident(&mut self) -> String {
        match self.toks.get(self.i).cloned() {
            Some(Tok::Id(s)) | Some(Tok::Str(s)) => {
                self.i += 1;
                s
            }
            other => panic!("protocol.ts: expected a name, found {other:?}"),
        }
    }
    fn skip_generics(&mut self) {
        if self.eat('<') {
            let mut depth = 1;
            while depth > 0 {
                match self.peek() {
                    Some(Tok::P('<')) => depth += 1,
                    Some(Tok::P('>')) => depth -= 1,
                    None => return,
                    _ => {}
                }
                self.i += 1;
            }
        }
    }
    fn members(&mut self) -> Vec<Member> {
        let mut out = Vec::new();
        while !self.eat('}') {
            if self.peek() == Some(&Tok::Id("readonly".into())) {
                self.i += 1;
            }
            let name = self.ident();
            let optional = self.eat('?');
            self.expect(':');
            let ty = self.union();
            out.push(Member { name, optional, ty });
            let _ = self.eat(';') || self.eat(',');
        }
        out
    }
    fn union(&mut self) -> TsTy {
        self.eat('|');
        let mut parts = vec![self.postfix()];
        while self.eat('|') {
            parts.push(self.postfix());
        }
        assert!(
            !self.at('&'),
            "protocol.ts: intersections (`&`) are not read: use `extends`"
        );
        if parts.len() == 1 {
            parts.remove(0)
        } else {
            TsTy::Union(parts)
        }
    }
    fn postfix(&mut self) -> TsTy {
        let mut t = self.primary();
        while self.at('[') && self.toks.get(self.i + 1) == Some(&Tok::P(']')) {
            self.i += 2;
            t = TsTy::Array(Box::new(t));
        }
        t
    }
    fn primary(&mut self) -> TsTy {
        match self.toks.get(self.i).cloned() {
            Some(Tok::Str(s)) => {
                self.i += 1;
                TsTy::Lit(s)
            }
            Some(Tok::P('(')) => {
                self.i += 1;
                let t = self.union();
                self.expect(')');
                t
            }
            Some(Tok::P('{')) => {
                self.i += 1;
                TsTy::Obj(self.members())
            }
            Some(Tok::Id(s)) => {
                self.i += 1;
                const PRIMS: &[&str] = &[
                    "string",
                    "number",
                    "boolean",
                    "unknown",
                    "any",
                    "null",
                    "undefined",
                ];
                if PRIMS.contains(&s.as_str()) {
                    return TsTy::Prim(s);
                }
                let mut args = Vec::new();
                if self.eat('<') {
                    loop {
                        args.push(self.union());
                        if self.eat('>') {
                            break;
                        }
                        self.expect(',');
                    }
                }
                TsTy::Ref(s, args)
            }
            other => panic!("protocol.ts: cannot read a type at {other:?}"),
        }
    }
}

fn parse_ts(src: &str) -> BTreeMap<String, TsDecl> {
    let mut p = TsParser {
        toks: lex_ts(src),
        i: 0,
    };
    let mut out = BTreeMap::new();
    while p.i < p.toks.len() {
        let export = p.peek() == Some(&Tok::Id("export".into()));
        let what = p.toks.get(p.i + 1).cloned();
        if export && what == Some(Tok::Id("interface".into())) {
            p.i += 2;
            let name = p.ident();
            p.skip_generics();
            let mut extends = Vec::new();
            if p.peek() == Some(&Tok::Id("extends".into())) {
                p.i += 1;
                loop {
                    extends.push(p.ident());
                    if !p.eat(',') {
                        break;
                    }
                }
            }
            p.expect('{');
            let members = p.members();
            out.insert(name, TsDecl::Interface { extends, members });
        } else if export && what == Some(Tok::Id("type".into())) {
            p.i += 2;
            let name = p.ident();
            p.skip_generics();
            p.expect('=');
            let ty = p.union();
            p.eat(';');
            out.insert(name, TsDecl::Alias(ty));
        } else {
            p.i += 1;
        }
    }
    out
}

struct Ts<'a> {
    decls: &'a BTreeMap<String, TsDecl>,
}

impl Ts<'_> {
    /// The string values of an alias of literals, following aliases.
    fn lits(&self, ty: &TsTy) -> Option<BTreeSet<String>> {
        match ty {
            TsTy::Lit(s) => Some(BTreeSet::from([s.clone()])),
            TsTy::Union(parts) => {
                let mut out = BTreeSet::new();
                for p in parts {
                    out.extend(self.lits(p)?);
                }
                Some(out)
            }
            TsTy::Ref(n, args) if args.is_empty() => match self.decls.get(n) {
                Some(TsDecl::Alias(t)) => self.lits(t),
                _ => None,
            },
            _ => None,
        }
    }

    fn one(&self, ty: &TsTy, at: &str) -> Result<T, String> {
        Ok(match ty {
            TsTy::Prim(p) => match p.as_str() {
                "string" => T::Str,
                "number" => T::Num,
                "boolean" => T::Bool,
                "unknown" | "any" => T::Any,
                other => return Err(format!("{at}: `{other}` has no wire meaning")),
            },
            TsTy::Array(t) => T::Array(Box::new(self.one(t, at)?)),
            TsTy::Ref(n, args) if n == "Array" && args.len() == 1 => {
                T::Array(Box::new(self.one(&args[0], at)?))
            }
            TsTy::Ref(n, args)
                if n == "Record" && args.len() == 2 && args[0] == TsTy::Prim("string".into()) =>
            {
                T::Map(Box::new(self.one(&args[1], at)?))
            }
            TsTy::Ref(n, args) if args.is_empty() => match self.lits(ty) {
                Some(l) => T::Lits(l),
                None if self.decls.contains_key(n) => T::Obj(n.clone()),
                None => return Err(format!("{at}: `{n}` is not declared in protocol.ts")),
            },
            other => match self.lits(other) {
                Some(l) => T::Lits(l),
                None => return Err(format!("{at}: write {other:?} as a named type")),
            },
        })
    }

    fn field(&self, m: &Member, at: &str) -> Result<Field, String> {
        let (rest, nullable): (Vec<&TsTy>, bool) = match &m.ty {
            TsTy::Union(parts) => {
                let rest: Vec<&TsTy> = parts
                    .iter()
                    .filter(|p| **p != TsTy::Prim("null".into()))
                    .collect();
                let nullable = rest.len() < parts.len();
                (rest, nullable)
            }
            t => (vec![t], false),
        };
        let ty = if rest.len() == 1 {
            self.one(rest[0], at)?
        } else {
            let u = TsTy::Union(rest.into_iter().cloned().collect());
            T::Lits(
                self.lits(&u)
                    .ok_or(format!("{at}: a union of non-literals"))?,
            )
        };
        Ok(Field {
            optional: m.optional,
            nullable,
            ty,
        })
    }

    fn fields(&self, members: &[Member], owner: &str) -> Result<Fields, String> {
        members
            .iter()
            .map(|m| {
                Ok((
                    m.name.clone(),
                    self.field(m, &format!("{owner}.{}", m.name))?,
                ))
            })
            .collect()
    }

    fn object_fields(&self, name: &str) -> Result<Fields, String> {
        match self.decl(name)? {
            Decl::Object(f) => Ok(f),
            other => Err(format!("{name} is {}, not an object", other.kind())),
        }
    }

    fn decl(&self, name: &str) -> Result<Decl, String> {
        match self.decls.get(name) {
            Some(TsDecl::Interface { extends, members }) => {
                let mut fields = Fields::new();
                for parent in extends {
                    fields.extend(self.object_fields(parent)?);
                }
                fields.extend(self.fields(members, name)?);
                Ok(Decl::Object(fields))
            }
            Some(TsDecl::Alias(ty)) => self.decl_of(ty, name),
            None => Err(format!("`{name}` is not declared")),
        }
    }

    fn decl_of(&self, ty: &TsTy, name: &str) -> Result<Decl, String> {
        if let Some(l) = self.lits(ty) {
            return Ok(Decl::Enum(l));
        }
        match ty {
            TsTy::Obj(members) => Ok(Decl::Object(self.fields(members, name)?)),
            TsTy::Ref(n, args) if n == "Record" && args.len() == 2 => {
                let keys = self
                    .lits(&args[0])
                    .ok_or(format!("{name}: Record keys must be string literals"))?;
                let m = Member {
                    name: String::new(),
                    optional: false,
                    ty: args[1].clone(),
                };
                let f = self.field(&m, name)?;
                Ok(Decl::Object(
                    keys.into_iter().map(|k| (k, f.clone())).collect(),
                ))
            }
            TsTy::Ref(n, args) if n == "Partial" && args.len() == 1 => {
                match self.decl_of(&args[0], name)? {
                    Decl::Object(f) => Ok(Decl::Object(
                        f.into_iter()
                            .map(|(k, mut v)| {
                                v.optional = true;
                                (k, v)
                            })
                            .collect(),
                    )),
                    other => Err(format!("{name}: Partial of {}", other.kind())),
                }
            }
            TsTy::Ref(n, args) if args.is_empty() => self.decl(n),
            TsTy::Union(parts) => {
                let mut objects = Vec::new();
                for p in parts {
                    objects.push(match p {
                        TsTy::Obj(m) => self.fields(m, name)?,
                        TsTy::Ref(n, a) if a.is_empty() => self.object_fields(n)?,
                        other => return Err(format!("{name}: a union member {other:?}")),
                    });
                }
                union_of(objects, name)
            }
            other => Err(format!("{name}: cannot read {other:?}")),
        }
    }
}

/// A union of objects: the tag is the field that is one literal in every member.
fn union_of(objects: Vec<Fields>, name: &str) -> Result<Decl, String> {
    let single = |f: &Field| match &f.ty {
        T::Lits(l) if l.len() == 1 => l.iter().next().cloned(),
        _ => None,
    };
    let tag = objects
        .first()
        .and_then(|first| {
            first
                .iter()
                .find(|(k, _)| objects.iter().all(|o| o.get(*k).and_then(single).is_some()))
                .map(|(k, _)| k.clone())
        })
        .ok_or(format!("{name}: a union without a tag field"))?;
    let mut variants = BTreeMap::new();
    for mut o in objects {
        let value = o.get(&tag).and_then(single).unwrap_or_default();
        o.remove(&tag);
        variants.insert(value, o);
    }
    Ok(Decl::Union { tag, variants })
}

fn ts_side(src: &str) -> Side {
    let decls = parse_ts(src);
    let ts = Ts { decls: &decls };
    let mut side = Side::default();
    for name in decls.keys() {
        if let Ok(d) = ts.decl(name) {
            side.types.insert(name.clone(), d);
        }
    }
    let name_of = |t: &TsTy| match t {
        TsTy::Ref(n, a) if a.is_empty() => n.clone(),
        other => format!("{other:?}"),
    };
    if let Some(TsDecl::Interface { members, .. }) = decls.get("Requests") {
        for m in members {
            if let TsTy::Obj(inner) = &m.ty {
                let get = |k: &str| {
                    inner
                        .iter()
                        .find(|x| x.name == k)
                        .map(|x| name_of(&x.ty))
                        .unwrap_or_default()
                };
                side.requests
                    .insert(m.name.clone(), (get("params"), get("result")));
            }
        }
    }
    if let Some(TsDecl::Alias(TsTy::Union(parts))) = decls.get("Notification") {
        for p in parts {
            if let TsTy::Obj(inner) = p {
                let method = inner.iter().find(|x| x.name == "method");
                let params = inner.iter().find(|x| x.name == "params");
                if let (
                    Some(Member {
                        ty: TsTy::Lit(m), ..
                    }),
                    Some(p),
                ) = (method, params)
                {
                    side.notifications.insert(m.clone(), name_of(&p.ty));
                }
            }
        }
    }
    side
}

// ---- LuaCATS ------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum LuaTy {
    Name(String),
    Lit(String),
    Array(Box<LuaTy>),
    Generic(String, Vec<LuaTy>),
    Union(Vec<LuaTy>),
}

struct LuaReader<'a> {
    c: Vec<char>,
    i: usize,
    at: &'a str,
}

impl LuaReader<'_> {
    fn ws(&mut self) {
        while self.c.get(self.i).is_some_and(|c| c.is_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, ch: char) -> bool {
        self.ws();
        if self.c.get(self.i) == Some(&ch) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn name(&mut self) -> String {
        self.ws();
        let mut s = String::new();
        while let Some(&c) = self.c.get(self.i) {
            if c.is_alphanumeric() || c == '_' || c == '.' {
                s.push(c);
                self.i += 1;
            } else {
                break;
            }
        }
        s
    }
    fn union(&mut self) -> LuaTy {
        let mut parts = vec![self.postfix()];
        loop {
            let save = self.i;
            if self.eat('|') {
                parts.push(self.postfix());
            } else {
                self.i = save;
                break;
            }
        }
        if parts.len() == 1 {
            parts.remove(0)
        } else {
            LuaTy::Union(parts)
        }
    }
    fn postfix(&mut self) -> LuaTy {
        let mut t = self.primary();
        loop {
            // No space before a postfix: `string []` would start a description.
            if self.c.get(self.i) == Some(&'[') && self.c.get(self.i + 1) == Some(&']') {
                self.i += 2;
                t = LuaTy::Array(Box::new(t));
            } else if self.c.get(self.i) == Some(&'?') {
                self.i += 1;
                t = LuaTy::Union(vec![t, LuaTy::Name("nil".into())]);
            } else {
                return t;
            }
        }
    }
    fn primary(&mut self) -> LuaTy {
        self.ws();
        match self.c.get(self.i).copied() {
            Some(q @ ('"' | '\'' | '`')) => {
                self.i += 1;
                let mut s = String::new();
                while let Some(&c) = self.c.get(self.i) {
                    self.i += 1;
                    if c == q {
                        break;
                    }
                    s.push(c);
                }
                LuaTy::Lit(s)
            }
            Some('(') => {
                self.i += 1;
                let t = self.union();
                assert!(self.eat(')'), "{}: expected `)`", self.at);
                t
            }
            _ => {
                let n = self.name();
                assert!(!n.is_empty(), "{}: cannot read a type", self.at);
                if self.c.get(self.i) == Some(&'<') {
                    self.i += 1;
                    let mut args = vec![self.union()];
                    while self.eat(',') {
                        args.push(self.union());
                    }
                    assert!(self.eat('>'), "{}: expected `>`", self.at);
                    LuaTy::Generic(n, args)
                } else {
                    LuaTy::Name(n)
                }
            }
        }
    }
}

fn lua_type(text: &str, at: &str) -> LuaTy {
    let mut r = LuaReader {
        c: text.chars().collect(),
        i: 0,
        at,
    };
    r.union()
}

#[derive(Debug, Clone)]
enum LuaDecl {
    Class {
        parents: Vec<String>,
        fields: Vec<(String, bool, LuaTy)>,
    },
    Alias(LuaTy),
}

fn parse_lua(src: &str) -> (BTreeMap<String, LuaDecl>, Side) {
    let mut decls: BTreeMap<String, LuaDecl> = BTreeMap::new();
    let mut class: Option<String> = None;
    let mut alias: Option<String> = None;
    let mut side = Side::default();
    let strip = |n: &str| n.strip_prefix("boo.").unwrap_or(n).to_string();
    for line in src.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("---@class ") {
            let rest = rest.trim_start_matches("(exact)").trim();
            let (name, parents) = match rest.split_once(':') {
                Some((n, p)) => (n.trim(), p.split(',').map(|x| strip(x.trim())).collect()),
                None => (rest.split_whitespace().next().unwrap_or(""), Vec::new()),
            };
            let name = strip(name);
            decls.insert(
                name.clone(),
                LuaDecl::Class {
                    parents,
                    fields: Vec::new(),
                },
            );
            class = Some(name);
            alias = None;
        } else if let Some(rest) = l.strip_prefix("---@field ") {
            let Some(c) = &class else {
                panic!("protocol.lua: a field outside a class: {l}");
            };
            let rest = rest.trim();
            let name_end = rest
                .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len());
            let (name, mut tail) = rest.split_at(name_end);
            let optional = tail.starts_with('?');
            if optional {
                tail = &tail[1..];
            }
            let ty = lua_type(tail, &format!("protocol.lua: {c}.{name}"));
            if let Some(LuaDecl::Class { fields, .. }) = decls.get_mut(c) {
                fields.push((name.to_string(), optional, ty));
            }
        } else if let Some(rest) = l.strip_prefix("---@alias ") {
            let rest = rest.trim();
            let (name, ty) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let name = strip(name);
            let at = format!("protocol.lua: {name}");
            let ty = if ty.trim().is_empty() {
                LuaTy::Union(Vec::new())
            } else {
                lua_type(ty, &at)
            };
            decls.insert(name.clone(), LuaDecl::Alias(ty));
            alias = Some(name);
            class = None;
        } else if let Some(rest) = l.strip_prefix("---|") {
            if let Some(a) = &alias {
                let more = lua_type(rest, &format!("protocol.lua: {a}"));
                if let Some(LuaDecl::Alias(t)) = decls.get_mut(a) {
                    let mut parts = match std::mem::replace(t, LuaTy::Union(Vec::new())) {
                        LuaTy::Union(p) => p,
                        one => vec![one],
                    };
                    parts.push(more);
                    *t = LuaTy::Union(parts);
                }
            }
        } else if !l.starts_with("---") {
            class = None;
            alias = None;
        }
        // The method tables: ['boo/x'] = { params = 'boo.P', result = 'boo.R' } or = 'boo.P'.
        if let Some(rest) = l.strip_prefix("['") {
            if let Some((method, value)) = rest.split_once("'] = ") {
                let quoted: Vec<&str> = value.split('\'').skip(1).step_by(2).collect();
                if value.trim_start().starts_with('{') && quoted.len() == 2 {
                    side.requests
                        .insert(method.into(), (strip(quoted[0]), strip(quoted[1])));
                } else if quoted.len() == 1 {
                    side.notifications.insert(method.into(), strip(quoted[0]));
                }
            }
        }
    }
    (decls, side)
}

struct Lua<'a> {
    decls: &'a BTreeMap<String, LuaDecl>,
}

impl Lua<'_> {
    fn lits(&self, ty: &LuaTy) -> Option<BTreeSet<String>> {
        match ty {
            LuaTy::Lit(s) => Some(BTreeSet::from([s.clone()])),
            LuaTy::Union(parts) if !parts.is_empty() => {
                let mut out = BTreeSet::new();
                for p in parts {
                    out.extend(self.lits(p)?);
                }
                Some(out)
            }
            LuaTy::Name(n) => match self.decls.get(n.strip_prefix("boo.")?) {
                Some(LuaDecl::Alias(t)) => self.lits(t),
                _ => None,
            },
            _ => None,
        }
    }

    fn one(&self, ty: &LuaTy, at: &str) -> Result<T, String> {
        if let Some(l) = self.lits(ty) {
            return Ok(T::Lits(l));
        }
        Ok(match ty {
            LuaTy::Name(n) => match n.as_str() {
                "string" => T::Str,
                "integer" => T::Int,
                "number" => T::Float,
                "boolean" => T::Bool,
                "any" => T::Any,
                other => match other.strip_prefix("boo.") {
                    Some(local) if self.decls.contains_key(local) => T::Obj(local.to_string()),
                    _ => return Err(format!("{at}: `{other}` is not declared in protocol.lua")),
                },
            },
            LuaTy::Array(t) => T::Array(Box::new(self.one(t, at)?)),
            LuaTy::Generic(g, args)
                if g == "table" && args.len() == 2 && args[0] == LuaTy::Name("string".into()) =>
            {
                T::Map(Box::new(self.one(&args[1], at)?))
            }
            other => return Err(format!("{at}: cannot read {other:?}")),
        })
    }

    fn field(&self, optional: bool, ty: &LuaTy, at: &str) -> Result<Field, String> {
        let nil = LuaTy::Name("nil".into());
        let (rest, nullable): (Vec<&LuaTy>, bool) = match ty {
            LuaTy::Union(parts) => {
                let rest: Vec<&LuaTy> = parts.iter().filter(|p| **p != nil).collect();
                let nullable = rest.len() < parts.len();
                (rest, nullable)
            }
            t => (vec![t], false),
        };
        let ty = if rest.len() == 1 {
            self.one(rest[0], at)?
        } else {
            let u = LuaTy::Union(rest.into_iter().cloned().collect());
            T::Lits(
                self.lits(&u)
                    .ok_or(format!("{at}: a union of non-literals"))?,
            )
        };
        Ok(Field {
            optional,
            nullable,
            ty,
        })
    }

    fn decl(&self, name: &str) -> Result<Decl, String> {
        match self.decls.get(name) {
            Some(LuaDecl::Class { parents, fields }) => {
                let mut out = Fields::new();
                for p in parents {
                    match self.decl(p)? {
                        Decl::Object(f) => out.extend(f),
                        other => return Err(format!("{name}: its parent {p} is {}", other.kind())),
                    }
                }
                for (f, optional, ty) in fields {
                    out.insert(
                        f.clone(),
                        self.field(*optional, ty, &format!("{name}.{f}"))?,
                    );
                }
                Ok(Decl::Object(out))
            }
            Some(LuaDecl::Alias(ty)) => {
                if let Some(l) = self.lits(ty) {
                    return Ok(Decl::Enum(l));
                }
                let parts = match ty {
                    LuaTy::Union(p) => p.clone(),
                    one => vec![one.clone()],
                };
                let mut objects = Vec::new();
                for p in &parts {
                    let LuaTy::Name(n) = p else {
                        return Err(format!("{name}: a union member {p:?}"));
                    };
                    let local = n.strip_prefix("boo.").unwrap_or(n);
                    match self.decl(local)? {
                        Decl::Object(f) => objects.push(f),
                        other => return Err(format!("{name}: {n} is {}", other.kind())),
                    }
                }
                union_of(objects, name)
            }
            None => Err(format!("`{name}` is not declared")),
        }
    }
}

fn lua_side(src: &str) -> Side {
    let (decls, mut side) = parse_lua(src);
    let lua = Lua { decls: &decls };
    for name in decls.keys() {
        if let Ok(d) = lua.decl(name) {
            side.types.insert(name.clone(), d);
        }
    }
    side
}

// ---- comparing ----------------------------------------------------------------------

fn same_type(server: &T, client: &T) -> bool {
    match (server, client) {
        (T::Int | T::Float, T::Num) => true,
        (T::Array(a), T::Array(b)) | (T::Map(a), T::Map(b)) => same_type(a, b),
        (a, b) => a == b,
    }
}

/// What differs, as `(where, what)`: `where` is `Type.field` (or `Type`, or a method).
fn compare(
    server: &Side,
    client: &Side,
    describe: &dyn Fn(&str) -> Result<Decl, String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, s) in &server.types {
        let c = match client.types.get(name) {
            Some(c) => c.clone(),
            None => match describe(name) {
                Ok(c) => c,
                Err(e) => {
                    out.push((
                        name.clone(),
                        format!("cannot be read: {e} (the server's is {})", s.kind()),
                    ));
                    continue;
                }
            },
        };
        match (s, &c) {
            (Decl::Enum(a), Decl::Enum(b)) => {
                if a != b {
                    out.push((
                        name.clone(),
                        format!("has the values {b:?} but the server sends {a:?}"),
                    ));
                }
            }
            (Decl::Object(a), Decl::Object(b)) => compare_fields(name, a, b, &mut out),
            (
                Decl::Union {
                    tag: ta,
                    variants: va,
                },
                Decl::Union {
                    tag: tb,
                    variants: vb,
                },
            ) => {
                if ta != tb {
                    out.push((
                        name.clone(),
                        format!("is told apart by `{tb}`, the server's by `{ta}`"),
                    ));
                }
                for (v, fa) in va {
                    match vb.get(v) {
                        Some(fb) => compare_fields(&format!("{name}[{ta}={v}]"), fa, fb, &mut out),
                        None => out.push((format!("{name}[{ta}={v}]"), "is missing".into())),
                    }
                }
                for v in vb.keys().filter(|v| !va.contains_key(*v)) {
                    out.push((
                        format!("{name}[{tb}={v}]"),
                        "is declared but the server never sends it".into(),
                    ));
                }
            }
            (s, c) => out.push((
                name.clone(),
                format!("is {} but the server's is {}", c.kind(), s.kind()),
            )),
        }
    }
    for (m, (p, r)) in &server.requests {
        match client.requests.get(m) {
            Some((cp, cr)) if cp == p && cr == r => {}
            Some((cp, cr)) => out.push((
                m.clone(),
                format!("carries {cp} → {cr}; the server's {p} → {r}"),
            )),
            None => out.push((
                m.clone(),
                format!("is missing from the request table ({p} → {r})"),
            )),
        }
    }
    for m in client
        .requests
        .keys()
        .filter(|m| !server.requests.contains_key(*m))
    {
        out.push((
            m.clone(),
            "is in the request table but the server has no such request".into(),
        ));
    }
    for (m, p) in &server.notifications {
        match client.notifications.get(m) {
            Some(cp) if cp == p => {}
            Some(cp) => out.push((m.clone(), format!("carries {cp}; the server's {p}"))),
            None => out.push((
                m.clone(),
                format!("is missing from the notification table ({p})"),
            )),
        }
    }
    for m in client
        .notifications
        .keys()
        .filter(|m| !server.notifications.contains_key(*m))
    {
        out.push((
            m.clone(),
            "is in the notification table but the server sends no such notification".into(),
        ));
    }
    out
}

fn compare_fields(owner: &str, server: &Fields, client: &Fields, out: &mut Vec<(String, String)>) {
    for (f, s) in server {
        let at = format!("{owner}.{f}");
        let Some(c) = client.get(f) else {
            out.push((at, format!("is missing (the server sends `{f}{s}`)")));
            continue;
        };
        if s.optional != c.optional {
            out.push((
                at.clone(),
                if c.optional {
                    "is optional here but the server always sends it".into()
                } else {
                    "is required here but the server may leave it out".into()
                },
            ));
        }
        if s.nullable != c.nullable {
            out.push((
                at.clone(),
                if c.nullable {
                    "may be null here but the server never sends null".into()
                } else {
                    "cannot be null here but the server may send null".into()
                },
            ));
        }
        if !same_type(&s.ty, &c.ty) {
            out.push((
                at,
                format!("is `{}` here but the server sends `{}`", c.ty, s.ty),
            ));
        }
    }
    for f in client.keys().filter(|f| !server.contains_key(*f)) {
        out.push((
            format!("{owner}.{f}"),
            "is declared but the server never sends it".into(),
        ));
    }
}

/// Where a client deliberately reads a field more loosely than the server sends it:
/// (client, `Type.field` — `Type.*` for every field —, what differs, why). Only the
/// safe direction can be excused (optional or nullable where the server always sends
/// a value); an entry that no longer excuses anything fails the test.
const LOOSER: &[(&str, &str, &str, &str)] = &[
    (
        "protocol.ts",
        "Usage.*",
        "is optional here but the server always sends it",
        "state.ts also uses Usage for partial sums",
    ),
    (
        "protocol.ts",
        "StepInfo.agent",
        "may be null here but the server never sends null",
        "state.ts makes placeholder steps (extends StepInfo) before the roster is known",
    ),
    (
        "protocol.ts",
        "Step.agent",
        "may be null here but the server never sends null",
        "Step extends StepInfo",
    ),
    (
        "protocol.ts",
        "Step.cached",
        "is optional here but the server always sends it",
        "test/synthetic.ts builds steps without it; a missing one reads as false",
    ),
];

fn excused(client: &str, at: &str, what: &str) -> Option<usize> {
    LOOSER.iter().position(|(c, pattern, w, _)| {
        *c == client
            && *w == what
            && match pattern.strip_suffix(".*") {
                Some(ty) => at.strip_prefix(ty).is_some_and(|r| r.starts_with('.')),
                None => at == *pattern,
            }
    })
}

fn check(
    client: &str,
    server: &Side,
    side: &Side,
    describe: &dyn Fn(&str) -> Result<Decl, String>,
) -> (Vec<String>, BTreeSet<usize>) {
    let mut used = BTreeSet::new();
    let mut failures = Vec::new();
    for (at, what) in compare(server, side, describe) {
        match excused(client, &at, &what) {
            Some(i) => {
                used.insert(i);
            }
            None => failures.push(format!("{client}: `{at}` {what}")),
        }
    }
    (failures, used)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

const TS: &str = "editors/vscode/src/protocol.ts";
const LUA: &str = "editors/nvim/lua/boo/protocol.lua";

fn check_ts(server: &Side, src: &str) -> (Vec<String>, BTreeSet<usize>) {
    let decls = parse_ts(src);
    let ts = Ts { decls: &decls };
    check("protocol.ts", server, &ts_side(src), &|n| ts.decl(n))
}

fn check_lua(server: &Side, src: &str) -> (Vec<String>, BTreeSet<usize>) {
    let (decls, _) = parse_lua(src);
    let lua = Lua { decls: &decls };
    check("protocol.lua", server, &lua_side(src), &|n| lua.decl(n))
}

// ---- the tests ----------------------------------------------------------------------

#[test]
fn the_server_describes_what_serde_sends() {
    let s = server();
    assert_eq!(s.requests.len(), ext::REQUESTS.len());
    assert_eq!(s.notifications.len(), ext::NOTIFICATIONS.len());
    let Decl::Object(f) = &s.types["StepUpdatedParams"] else {
        panic!("StepUpdatedParams is an object");
    };
    assert_eq!(
        f["status"],
        Field {
            optional: false,
            nullable: true,
            ty: T::Lits(
                [
                    "pending",
                    "running",
                    "completed",
                    "failed",
                    "skipped",
                    "cancelled"
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            )
        }
    );
    assert!(f["runStatus"].optional && !f["runStatus"].nullable);
    let Decl::Object(f) = &s.types["ListRunsParams"] else {
        panic!("ListRunsParams is an object");
    };
    assert!(
        f["root"].optional && f["root"].nullable,
        "absent, null or a path"
    );
}

#[test]
fn the_vscode_client_declares_the_server_types() {
    let server = server();
    let (failures, used) = check_ts(&server, &read(TS));
    let mut failures = failures;
    for (i, (c, at, what, why)) in LOOSER.iter().enumerate() {
        if *c == "protocol.ts" && !used.contains(&i) {
            failures.push(format!("tests/wire_types.rs: the excuse for `{at}` ({what}: {why}) excuses nothing any more: remove it"));
        }
    }
    assert!(
        failures.is_empty(),
        "{TS} and src/lsp/ext.rs differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_neovim_client_declares_the_server_types() {
    let server = server();
    let (failures, used) = check_lua(&server, &read(LUA));
    let mut failures = failures;
    for (i, (c, at, what, why)) in LOOSER.iter().enumerate() {
        if *c == "protocol.lua" && !used.contains(&i) {
            failures.push(format!("tests/wire_types.rs: the excuse for `{at}` ({what}: {why}) excuses nothing any more: remove it"));
        }
    }
    assert!(
        failures.is_empty(),
        "{LUA} and src/lsp/ext.rs differ:\n{}",
        failures.join("\n")
    );
}

/// The check fails, naming type and field, for each kind of drift.
#[test]
fn a_drifted_declaration_is_named() {
    let server = server();
    let ts = read(TS);
    let lua = read(LUA);
    let edit = |src: &str, from: &str, to: &str| {
        assert!(src.contains(from), "the fixture text `{from}` is gone");
        src.replacen(from, to, 1)
    };
    let cases: Vec<(String, &str)> = vec![
        // A field missing.
        (edit(&ts, "  resumed: boolean;\n", ""), "protocol.ts: `RunStartedParams.resumed` is missing"),
        // A field extra.
        (edit(&ts, "  resumed: boolean;\n", "  resumed: boolean;\n  resumedAt: string;\n"), "protocol.ts: `RunStartedParams.resumedAt` is declared but the server never sends it"),
        // Optional differently, both ways.
        (edit(&ts, "  runStatus?: RunStatus;", "  runStatus: RunStatus;"), "protocol.ts: `StepUpdatedParams.runStatus` is required here but the server may leave it out"),
        (edit(&ts, "  fileName: string;", "  fileName?: string;"), "protocol.ts: `ExportRunResult.fileName` is optional here but the server always sends it"),
        // Nullable differently, both ways.
        (edit(&ts, "  status: StepStatus | null;", "  status: StepStatus;"), "protocol.ts: `StepUpdatedParams.status` cannot be null here but the server may send null"),
        (edit(&ts, "  traceId: string;", "  traceId: string | null;"), "protocol.ts: `Trace.traceId` may be null here but the server never sends null"),
        // Another type, another enum value, another variant, another method table.
        (edit(&ts, "per chatId. */\n  seq: number;", "per chatId. */\n  seq: string;"), "protocol.ts: `AgentStreamParams.seq` is `string` here but the server sends `integer`"),
        (edit(&ts, "export type StepKind = 'agent' | 'code' | 'script';", "export type StepKind = 'agent' | 'code' | 'script' | 'loop';"), "protocol.ts: `StepKind` has the values"),
        (edit(&ts, "  | { type: 'thinking'; text: string }\n", ""), "protocol.ts: `StreamEvent[type=thinking]` is missing"),
        (edit(&ts, "{ params: GetRunParams; result: GetRunResult }", "{ params: GetRunParams; result: Run }"), "protocol.ts: `boo/getRun` carries GetRunParams → Run"),
        // The same in Lua.
        (edit(&lua, "---@field resumed boolean", "---@field resumedd boolean"), "protocol.lua: `RunStartedParams.resumed` is missing"),
        (edit(&lua, "---@field runStatus? boo.RunStatus", "---@field runStatus boo.RunStatus"), "protocol.lua: `StepUpdatedParams.runStatus` is required here but the server may leave it out"),
        (edit(&lua, "---@field finishedAt string|nil\n\n---@class boo.Run", "---@field finishedAt string\n\n---@class boo.Run"), "protocol.lua: `RunSummary.finishedAt` cannot be null here but the server may send null"),
        (edit(&lua, "---@field seq integer 1, 2, 3, … per chatId", "---@field seq number 1, 2, 3, … per chatId"), "protocol.lua: `AgentStreamParams.seq` is `float` here but the server sends `integer`"),
        (edit(&lua, "  ['boo/trace'] = 'boo.TraceParams',\n", ""), "protocol.lua: `boo/trace` is missing from the notification table"),
    ];
    for (src, expected) in cases {
        let failures = if expected.starts_with("protocol.ts") {
            check_ts(&server, &src).0
        } else {
            check_lua(&server, &src).0
        };
        assert!(
            failures.iter().any(|f| f.starts_with(expected)),
            "expected a failure starting `{expected}`, got:\n{}",
            failures.join("\n")
        );
    }
}
