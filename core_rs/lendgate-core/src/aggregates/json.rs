//! Extraction of the attributes the definitions read from JSON bytes, in one pass and
//! without building a document: the values at the [`PathTable`]'s paths are borrowed
//! from the input (strings without escapes are not copied), everything else is only
//! validated and skipped.
//!
//! The whole input is checked as strictly as `serde_json` parses it (UTF-8, the JSON
//! grammar, escapes and surrogates, nesting depth up to 128, nothing after the
//! document), so an event refused by one is refused by the other. Repeated keys
//! behave as in a parsed document: the last occurrence wins.

use super::value::{PathTable, Val};
use crate::error::{CoreError, CoreResult};
use std::borrow::Cow;

/// Nesting limit, as `serde_json`'s default recursion limit.
const MAX_DEPTH: usize = 128;

/// Values at the table's paths (slot order), borrowed from `bytes`.
pub(crate) fn extract<'a>(table: &PathTable, bytes: &'a [u8]) -> CoreResult<Vec<Option<Val<'a>>>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| CoreError::invalid("event", format!("not a JSON document: {e}")))?;
    let mut out = vec![None; table.len()];
    let mut p = Scanner {
        text,
        b: bytes,
        i: 0,
        table,
        out: &mut out,
        seen: vec![false; table.nodes.len()],
    };
    let result = p.document();
    match result {
        Ok(true) => Ok(out),
        Ok(false) => Err(CoreError::invalid(
            "event",
            "the event must be a JSON object",
        )),
        Err(why) => Err(CoreError::invalid(
            "event",
            format!("not a JSON document: {why} at byte {}", p.i),
        )),
    }
}

type Parse<T> = Result<T, &'static str>;

struct Scanner<'a, 't, 'o> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    table: &'t PathTable,
    out: &'o mut Vec<Option<Val<'a>>>,
    /// Trie nodes already met (a repeated key clears what the earlier one set).
    seen: Vec<bool>,
}

impl<'a> Scanner<'a, '_, '_> {
    /// The whole input: `Ok(true)` for an object, `Ok(false)` for any other valid JSON.
    fn document(&mut self) -> Parse<bool> {
        self.ws();
        let is_object = self.peek() == Some(b'{');
        if is_object {
            self.object(Some(0), 0)?;
        } else {
            self.skip_value(0)?;
        }
        self.ws();
        if self.i != self.b.len() {
            return Err("trailing characters");
        }
        Ok(is_object)
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn expect(&mut self, c: u8, what: &'static str) -> Parse<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(what)
        }
    }

    /// An object at `self.i` (on its `{`); `node` is its trie node when some path
    /// goes through it.
    fn object(&mut self, node: Option<usize>, depth: usize) -> Parse<()> {
        if depth >= MAX_DEPTH {
            return Err("recursion limit exceeded");
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err("expected a key");
            }
            let key = self.string()?;
            self.ws();
            self.expect(b':', "expected ':'")?;
            self.ws();
            let child = node.and_then(|n| self.table.nodes[n].child(&key).map(|c| c as usize));
            match child {
                Some(c) => self.value_at(c, depth + 1)?,
                None => self.skip_value(depth + 1)?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err("expected ',' or '}'"),
            }
        }
    }

    /// The value of trie node `c`.
    fn value_at(&mut self, c: usize, depth: usize) -> Parse<()> {
        let table = self.table;
        let node = &table.nodes[c];
        if std::mem::replace(&mut self.seen[c], true) {
            for &s in node.below.iter() {
                self.out[s as usize] = None;
            }
        }
        let start = self.i;
        let v = match self.peek() {
            Some(b'{') => {
                self.object((!node.children.is_empty()).then_some(c), depth)?;
                Some(Val::Raw(&self.text[start..self.i]))
            }
            Some(b'[') => {
                self.skip_value(depth)?;
                Some(Val::Raw(&self.text[start..self.i]))
            }
            Some(b'"') => Some(Val::Str(self.string()?)),
            Some(b't') => {
                self.literal(b"true")?;
                Some(Val::Bool(true))
            }
            Some(b'f') => {
                self.literal(b"false")?;
                Some(Val::Bool(false))
            }
            Some(b'n') => {
                self.literal(b"null")?;
                None
            }
            _ => Some(self.number()?),
        };
        if let Some(s) = node.slot {
            self.out[s as usize] = v;
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Parse<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err("expected a value")
        }
    }

    /// Any value, validated and skipped.
    fn skip_value(&mut self, depth: usize) -> Parse<()> {
        match self.peek() {
            Some(b'{') => self.object(None, depth),
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err("recursion limit exceeded");
                }
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    /// A string at `self.i` (on its opening quote), unescaped.
    fn string(&mut self) -> Parse<Cow<'a, str>> {
        let start = self.i + 1;
        self.i = special(self.b, start);
        match self.b.get(self.i) {
            None => return Err("EOF while parsing a string"),
            Some(b'"') => {
                let s = &self.text[start..self.i];
                self.i += 1;
                return Ok(Cow::Borrowed(s));
            }
            Some(b'\\') => {}
            Some(_) => return Err("control character in a string"),
        }
        let mut out = String::from(&self.text[start..self.i]);
        loop {
            match self.b.get(self.i) {
                None => return Err("EOF while parsing a string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.b.get(self.i) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.i += 1;
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !self.b[self.i..].starts_with(b"\\u") {
                                    return Err("lone leading surrogate in hex escape");
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err("lone leading surrogate in hex escape");
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err("lone trailing surrogate in hex escape");
                            } else {
                                hi
                            };
                            out.push(char::from_u32(code).ok_or("invalid unicode escape")?);
                            continue;
                        }
                        _ => return Err("invalid escape"),
                    };
                    self.i += 1;
                    out.push(c);
                }
                Some(c) if *c < 0x20 => return Err("control character in a string"),
                Some(_) => {
                    let run = self.i;
                    self.i = special(self.b, run);
                    out.push_str(&self.text[run..self.i]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Parse<u32> {
        let digits = self.b.get(self.i..self.i + 4).ok_or("EOF in hex escape")?;
        let mut n = 0u32;
        for d in digits {
            n = n * 16 + char::from(*d).to_digit(16).ok_or("invalid hex escape")?;
        }
        self.i += 4;
        Ok(n)
    }

    /// A number: an integer when it has neither fraction nor exponent and fits 64
    /// bits (signed, or unsigned when positive), a float otherwise.
    fn number(&mut self) -> Parse<Val<'a>> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let int_start = self.i;
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
            }
            _ => return Err("expected a value"),
        }
        let int_end = self.i;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err("invalid number");
            }
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err("invalid number");
            }
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            float = true;
        }
        if !float {
            let mut n: u64 = 0;
            let mut fits = true;
            for &d in &self.b[int_start..int_end] {
                match n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                {
                    Some(m) => n = m,
                    None => {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                if !neg {
                    return Ok(i64::try_from(n).map_or(Val::UInt(n), Val::Int));
                }
                // As serde_json: `-0` is the float -0.0.
                if n == 0 {
                    return Ok(Val::Float(-0.0));
                }
                if n <= 1u64 << 63 {
                    return Ok(Val::Int(0i64.wrapping_sub_unsigned(n)));
                }
            }
        }
        let x: f64 = self.text[start..self.i]
            .parse()
            .map_err(|_| "invalid number")?;
        if x.is_finite() {
            Ok(Val::Float(x))
        } else {
            Err("number out of range")
        }
    }
}

/// Index of the first byte at or after `i` that ends a plain run of a string: a quote,
/// a backslash or a control character (`b.len()` when none), eight bytes at a time.
#[inline]
fn special(b: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let q = w ^ (LO * u64::from(b'"'));
        let s = w ^ (LO * u64::from(b'\\'));
        // A byte is flagged when it is zero after the xor (or below 0x20); flags above
        // the first true one may be false, so only the lowest flag is used.
        let m = ((q.wrapping_sub(LO) & !q)
            | (s.wrapping_sub(LO) & !s)
            | (w.wrapping_sub(LO * 0x20) & !w))
            & HI;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b
        .get(i)
        .is_some_and(|c| *c != b'"' && *c != b'\\' && *c >= 0x20)
    {
        i += 1;
    }
    i
}
