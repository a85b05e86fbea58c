//! `agent(prompt, { schema })`: the instruction appended to the prompt, the JSON read
//! back from the reply, and a small JSON Schema validator.
//!
//! Supported keywords: `type` (a name or an array of names), `properties`,
//! `required`, `additionalProperties` (a boolean or a schema), `items` (one schema),
//! `enum`, `const`, `minItems`/`maxItems`, `minLength`/`maxLength` (in characters),
//! `minimum`/`maximum`, `exclusiveMinimum`/`exclusiveMaximum` (numbers), `anyOf`,
//! `oneOf`, `allOf`, and the boolean schemas `true`/`false`. Other keywords
//! (`title`, `description`, `$schema`, `format`, `pattern`, …) are accepted and not
//! checked. A schema that misuses a supported keyword is refused when `agent()` is
//! called, naming the keyword's path.

use serde_json::Value;

const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "integer", "string",
];

/// What is appended to the prompt of a schema call.
pub fn instruction(schema: &Value) -> String {
    let pretty = serde_json::to_string_pretty(schema).unwrap_or_else(|_| schema.to_string());
    format!(
        "\n\n---\nAnswer format: finish your reply with one JSON value that conforms to the \
         JSON Schema below, inside a ```json fenced block. Only the last ```json block of \
         your reply is read; it must be valid JSON (no comments, no trailing commas).\n\n\
         JSON Schema:\n```json\n{pretty}\n```"
    )
}

/// What is appended (after the instruction) when the previous attempt was refused.
pub fn retry_note(attempt: u32, max: u32, error: &str) -> String {
    format!(
        "\n\nYour previous answer was refused: {error}\nThis is attempt {attempt} of {max}. \
         Reply again, finishing with one ```json block whose value conforms to the schema."
    )
}

/// The JSON value of a reply: the last ```json fenced block, else the whole text,
/// else the last untagged ``` block.
pub fn extract_json(text: &str) -> Result<Value, String> {
    let blocks = fenced_blocks(text);
    if let Some((_, body)) = blocks.iter().rev().find(|(info, _)| info == "json") {
        return serde_json::from_str(body)
            .map_err(|e| format!("the last ```json block is not valid JSON ({e})"));
    }
    let whole = serde_json::from_str::<Value>(text.trim());
    match whole {
        Ok(v) => Ok(v),
        Err(e) => {
            if let Some((_, body)) = blocks.iter().rev().find(|(info, _)| info.is_empty()) {
                if let Ok(v) = serde_json::from_str(body) {
                    return Ok(v);
                }
            }
            Err(format!(
                "the reply has no ```json block and is not JSON itself ({e})"
            ))
        }
    }
}

/// (info string lowercased, body) of every closed fenced block.
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize, Vec<&str>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let ticks = trimmed.chars().take_while(|&c| c == '`').count();
        match &mut open {
            None => {
                if ticks >= 3 {
                    let info = trimmed[ticks..].trim().to_ascii_lowercase();
                    if !info.contains('`') {
                        open = Some((info, ticks, Vec::new()));
                    }
                }
            }
            Some((info, fence, body)) => {
                if ticks >= *fence && trimmed[ticks..].trim().is_empty() {
                    out.push((std::mem::take(info), body.join("\n")));
                    open = None;
                } else {
                    body.push(line);
                }
            }
        }
    }
    out
}

/// Check that `schema` uses the supported keywords correctly; the error names the
/// keyword's path (`schema.properties.name.type`).
pub fn check_schema(schema: &Value) -> Result<(), String> {
    check_at(schema, "schema")
}

fn check_at(schema: &Value, path: &str) -> Result<(), String> {
    let obj = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(format!("{path} must be an object (or true/false)")),
    };
    if let Some(t) = obj.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(items) if !items.is_empty() => items.iter().collect(),
            Value::String(_) => vec![t],
            _ => {
                return Err(format!(
                    "{path}.type must be a type name or a non-empty array of them"
                ))
            }
        };
        for n in names {
            match n.as_str() {
                Some(s) if TYPES.contains(&s) => {}
                _ => {
                    return Err(format!(
                        "{path}.type: unknown type {n} (use one of {})",
                        TYPES.join(", ")
                    ))
                }
            }
        }
    }
    if let Some(p) = obj.get("properties") {
        let Value::Object(props) = p else {
            return Err(format!("{path}.properties must be an object"));
        };
        for (k, v) in props {
            check_at(v, &format!("{path}.properties{}", key_path(k)))?;
        }
    }
    if let Some(r) = obj.get("required") {
        match r {
            Value::Array(items) if items.iter().all(Value::is_string) => {}
            _ => return Err(format!("{path}.required must be an array of strings")),
        }
    }
    if let Some(a) = obj.get("additionalProperties") {
        check_at(a, &format!("{path}.additionalProperties"))?;
    }
    if let Some(i) = obj.get("items") {
        if i.is_array() {
            return Err(format!(
                "{path}.items must be one schema (tuple forms are not supported)"
            ));
        }
        check_at(i, &format!("{path}.items"))?;
    }
    if let Some(e) = obj.get("enum") {
        if !e.is_array() {
            return Err(format!("{path}.enum must be an array"));
        }
    }
    for key in ["minItems", "maxItems", "minLength", "maxLength"] {
        if let Some(v) = obj.get(key) {
            if v.as_u64().is_none() {
                return Err(format!("{path}.{key} must be a non-negative integer"));
            }
        }
    }
    for key in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
        if let Some(v) = obj.get(key) {
            if !v.is_number() {
                return Err(format!("{path}.{key} must be a number"));
            }
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(v) = obj.get(key) {
            match v {
                Value::Array(items) if !items.is_empty() => {
                    for (i, s) in items.iter().enumerate() {
                        check_at(s, &format!("{path}.{key}[{i}]"))?;
                    }
                }
                _ => return Err(format!("{path}.{key} must be a non-empty array of schemas")),
            }
        }
    }
    Ok(())
}

/// Validate `value` against a schema that passed [`check_schema`]. Each error names
/// the value's path (`$`, `$.name`, `$.items[2]`); at most 20 are listed.
pub fn validate(value: &Value, schema: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    validate_at(value, schema, "$", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        errors.truncate(20);
        Err(errors)
    }
}

fn key_path(key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        format!(".{key}")
    } else {
        format!("[{}]", Value::String(key.to_string()))
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn has_type(v: &Value, name: &str) -> bool {
    match name {
        "integer" => is_integer(v),
        "number" => v.is_number(),
        other => type_of(v) == other,
    }
}

/// JSON equality with numbers compared by value (1 == 1.0).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}…")
    } else {
        s
    }
}

fn validate_at(value: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    let obj = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errors.push(format!("{path}: no value is allowed here"));
            return;
        }
        Value::Object(o) => o,
        _ => return,
    };
    if let Some(t) = obj.get("type") {
        let names: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|n| has_type(value, n)) {
            errors.push(format!(
                "{path}: expected {}, got {}",
                names.join(" or "),
                type_of(value)
            ));
            // Further checks would only repeat the mismatch.
            return;
        }
    }
    if let Some(Value::Array(options)) = obj.get("enum") {
        if !options.iter().any(|o| json_eq(o, value)) {
            let list: Vec<String> = options.iter().map(show).collect();
            errors.push(format!(
                "{path}: must be one of {} (got {})",
                list.join(", "),
                show(value)
            ));
        }
    }
    if let Some(c) = obj.get("const") {
        if !json_eq(c, value) {
            errors.push(format!("{path}: must be {} (got {})", show(c), show(value)));
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(required)) = obj.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        errors.push(format!("{path}: missing required property `{r}`"));
                    }
                }
            }
            let props = obj.get("properties").and_then(Value::as_object);
            for (k, v) in map {
                let child = format!("{path}{}", key_path(k));
                match props.and_then(|p| p.get(k)) {
                    Some(s) => validate_at(v, s, &child, errors),
                    None => match obj.get("additionalProperties") {
                        Some(Value::Bool(false)) => errors.push(format!(
                            "{path}: unexpected property `{k}` (additionalProperties is false)"
                        )),
                        Some(s @ Value::Object(_)) => validate_at(v, s, &child, errors),
                        _ => {}
                    },
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = obj.get("minItems").and_then(Value::as_u64) {
                if n < min {
                    errors.push(format!("{path}: expected at least {min} items, got {n}"));
                }
            }
            if let Some(max) = obj.get("maxItems").and_then(Value::as_u64) {
                if n > max {
                    errors.push(format!("{path}: expected at most {max} items, got {n}"));
                }
            }
            if let Some(s) = obj.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(item, s, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::String(s) => {
            let n = s.chars().count() as u64;
            if let Some(min) = obj.get("minLength").and_then(Value::as_u64) {
                if n < min {
                    errors.push(format!(
                        "{path}: expected at least {min} characters, got {n}"
                    ));
                }
            }
            if let Some(max) = obj.get("maxLength").and_then(Value::as_u64) {
                if n > max {
                    errors.push(format!(
                        "{path}: expected at most {max} characters, got {n}"
                    ));
                }
            }
        }
        Value::Number(num) => {
            let x = num.as_f64().unwrap_or(f64::NAN);
            let bound = |key: &str| obj.get(key).and_then(Value::as_f64);
            if let Some(min) = bound("minimum") {
                if x < min {
                    errors.push(format!("{path}: must be >= {min}, got {num}"));
                }
            }
            if let Some(max) = bound("maximum") {
                if x > max {
                    errors.push(format!("{path}: must be <= {max}, got {num}"));
                }
            }
            if let Some(min) = bound("exclusiveMinimum") {
                if x <= min {
                    errors.push(format!("{path}: must be > {min}, got {num}"));
                }
            }
            if let Some(max) = bound("exclusiveMaximum") {
                if x >= max {
                    errors.push(format!("{path}: must be < {max}, got {num}"));
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Array(all)) = obj.get("allOf") {
        for s in all {
            validate_at(value, s, path, errors);
        }
    }
    if let Some(Value::Array(any)) = obj.get("anyOf") {
        let mut why = Vec::new();
        let mut matched = false;
        for (i, s) in any.iter().enumerate() {
            let mut sub = Vec::new();
            validate_at(value, s, path, &mut sub);
            if sub.is_empty() {
                matched = true;
                break;
            }
            why.push(format!("#{}: {}", i + 1, sub.join(", ")));
        }
        if !matched {
            errors.push(format!(
                "{path}: matches none of the anyOf alternatives ({})",
                why.join("; ")
            ));
        }
    }
    if let Some(Value::Array(one)) = obj.get("oneOf") {
        let mut why = Vec::new();
        let mut matched = Vec::new();
        for (i, s) in one.iter().enumerate() {
            let mut sub = Vec::new();
            validate_at(value, s, path, &mut sub);
            if sub.is_empty() {
                matched.push(format!("#{}", i + 1));
            } else {
                why.push(format!("#{}: {}", i + 1, sub.join(", ")));
            }
        }
        match matched.len() {
            1 => {}
            0 => errors.push(format!(
                "{path}: matches none of the oneOf alternatives ({})",
                why.join("; ")
            )),
            _ => errors.push(format!(
                "{path}: matches {} of the oneOf alternatives ({}); exactly one must match",
                matched.len(),
                matched.join(", ")
            )),
        }
    }
}
