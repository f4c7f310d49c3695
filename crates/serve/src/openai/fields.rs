//! Reading a request body field by field: each getter checks one field's type and range and
//! names it in the 400 it returns; [`Fields::finish`] then refuses every field no getter read,
//! except those safe to ignore.

use crate::error::ApiError;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Fields OpenAI clients may send that change nothing tasklm computes (listed in the README).
pub const SAFE_TO_IGNORE: &[&str] = &[
    "user",
    "metadata",
    "store",
    "service_tier",
    "parallel_tool_calls",
    "prompt_cache_key",
    "safety_identifier",
];

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// A request body being read.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    read: HashSet<&'static str>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Fields<'a> {
    /// The body must be a JSON object.
    pub fn new(body: &'a Value) -> ApiResult<Self> {
        let obj = body.as_object().ok_or_else(|| {
            ApiError::bad_request(format!(
                "the request body must be a JSON object, got {}",
                type_name(body)
            ))
        })?;
        Ok(Self {
            obj,
            read: HashSet::new(),
        })
    }

    /// The raw value of a field (absent and `null` both give None).
    pub fn raw(&mut self, name: &'static str) -> Option<&'a Value> {
        self.read.insert(name);
        self.obj.get(name).filter(|v| !v.is_null())
    }

    fn wrong(name: &str, expected: &str, v: &Value) -> ApiError {
        ApiError::invalid(
            name,
            format!("`{name}` must be {expected}, got {}", type_name(v)),
        )
    }

    pub fn required(&mut self, name: &'static str) -> ApiResult<&'a Value> {
        self.raw(name)
            .ok_or_else(|| ApiError::invalid(name, format!("`{name}` is required")))
    }

    pub fn string(&mut self, name: &'static str) -> ApiResult<Option<&'a str>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(Self::wrong(name, "a string", v)),
        }
    }

    pub fn boolean(&mut self, name: &'static str) -> ApiResult<Option<bool>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(Self::wrong(name, "a boolean", v)),
        }
    }

    /// A number in `[lo, hi]`.
    pub fn number(&mut self, name: &'static str, lo: f64, hi: f64) -> ApiResult<Option<f64>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if x >= lo && x <= hi {
                    Ok(Some(x))
                } else {
                    Err(ApiError::invalid(
                        name,
                        format!("`{name}` must be between {lo} and {hi}, got {n}"),
                    ))
                }
            }
            Some(v) => Err(Self::wrong(name, "a number", v)),
        }
    }

    /// An integer in `[lo, hi]`.
    pub fn integer(&mut self, name: &'static str, lo: i64, hi: i64) -> ApiResult<Option<i64>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(x) if x >= lo && x <= hi => Ok(Some(x)),
                Some(_) => Err(ApiError::invalid(
                    name,
                    format!("`{name}` must be an integer from {lo} to {hi}, got {n}"),
                )),
                None => Err(ApiError::invalid(
                    name,
                    format!("`{name}` must be an integer, got {n}"),
                )),
            },
            Some(v) => Err(Self::wrong(name, "an integer", v)),
        }
    }

    /// `stop`: a string or an array of up to 4 non-empty strings.
    pub fn stop(&mut self) -> ApiResult<Vec<String>> {
        let list = match self.raw("stop") {
            None => return Ok(Vec::new()),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, v) in a.iter().enumerate() {
                    match v {
                        Value::String(s) => out.push(s.clone()),
                        other => {
                            return Err(ApiError::invalid(
                                &format!("stop[{i}]"),
                                format!("`stop[{i}]` must be a string, got {}", type_name(other)),
                            ))
                        }
                    }
                }
                out
            }
            Some(v) => return Err(Self::wrong("stop", "a string or an array of strings", v)),
        };
        if list.len() > 4 {
            return Err(ApiError::invalid(
                "stop",
                format!("`stop` may hold at most 4 strings, got {}", list.len()),
            ));
        }
        if list.iter().any(String::is_empty) {
            return Err(ApiError::invalid(
                "stop",
                "`stop` strings must not be empty",
            ));
        }
        Ok(list)
    }

    /// A field tasklm accepts only at its neutral value (`presence_penalty: 0`, ...): any other
    /// value is a 400 naming it.
    pub fn only_neutral(
        &mut self,
        name: &'static str,
        neutral: fn(&Value) -> bool,
    ) -> ApiResult<()> {
        match self.raw(name) {
            Some(v) if !neutral(v) => Err(ApiError::unsupported(
                name,
                format!("`{name}` is not supported by this server (only its default value is)"),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses every field not read, except [`SAFE_TO_IGNORE`].
    pub fn finish(self) -> ApiResult<()> {
        let mut keys: Vec<&String> = self.obj.keys().collect();
        keys.sort();
        for k in keys {
            if !self.read.contains(k.as_str()) && !SAFE_TO_IGNORE.contains(&k.as_str()) {
                return Err(ApiError::unsupported(k, format!("unsupported field `{k}`")));
            }
        }
        Ok(())
    }
}

/// A field that holds token sequences as OpenAI's prompt and embedding input do: a string, an
/// array of strings, an array of token ids, or an array of such arrays. Strings go through
/// `tokenize`; ids must be below `vocab`; at most `max` sequences.
pub fn token_sequences(
    v: &Value,
    field: &str,
    vocab: usize,
    max: usize,
    tokenize: impl Fn(&str) -> ApiResult<Vec<u32>>,
) -> ApiResult<Vec<Vec<u32>>> {
    let ids = |arr: &[Value], at: &str| -> ApiResult<Vec<u32>> {
        arr.iter()
            .enumerate()
            .map(|(i, x)| match x.as_u64() {
                Some(id) if id < vocab as u64 => Ok(id as u32),
                _ => Err(ApiError::invalid(
                    &format!("{at}[{i}]"),
                    format!("`{at}[{i}]` must be a token id below {vocab}"),
                )),
            })
            .collect()
    };
    let out = match v {
        Value::String(s) => vec![tokenize(s)?],
        Value::Array(a) if a.is_empty() => {
            return Err(ApiError::invalid(
                field,
                format!("`{field}` must not be empty"),
            ))
        }
        Value::Array(a) if a.iter().all(Value::is_number) => vec![ids(a, field)?],
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::String(s) => tokenize(s),
                Value::Array(inner) => ids(inner, &format!("{field}[{i}]")),
                _ => Err(ApiError::invalid(
                    &format!("{field}[{i}]"),
                    format!("`{field}[{i}]` must be a string or an array of token ids"),
                )),
            })
            .collect::<ApiResult<Vec<_>>>()?,
        _ => {
            return Err(ApiError::invalid(
                field,
                format!("`{field}` must be a string, an array of strings, or token ids"),
            ))
        }
    };
    if out.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("at most {max} {field}s per request, got {}", out.len()),
        ));
    }
    Ok(out)
}

pub fn is_zero(v: &Value) -> bool {
    v.as_f64() == Some(0.0)
}

pub fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

pub fn is_one(v: &Value) -> bool {
    v.as_f64() == Some(1.0)
}

pub fn is_false(v: &Value) -> bool {
    v == &Value::Bool(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named_and_ignorable_ones_pass() {
        let body = json!({"temperature": 0.5, "user": "u", "frobnicate": 1});
        let mut f = Fields::new(&body).unwrap();
        assert_eq!(f.number("temperature", 0.0, 2.0).unwrap(), Some(0.5));
        let e = f.finish().unwrap_err();
        assert_eq!(e.param.as_deref(), Some("frobnicate"));
        assert_eq!(e.status, 400);
    }

    #[test]
    fn out_of_range_and_wrong_types_name_the_field() {
        let body = json!({"temperature": 3.0, "n": "two", "stop": ["a", 1]});
        let mut f = Fields::new(&body).unwrap();
        let e = f.number("temperature", 0.0, 2.0).unwrap_err();
        assert!(e.message.contains("between 0 and 2"), "{}", e.message);
        let e = f.integer("n", 1, 8).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("n"));
        let e = f.stop().unwrap_err();
        assert_eq!(e.param.as_deref(), Some("stop[1]"));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        let body = json!([1, 2]);
        let e = Fields::new(&body).err().unwrap();
        assert!(e.message.contains("an array"));
    }

    #[test]
    fn neutral_values_pass_and_others_are_unsupported() {
        let body = json!({"presence_penalty": 0, "frequency_penalty": 0.5});
        let mut f = Fields::new(&body).unwrap();
        f.only_neutral("presence_penalty", is_zero).unwrap();
        let e = f.only_neutral("frequency_penalty", is_zero).unwrap_err();
        assert_eq!(e.code, Some("unsupported_parameter"));
    }
}
