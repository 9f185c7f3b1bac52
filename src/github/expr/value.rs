//! The values expressions compute with, and GitHub's rules for converting between them.
//!
//! Arrays and objects sit behind an `Arc`: GitHub compares them by identity (`github.event ==
//! github.event` is true, two `fromJSON('[]')` are not equal), which `Arc::ptr_eq` gives, and
//! reading a large context such as `github.event` copies a pointer, not the payload.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// A value of GitHub's expression language: what a context holds and what an expression yields.
///
/// `PartialEq` is structural (for tests and callers); the language's own `==` is
/// [`loose_eq`], which coerces and compares arrays and objects by identity.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Arc<Vec<Value>>),
    Object(Arc<Object>),
}

/// An object: keys in insertion order (toJSON and `.*` keep it), looked up ignoring case as
/// GitHub does for every context except `env`, whose keys are case-sensitive.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object {
    entries: Vec<(String, Value)>,
    case_sensitive: bool,
}

impl Object {
    /// An object whose keys are compared ignoring case (GitHub's `DictionaryContextData`).
    pub fn new() -> Object {
        Object::default()
    }

    /// An object whose keys are compared exactly, as the runner keeps the `env` context.
    pub fn case_sensitive() -> Object {
        Object {
            entries: Vec::new(),
            case_sensitive: true,
        }
    }

    /// Sets `key`; a key already present (under this object's comparison) keeps its place and
    /// its spelling and takes the new value, as the runner's dictionaries do.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.position(&key) {
            Some(i) => self.entries[i].1 = value,
            None => self.entries.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_case_sensitive(&self) -> bool {
        self.case_sensitive
    }

    fn position(&self, key: &str) -> Option<usize> {
        if self.case_sensitive {
            self.entries.iter().position(|(k, _)| k == key)
        } else {
            // An exact match first: cheaper, and the right one if keys differ only by case.
            self.entries.iter().position(|(k, _)| k == key).or_else(|| {
                self.entries
                    .iter()
                    .position(|(k, _)| eq_ignore_case(k, key))
            })
        }
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Object {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Object {
        let mut object = Object::new();
        for (k, v) in iter {
            object.insert(k, v);
        }
        object
    }
}

impl Value {
    /// An array value.
    pub fn array(items: Vec<Value>) -> Value {
        Value::Array(Arc::new(items))
    }

    /// An object value (case-insensitive keys).
    pub fn object<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(Arc::new(entries.into_iter().collect()))
    }

    /// The kind's name as the runner spells it in messages and in string conversion.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "Null",
            Value::Bool(_) => "Boolean",
            Value::Number(_) => "Number",
            Value::String(_) => "String",
            Value::Array(_) => "Array",
            Value::Object(_) => "Object",
        }
    }

    /// Null, boolean, number or string: the kinds functions such as `contains` accept as text.
    pub fn is_primitive(&self) -> bool {
        !matches!(self, Value::Array(_) | Value::Object(_))
    }

    /// GitHub's truthiness: `false`, `0`, `-0`, `NaN`, `''` and `null` are false, everything
    /// else (every array and object included) is true.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => !(*n == 0.0 || n.is_nan()),
            Value::String(s) => !s.is_empty(),
            Value::Array(_) | Value::Object(_) => true,
        }
    }

    /// The number this value coerces to: null 0, booleans 0/1, strings parsed like
    /// JavaScript's `Number()` (empty 0, otherwise NaN when not a number), arrays and objects
    /// NaN (the docs' coercion table).
    pub fn to_number(&self) -> f64 {
        match self {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => *n,
            Value::String(s) => parse_number(s),
            Value::Array(_) | Value::Object(_) => f64::NAN,
        }
    }

    /// The text a value becomes where a string is needed (interpolation, `format`, `join`):
    /// null is empty, numbers are rendered as the runner renders them, and arrays and objects
    /// become the words `Array` and `Object` (the runner's `ConvertToString`); `toJSON` is the
    /// way to print their content.
    pub fn to_github_string(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => format_number(*n),
            Value::String(s) => s.clone(),
            Value::Array(_) | Value::Object(_) => self.kind_name().to_string(),
        }
    }

    /// `toJSON`'s text: indented by two spaces, `": "` between key and value, numbers as
    /// GitHub renders them (so `3.10` is `3.1`), as the runner's `ToJson` writes it.
    pub fn to_json_pretty(&self) -> String {
        let mut out = String::new();
        write_json(self, 0, &mut out);
        out
    }

    /// This value as serde_json's, for machine-readable output; NaN and infinities, which JSON
    /// cannot hold, become null.
    pub fn to_serde_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => json_number(*n),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_serde_json).collect())
            }
            Value::Object(o) => serde_json::Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_string(), v.to_serde_json()))
                    .collect(),
            ),
        }
    }
}

/// Whole numbers within f64's exact range stay integers in JSON (`1`, not `1.0`).
fn json_number(n: f64) -> serde_json::Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= EXACT {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Value {
        Value::Number(n)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::array(items)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Value {
        Value::Object(Arc::new(o))
    }
}

/// serde_json's map is sorted unless its `preserve_order` feature is on; prefer
/// `serde_json::from_str::<Value>`, which keeps the text's order.
impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::array(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => {
                Value::object(map.into_iter().map(|(k, v)| (k, Value::from(v))))
            }
        }
    }
}

/// Reading JSON straight into a [`Value`] keeps object keys in the text's order (as the
/// runner's `fromJSON` does) and makes every object case-insensitive, a later duplicate key
/// replacing the earlier one.
impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Value::Number(n))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Object::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        Ok(Value::from(object))
    }
}

/// Renders a number as the runner does (.NET's `"G15"`: at most 15 significant digits, no
/// trailing zeros, scientific notation from 1E+15 up and below 0.0001, exponent of at least two
/// digits) so that `3.10` is `3.1`, `1.0` is `1`, `0.1 + 0.2`-style noise disappears and
/// `-0` is `0` (the runner maps negative zero to `0` on purpose).
pub fn format_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_string();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if n == 0.0 {
        return "0".to_string();
    }
    // Rust rounds correctly to 15 significant digits, as .NET Core 3.0 and later do.
    let sci = format!("{:.14e}", n.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::new();
    if n < 0.0 {
        out.push('-');
    }
    if !(-4..15).contains(&exponent) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("E{sign}{:02}", exponent.abs()));
    } else if exponent >= 0 {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
        out.push_str(digits);
    }
    out
}

/// A string's number as the runner reads it (for comparisons and for number literals): trimmed;
/// empty is 0; a decimal with optional sign, point and exponent; `Infinity`/`-Infinity`;
/// `0x` hexadecimal and `0o` octal read as a 32-bit signed integer (so `0xffffffff` is -1, as
/// .NET's `Int32` parse gives); anything else NaN.
pub fn parse_number(text: &str) -> f64 {
    let s = text.trim();
    if s.is_empty() {
        return 0.0;
    }
    if is_decimal(s) {
        return s.parse().unwrap_or(f64::NAN);
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return radix_i32(hex, 16);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return radix_i32(oct, 8);
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.eq_ignore_ascii_case("infinity") {
        return if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    f64::NAN
}

/// `[+-]digits[.digits][e[+-]digits]`, at least one digit before the exponent: what .NET's
/// `Double.TryParse` takes with the runner's number styles (Rust's parser alone would also take
/// `inf` and `nan`).
fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// Digits in `radix` as a 32-bit two's-complement integer; more than 32 bits is NaN.
fn radix_i32(digits: &str, radix: u32) -> f64 {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return f64::NAN;
    }
    match u64::from_str_radix(digits.trim_start_matches('0').max("0"), radix) {
        Ok(n) if n <= u64::from(u32::MAX) => f64::from(n as u32 as i32),
        _ => f64::NAN,
    }
}

/// One character folded for comparison ignoring case. .NET's `OrdinalIgnoreCase` maps each
/// character to its simple uppercase; a character whose uppercase is several (ß) stays itself.
fn fold(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// A string folded character by character (same number of characters as the input).
pub(crate) fn fold_str(s: &str) -> String {
    s.chars().map(fold).collect()
}

pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    a == b || a.chars().map(fold).eq(b.chars().map(fold))
}

fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    a.chars().map(fold).cmp(b.chars().map(fold))
}

/// Two operands after GitHub's coercion (JavaScript's abstract comparison, except that strings
/// compare ignoring case and arrays/objects are never converted): a number against a string
/// compares numbers, a boolean or null against anything becomes a number first.
enum Coerced<'a> {
    Null,
    Bool(bool),
    Number(f64),
    String(&'a str),
    Array(&'a Arc<Vec<Value>>),
    Object(&'a Arc<Object>),
}

impl<'a> Coerced<'a> {
    fn of(v: &'a Value) -> Coerced<'a> {
        match v {
            Value::Null => Coerced::Null,
            Value::Bool(b) => Coerced::Bool(*b),
            Value::Number(n) => Coerced::Number(*n),
            Value::String(s) => Coerced::String(s),
            Value::Array(a) => Coerced::Array(a),
            Value::Object(o) => Coerced::Object(o),
        }
    }

    fn number(&self) -> f64 {
        match self {
            Coerced::Null => 0.0,
            Coerced::Bool(b) => f64::from(u8::from(*b)),
            Coerced::Number(n) => *n,
            Coerced::String(s) => parse_number(s),
            Coerced::Array(_) | Coerced::Object(_) => f64::NAN,
        }
    }

    fn is_null_or_bool(&self) -> bool {
        matches!(self, Coerced::Null | Coerced::Bool(_))
    }
}

fn coerce<'a>(a: &'a Value, b: &'a Value) -> (Coerced<'a>, Coerced<'a>) {
    let (mut l, mut r) = (Coerced::of(a), Coerced::of(b));
    // At most two rounds: each turns a null or boolean into a number.
    for _ in 0..2 {
        match (&l, &r) {
            (Coerced::Number(_), Coerced::String(_)) => r = Coerced::Number(r.number()),
            (Coerced::String(_), Coerced::Number(_)) => l = Coerced::Number(l.number()),
            _ if std::mem::discriminant(&l) == std::mem::discriminant(&r) => {}
            _ if l.is_null_or_bool() => l = Coerced::Number(l.number()),
            _ if r.is_null_or_bool() => r = Coerced::Number(r.number()),
            _ => {}
        }
    }
    (l, r)
}

/// GitHub's `==`: coerced as `coerce` says, NaN equal to nothing, strings equal ignoring
/// case, arrays and objects equal only to themselves; operands of kinds that stay different
/// (a string and an array) are unequal.
pub fn loose_eq(a: &Value, b: &Value) -> bool {
    match coerce(a, b) {
        (Coerced::Null, Coerced::Null) => true,
        (Coerced::Number(x), Coerced::Number(y)) => x == y,
        (Coerced::String(x), Coerced::String(y)) => eq_ignore_case(x, y),
        (Coerced::Bool(x), Coerced::Bool(y)) => x == y,
        (Coerced::Array(x), Coerced::Array(y)) => Arc::ptr_eq(x, y),
        (Coerced::Object(x), Coerced::Object(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// The order `<` and `>` see: `None` when the operands do not compare (NaN, arrays, objects,
/// kinds that stay different, or two nulls, which are equal but neither less nor greater).
pub fn loose_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match coerce(a, b) {
        (Coerced::Number(x), Coerced::Number(y)) => x.partial_cmp(&y),
        (Coerced::String(x), Coerced::String(y)) => Some(cmp_ignore_case(x, y)),
        (Coerced::Bool(x), Coerced::Bool(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

fn write_json(v: &Value, level: usize, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format_number(*n)),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(level + 1, out);
                write_json(item, level + 1, out);
            }
            newline_indent(level, out);
            out.push(']');
        }
        Value::Object(o) if o.is_empty() => out.push_str("{}"),
        Value::Object(o) => {
            out.push('{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(level + 1, out);
                write_json_string(k, out);
                out.push_str(": ");
                write_json(item, level + 1, out);
            }
            newline_indent(level, out);
            out.push('}');
        }
    }
}

fn newline_indent(level: usize, out: &mut String) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', level * 2));
}

/// A JSON string as Newtonsoft's `JsonConvert.ToString` writes it: quotes, backslashes and
/// control characters escaped (`\n` & co. by name, the rest as lowercase `\u00xx`), and also
/// U+0085, U+2028 and U+2029, which JavaScript reads as line breaks.
fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_render_as_the_runner_renders_them() {
        let cases: &[(f64, &str)] = &[
            (3.10, "3.1"),
            (1.0, "1"),
            (-9.2, "-9.2"),
            (711.0, "711"),
            (255.0, "255"),
            (-0.0299, "-0.0299"),
            (0.1 + 0.2, "0.3"),
            (-0.0, "0"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1E+15"),
            (1234567890123456.0, "1.23456789012346E+15"),
            (0.0001, "0.0001"),
            (0.00001, "1E-05"),
            (1.5e-7, "1.5E-07"),
            (1e100, "1E+100"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (100.0, "100"),
            (0.5, "0.5"),
        ];
        for (n, want) in cases {
            assert_eq!(format_number(*n), *want, "rendering {n:?}");
        }
    }

    #[test]
    fn strings_read_as_numbers_like_javascripts_number() {
        let cases: &[(&str, f64)] = &[
            ("", 0.0),
            ("  ", 0.0),
            (" 123456.789 ", 123456.789),
            ("+5", 5.0),
            ("-2.99e-2", -0.0299),
            ("1.", 1.0),
            (".5", 0.5),
            ("0xff", 255.0),
            ("0xFF", 255.0),
            ("0xffffffff", -1.0),
            ("0o10", 8.0),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (s, want) in cases {
            assert_eq!(parse_number(s), *want, "reading {s:?}");
        }
        for s in [
            "abc",
            "1e",
            "0x",
            "0x1g",
            "0XFF",
            "0x100000000",
            "nan",
            "inf",
            "1,000",
            ".",
        ] {
            assert!(parse_number(s).is_nan(), "{s:?} should be NaN");
        }
    }

    #[test]
    fn to_json_is_indented_like_the_runner() {
        let v = Value::object([
            ("name", Value::from("a\"b\n")),
            ("n", Value::from(3.10)),
            ("list", Value::array(vec![Value::from(true), Value::Null])),
            ("empty", Value::array(vec![])),
            ("obj", Value::object(Vec::<(String, Value)>::new())),
        ]);
        assert_eq!(
            v.to_json_pretty(),
            "{\n  \"name\": \"a\\\"b\\n\",\n  \"n\": 3.1,\n  \"list\": [\n    true,\n    null\n  ],\n  \"empty\": [],\n  \"obj\": {}\n}"
        );
        assert_eq!(Value::from("\u{1}").to_json_pretty(), "\"\\u0001\"");
    }

    #[test]
    fn objects_look_keys_up_ignoring_case_except_when_case_sensitive() {
        let mut o = Object::new();
        o.insert("Foo", Value::from(1.0));
        o.insert("FOO", Value::from(2.0));
        assert_eq!(o.len(), 1);
        assert_eq!(o.get("foo"), Some(&Value::from(2.0)));
        assert_eq!(o.iter().next().map(|(k, _)| k), Some("Foo"));

        let mut env = Object::case_sensitive();
        env.insert("Foo", Value::from(1.0));
        env.insert("FOO", Value::from(2.0));
        assert_eq!(env.len(), 2);
        assert_eq!(env.get("foo"), None);
        assert_eq!(env.get("FOO"), Some(&Value::from(2.0)));
    }

    #[test]
    fn json_keeps_key_order_and_makes_numbers_f64() {
        let v: Value = serde_json::from_str(r#"{"z": 1, "a": [2, 3.5], "m": null}"#)
            .expect("test JSON is valid");
        let Value::Object(o) = &v else {
            panic!("expected an object, got {v:?}")
        };
        let keys: Vec<&str> = o.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["z", "a", "m"]);
        assert_eq!(
            o.get("A"),
            Some(&Value::array(vec![2.0.into(), 3.5.into()]))
        );
    }

    #[test]
    fn to_serde_json_keeps_integers_whole() {
        let v = Value::array(vec![3.0.into(), 3.1.into(), f64::NAN.into()]);
        assert_eq!(v.to_serde_json().to_string(), "[3,3.1,null]");
    }
}
