//! Tokeniser: source text → tokens with byte spans.

use super::ExprError;

/// Operators; `precedence` gives the binding power of the binary ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    And,
    Or,
    Not,
    Nullish,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    NotIn,
    Range,
    Comma,
    Colon,
    Dot,
    Question,
    Assign,
    Semi,
}

impl Op {
    /// Binding power and right-associativity of a binary operator (ZEN's table:
    /// `??` binds tighter than arithmetic, and `^` is right-associative).
    pub(crate) fn binary(self) -> Option<(u8, bool)> {
        Some(match self {
            Op::Or => (10, false),
            Op::And => (15, false),
            Op::Eq | Op::Ne | Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::In | Op::NotIn => (20, false),
            Op::Add | Op::Sub => (30, false),
            Op::Mul | Op::Div | Op::Mod => (60, false),
            Op::Pow => (70, true),
            Op::Nullish => (80, false),
            _ => return None,
        })
    }

    /// Binding power of a prefix operator (`not` binds tighter than comparisons).
    pub(crate) fn prefix(self) -> Option<u8> {
        match self {
            Op::Not => Some(50),
            Op::Add | Op::Sub => Some(200),
            _ => None,
        }
    }

    pub(crate) fn is_comparison(self) -> bool {
        matches!(
            self,
            Op::Eq | Op::Ne | Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::In | Op::NotIn
        )
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Mod => "%",
            Op::Pow => "^",
            Op::And => "and",
            Op::Or => "or",
            Op::Not => "not",
            Op::Nullish => "??",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
            Op::In => "in",
            Op::NotIn => "not in",
            Op::Range => "..",
            Op::Comma => ",",
            Op::Colon => ":",
            Op::Dot => ".",
            Op::Question => "?",
            Op::Assign => "=",
            Op::Semi => ";",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Number(String),
    /// A single- or double-quoted string (no escapes, as in ZEN).
    Str(String),
    /// An identifier or name (`a`, `$`, `$root`, `#`, `null`, function names).
    Ident(String),
    Bool(bool),
    Op(Op),
    /// One of `( ) [ ] { }`.
    Bracket(char),
    Backtick,
    /// Literal text inside a template string.
    TplText(String),
    /// `${` inside a template string.
    TplOpen,
    /// `}` closing a template expression.
    TplClose,
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Number(n) => format!("number `{n}`"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Bool(b) => format!("`{b}`"),
            Tok::Op(op) => format!("`{}`", op.symbol()),
            Tok::Bracket(c) => format!("`{c}`"),
            Tok::Backtick => "`` ` ``".to_string(),
            Tok::TplText(_) => "template text".to_string(),
            Tok::TplOpen => "`${`".to_string(),
            Tok::TplClose => "`}`".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's start in the source.
    pub start: usize,
}

fn is_alpha(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '$' | '_' | '#')
}

fn is_alnum(c: char) -> bool {
    is_alpha(c) || c.is_ascii_digit()
}

/// Tokenises `src`; errors carry the byte offset of the offending character.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let mut lx = Lexer {
        src,
        bytes: src.as_bytes(),
        pos: 0,
        out: Vec::new(),
    };
    while lx.pos < lx.bytes.len() {
        lx.scan(false)?;
    }
    Ok(lx.out)
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: Vec<Token>,
}

impl Lexer<'_> {
    fn peek_char(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn byte_at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.out.push(Token { tok, start });
    }

    /// Scans one token at `pos`. Inside a template expression a `}` closes it and a
    /// backtick ends the template (as in ZEN).
    fn scan(&mut self, in_template: bool) -> Result<(), ExprError> {
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(());
        };
        match c {
            ' ' | '\n' | '\t' | '\r' => self.pos += 1,
            '\'' | '"' => {
                let rest = self.src.get(start + 1..).unwrap_or("");
                let Some(end) = rest.find(c) else {
                    return Err(ExprError::syntax(start, "unterminated string"));
                };
                self.push(Tok::Str(rest[..end].to_string()), start);
                self.pos = start + 1 + end + 1;
            }
            '0'..='9' => self.number(),
            '(' | ')' | '[' | ']' | '{' => {
                self.push(Tok::Bracket(c), start);
                self.pos += 1;
            }
            '}' => {
                self.push(
                    if in_template {
                        Tok::TplClose
                    } else {
                        Tok::Bracket('}')
                    },
                    start,
                );
                self.pos += 1;
            }
            '<' | '>' | '!' => {
                let eq = self.byte_at(start + 1) == Some(b'=');
                let op = match (c, eq) {
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    ('!', false) => Op::Not,
                    _ => Op::Ne,
                };
                self.push(Tok::Op(op), start);
                self.pos += if eq { 2 } else { 1 };
            }
            '=' => {
                if self.byte_at(start + 1) == Some(b'=') {
                    self.push(Tok::Op(Op::Eq), start);
                    self.pos += 2;
                } else {
                    self.push(Tok::Op(Op::Assign), start);
                    self.pos += 1;
                }
            }
            '?' => {
                if self.byte_at(start + 1) == Some(b'?') {
                    self.push(Tok::Op(Op::Nullish), start);
                    self.pos += 2;
                } else {
                    self.push(Tok::Op(Op::Question), start);
                    self.pos += 1;
                }
            }
            '.' => {
                if self.byte_at(start + 1) == Some(b'.') {
                    self.push(Tok::Op(Op::Range), start);
                    self.pos += 2;
                } else {
                    self.push(Tok::Op(Op::Dot), start);
                    self.pos += 1;
                }
            }
            ',' | ':' | '+' | '-' | '/' | '*' | '^' | '%' | ';' => {
                let op = match c {
                    ',' => Op::Comma,
                    ':' => Op::Colon,
                    '+' => Op::Add,
                    '-' => Op::Sub,
                    '/' => Op::Div,
                    '*' => Op::Mul,
                    '^' => Op::Pow,
                    '%' => Op::Mod,
                    _ => Op::Semi,
                };
                self.push(Tok::Op(op), start);
                self.pos += 1;
            }
            '`' => {
                if in_template {
                    // A backtick inside `${...}` closes the template (ZEN behaves so).
                    return Err(ExprError::syntax(start, "unterminated template expression"));
                }
                self.template()?;
            }
            c if is_alpha(c) => self.identifier(),
            other => {
                return Err(ExprError::syntax(
                    start,
                    format!("unexpected character {other:?}"),
                ))
            }
        }
        Ok(())
    }

    fn number(&mut self) {
        let start = self.pos;
        let mut end = start;
        let mut fraction = false;
        while let Some(b) = self.byte_at(end) {
            match b {
                b'0'..=b'9' | b'_' => end += 1,
                b'.' if !fraction && self.byte_at(end + 1) != Some(b'.') => {
                    fraction = true;
                    end += 1;
                }
                _ => break,
            }
        }
        if self.byte_at(end) == Some(b'e') {
            let mut e = end + 1;
            if matches!(self.byte_at(e), Some(b'+' | b'-')) {
                e += 1;
            }
            let digits_start = e;
            while matches!(self.byte_at(e), Some(b'0'..=b'9')) {
                e += 1;
            }
            if e > digits_start {
                end = e;
            }
        }
        self.push(Tok::Number(self.src[start..end].to_string()), start);
        self.pos = end;
    }

    fn identifier(&mut self) {
        let start = self.pos;
        let mut end = start;
        while let Some(c) = self.src.get(end..).and_then(|s| s.chars().next()) {
            if !is_alnum(c) {
                break;
            }
            end += c.len_utf8();
        }
        let word = &self.src[start..end];
        self.pos = end;
        let tok = match word {
            "and" => Tok::Op(Op::And),
            "or" => Tok::Op(Op::Or),
            "in" => Tok::Op(Op::In),
            "true" => Tok::Bool(true),
            "false" => Tok::Bool(false),
            "not" => {
                if self.src.get(end..).is_some_and(|s| s.starts_with(" in ")) {
                    self.pos = end + 3;
                    Tok::Op(Op::NotIn)
                } else {
                    Tok::Op(Op::Not)
                }
            }
            _ => Tok::Ident(word.to_string()),
        };
        self.push(tok, start);
    }

    fn template(&mut self) -> Result<(), ExprError> {
        let open = self.pos;
        self.push(Tok::Backtick, open);
        self.pos += 1;
        let mut text_start = self.pos;
        loop {
            let Some(c) = self.peek_char() else {
                if text_start < self.src.len() {
                    self.push(Tok::TplText(self.src[text_start..].to_string()), text_start);
                }
                return Err(ExprError::syntax(open, "unterminated template string"));
            };
            match c {
                '`' => {
                    if text_start < self.pos {
                        self.push(
                            Tok::TplText(self.src[text_start..self.pos].to_string()),
                            text_start,
                        );
                    }
                    self.push(Tok::Backtick, self.pos);
                    self.pos += 1;
                    return Ok(());
                }
                '$' if self.byte_at(self.pos + 1) == Some(b'{') => {
                    if text_start < self.pos {
                        self.push(
                            Tok::TplText(self.src[text_start..self.pos].to_string()),
                            text_start,
                        );
                    }
                    self.push(Tok::TplOpen, self.pos);
                    self.pos += 2;
                    loop {
                        match self.peek_char() {
                            None => {
                                return Err(ExprError::syntax(
                                    open,
                                    "unterminated template expression",
                                ))
                            }
                            Some('}') => {
                                self.push(Tok::TplClose, self.pos);
                                self.pos += 1;
                                break;
                            }
                            Some(_) => self.scan(true)?,
                        }
                    }
                    text_start = self.pos;
                }
                _ => self.pos += c.len_utf8(),
            }
        }
    }
}
