//! Recursive-descent parser with ZEN's operator table, for standard expressions and
//! for unary tests (decision-table cells, where `$` is the subject).

use std::sync::Arc;

use regex::Regex;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::ast::{Node, Step};
use super::date::Method;
use super::functions::{Behaviour, ClosureFn, Func};
use super::lexer::{tokenize, Op, Tok, Token};
use super::{ExprError, HostFunctions, Limits};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Global,
    Closure,
}

pub(crate) fn parse_standard(
    src: &str,
    limits: &Limits,
    host: &HostFunctions,
) -> Result<Node, ExprError> {
    let tokens = prepare(src, limits)?;
    let mut p = Parser::new(src, &tokens, false, limits, host);
    let node = p.binary(0, Ctx::Global)?;
    p.finish()?;
    Ok(node)
}

pub(crate) fn parse_unary(
    src: &str,
    limits: &Limits,
    host: &HostFunctions,
) -> Result<Node, ExprError> {
    let tokens = prepare(src, limits)?;
    let mut p = Parser::new(src, &tokens, true, limits, host);
    let mut node = p.unary_pair()?;
    while let Some(tok) = p.peek() {
        let op = match tok {
            Tok::Op(Op::And) => Op::And,
            Tok::Op(Op::Or | Op::Comma) => Op::Or,
            other => {
                return Err(p.error_here(format!("unexpected {} in unary test", other.describe())))
            }
        };
        p.advance();
        p.enter()?;
        let right = p.unary_pair()?;
        node = Node::Binary(op, Box::new(node), Box::new(right));
    }
    Ok(node)
}

fn prepare(src: &str, limits: &Limits) -> Result<Vec<Token>, ExprError> {
    if src.len() > limits.max_source_bytes {
        return Err(ExprError::syntax(
            0,
            format!(
                "expression is {} bytes long; the limit is {}",
                src.len(),
                limits.max_source_bytes
            ),
        ));
    }
    let tokens = tokenize(src)?;
    if tokens.is_empty() {
        return Err(ExprError::syntax(0, "empty expression"));
    }
    Ok(tokens)
}

struct Parser<'a> {
    src: &'a str,
    toks: &'a [Token],
    pos: usize,
    unary: bool,
    /// Closure aliases, innermost last (`None` for closures without `as`).
    aliases: Vec<Option<String>>,
    nesting: usize,
    max_depth: usize,
    host: &'a HostFunctions,
}

impl<'a> Parser<'a> {
    fn new(
        src: &'a str,
        toks: &'a [Token],
        unary: bool,
        limits: &Limits,
        host: &'a HostFunctions,
    ) -> Self {
        Self {
            src,
            toks,
            pos: 0,
            unary,
            aliases: Vec::new(),
            nesting: 0,
            max_depth: limits.max_depth,
            host,
        }
    }

    fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn advance(&mut self) {
        self.pos += 1;
    }

    fn here(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |t| t.start)
    }

    fn error_here(&self, reason: impl Into<String>) -> ExprError {
        ExprError::syntax(self.here(), reason)
    }

    fn unexpected(&self, expected: &str) -> ExprError {
        match self.peek() {
            Some(tok) => self.error_here(format!("expected {expected}, found {}", tok.describe())),
            None => self.error_here(format!(
                "expected {expected}, found the end of the expression"
            )),
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), ExprError> {
        if self.peek() == Some(tok) {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn is_bracket(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Bracket(c))
    }

    fn is_op(&self, op: Op) -> bool {
        self.peek() == Some(&Tok::Op(op))
    }

    /// Counts one level of nesting; the limit bounds the tree's depth, so neither the
    /// parser nor the interpreter can overflow the stack.
    fn enter(&mut self) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > self.max_depth {
            return Err(self.error_here(format!(
                "expression nested deeper than {} levels",
                self.max_depth
            )));
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), ExprError> {
        match self.peek() {
            None => Ok(()),
            Some(tok) => Err(self.error_here(format!("unexpected {}", tok.describe()))),
        }
    }

    fn binary(&mut self, precedence: u8, ctx: Ctx) -> Result<Node, ExprError> {
        let saved = self.nesting;
        self.enter()?;
        let mut left = self.unary_expression()?;
        while let Some(Tok::Op(op)) = self.peek() {
            let op = *op;
            if self.unary && ctx == Ctx::Global && matches!(op, Op::Comma | Op::And | Op::Or) {
                break;
            }
            let Some((p, right_assoc)) = op.binary() else {
                break;
            };
            if p < precedence {
                break;
            }
            self.advance();
            self.enter()?;
            let right = self.binary(if right_assoc { p } else { p + 1 }, Ctx::Global)?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
        if precedence == 0 && self.is_op(Op::Question) {
            self.advance();
            let on_true = self.binary(0, Ctx::Global)?;
            self.expect(&Tok::Op(Op::Colon), "`:` of the conditional")?;
            let on_false = self.binary(0, Ctx::Global)?;
            left = Node::Conditional(Box::new(left), Box::new(on_true), Box::new(on_false));
        }
        self.nesting = saved;
        Ok(left)
    }

    fn unary_expression(&mut self) -> Result<Node, ExprError> {
        let Some(tok) = self.peek() else {
            return Err(self.unexpected("an operand"));
        };
        match tok {
            Tok::Ident(name) if name == "#" && !self.aliases.is_empty() => {
                self.advance();
                Ok(self.postfix(Node::Pointer(0))?.0)
            }
            Tok::Op(op) => {
                let Some(p) = op.prefix() else {
                    return Err(self.unexpected("an operand"));
                };
                let op = *op;
                self.advance();
                let operand = self.binary(p, Ctx::Global)?;
                Ok(Node::Unary(op, Box::new(operand)))
            }
            Tok::Bracket('(' | '[' | ']') => self.bracketed(),
            _ => self.literal(),
        }
    }

    /// `( … )`, `[ … ]` and intervals such as `[1..10)`, `(0..1]` or `]1..5[`.
    fn bracketed(&mut self) -> Result<Node, ExprError> {
        let Some(Tok::Bracket(open)) = self.peek() else {
            return Err(self.unexpected("a bracket"));
        };
        let open = *open;
        let open_at = self.here();
        self.advance();
        if open == '[' && self.is_bracket(']') {
            self.advance();
            return Ok(self.postfix(Node::Array(Vec::new()))?.0);
        }
        let first = self.binary(0, Ctx::Global)?;
        if self.is_op(Op::Range) {
            self.advance();
            let right = self.binary(0, Ctx::Global)?;
            let close = match self.peek() {
                Some(Tok::Bracket(c @ (')' | ']' | '(' | '['))) => *c,
                _ => return Err(self.unexpected("`]` or `)` closing the interval")),
            };
            if !matches!(open, '(' | '[' | ']' | ')') {
                return Err(ExprError::syntax(open_at, "invalid interval"));
            }
            self.advance();
            let node = Node::Interval {
                left: Box::new(first),
                right: Box::new(right),
                left_bracket: open,
                right_bracket: close,
            };
            return Ok(self.postfix(node)?.0);
        }
        match open {
            '(' => {
                self.expect(&Tok::Bracket(')'), "`)`")?;
                Ok(self.postfix(Node::Parenthesized(Box::new(first)))?.0)
            }
            '[' => {
                let mut items = vec![first];
                while !self.is_bracket(']') {
                    self.expect(&Tok::Op(Op::Comma), "`,` or `]`")?;
                    if self.is_bracket(']') {
                        break;
                    }
                    items.push(self.binary(0, Ctx::Global)?);
                }
                self.advance();
                Ok(self.postfix(Node::Array(items))?.0)
            }
            _ => Err(ExprError::syntax(open_at, "unexpected `]`")),
        }
    }

    fn literal(&mut self) -> Result<Node, ExprError> {
        let Some(tok) = self.peek() else {
            return Err(self.unexpected("an operand"));
        };
        let start = self.here();
        match tok {
            Tok::Ident(name) if name == "null" => {
                self.advance();
                Ok(Node::Null)
            }
            Tok::Ident(_) => self.identifier(),
            Tok::Bool(b) => {
                self.advance();
                Ok(Node::Bool(*b))
            }
            Tok::Number(text) => {
                let n = parse_number(text)
                    .ok_or_else(|| ExprError::syntax(start, format!("invalid number `{text}`")))?;
                self.advance();
                Ok(Node::Number(n))
            }
            Tok::Str(s) => {
                self.advance();
                Ok(self.postfix(Node::String(Arc::from(s.as_str())))?.0)
            }
            Tok::Backtick => self.template(),
            Tok::Bracket('{') => self.object(),
            other => Err(self.error_here(format!("unexpected {}", other.describe()))),
        }
    }

    fn template(&mut self) -> Result<Node, ExprError> {
        self.advance();
        let mut parts = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Backtick) => {
                    self.advance();
                    return Ok(Node::Template(parts));
                }
                Some(Tok::TplText(s)) => {
                    parts.push(Node::String(Arc::from(s.as_str())));
                    self.advance();
                }
                Some(Tok::TplOpen) => {
                    self.advance();
                    parts.push(self.binary(0, Ctx::Global)?);
                    self.expect(&Tok::TplClose, "`}` closing the template expression")?;
                }
                _ => return Err(self.unexpected("the end of the template string")),
            }
        }
    }

    fn object(&mut self) -> Result<Node, ExprError> {
        self.advance();
        let mut pairs = Vec::new();
        if self.is_bracket('}') {
            self.advance();
            return Ok(self.postfix(Node::Object(pairs))?.0);
        }
        loop {
            let key = match self.peek() {
                Some(Tok::Ident(name)) => Node::String(Arc::from(name.as_str())),
                Some(Tok::Bool(b)) => Node::String(Arc::from(if *b { "true" } else { "false" })),
                Some(Tok::Number(n)) => Node::String(Arc::from(n.as_str())),
                Some(Tok::Str(s)) => Node::String(Arc::from(s.as_str())),
                Some(Tok::Bracket('[')) => {
                    self.advance();
                    let key = self.binary(0, Ctx::Global)?;
                    if !self.is_bracket(']') {
                        return Err(self.unexpected("`]` closing the computed key"));
                    }
                    key
                }
                _ => return Err(self.unexpected("an object key")),
            };
            self.advance();
            self.expect(&Tok::Op(Op::Colon), "`:` after the object key")?;
            let value = self.binary(0, Ctx::Global)?;
            pairs.push((key, value));
            match self.peek() {
                Some(Tok::Op(Op::Comma)) => self.advance(),
                Some(Tok::Bracket('}')) => {
                    self.advance();
                    break;
                }
                _ => return Err(self.unexpected("`,` or `}` in the object")),
            }
        }
        Ok(self.postfix(Node::Object(pairs))?.0)
    }

    fn identifier(&mut self) -> Result<Node, ExprError> {
        let Some(Tok::Ident(name)) = self.peek() else {
            return Err(self.unexpected("an identifier"));
        };
        let name_at = self.here();
        self.advance();
        if !self.is_bracket('(') {
            let node = if name == "$root" {
                Node::Root
            } else if let Some(depth) = self.alias_depth(name) {
                Node::Pointer(depth)
            } else {
                Node::Ident(Arc::from(name.as_str()))
            };
            let (node, only_dots) = self.postfix(node)?;
            if self.is_op(Op::Assign) {
                if !only_dots {
                    return Err(self.error_here("only property access (`a.b`) may be assigned to"));
                }
                return self.assignment(node);
            }
            return Ok(node);
        }
        self.advance();
        if let Some(func) = ClosureFn::from_name(name) {
            let array = self.binary(0, Ctx::Global)?;
            let mut alias = None;
            if self.peek() == Some(&Tok::Ident("as".to_string())) {
                self.advance();
                match self.peek() {
                    Some(Tok::Ident(a)) => {
                        alias = Some(a.clone());
                        self.advance();
                    }
                    _ => return Err(self.unexpected("an identifier after `as`")),
                }
            }
            self.expect(&Tok::Op(Op::Comma), "`,` before the closure body")?;
            self.aliases.push(alias);
            let body = self.binary(0, Ctx::Closure);
            self.aliases.pop();
            let body = body?;
            self.expect(&Tok::Bracket(')'), "`)` closing the call")?;
            let node = Node::Closure {
                func,
                array: Box::new(array),
                body: Box::new(body),
            };
            return Ok(self.postfix(node)?.0);
        }
        let Some(func) = Func::from_name(name) else {
            return self.host_call(name, name_at);
        };
        let args = self.arguments()?;
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            return Err(ExprError::syntax(
                name_at,
                format!(
                    "`{name}` takes {}, got {}",
                    arity_text(min, max),
                    args.len()
                ),
            ));
        }
        let regex = match (func, args.get(1)) {
            (Func::Matches | Func::Extract, Some(Node::String(pattern))) => {
                Regex::new(pattern).ok().map(Arc::new)
            }
            _ => None,
        };
        Ok(self.postfix(Node::Call { func, args, regex })?.0)
    }

    /// A call of a declared host function, after its `(`.
    fn host_call(&mut self, name: &str, name_at: usize) -> Result<Node, ExprError> {
        let Some(f) = self.host.find(name) else {
            return Err(ExprError::syntax(
                name_at,
                format!("unknown function `{name}`"),
            ));
        };
        let (min, max, predicate, name) = (f.min_args, f.max_args, f.predicate, f.name.clone());
        let args = self.arguments()?;
        if args.len() < min || args.len() > max {
            return Err(ExprError::syntax(
                name_at,
                format!(
                    "`{name}` takes {}, got {}",
                    arity_text(min, max),
                    args.len()
                ),
            ));
        }
        let node = Node::HostCall {
            name,
            args,
            predicate,
        };
        Ok(self.postfix(node)?.0)
    }

    /// Call arguments after `(`, through the closing `)`.
    fn arguments(&mut self) -> Result<Vec<Node>, ExprError> {
        let mut args = Vec::new();
        while !self.is_bracket(')') {
            args.push(self.binary(0, Ctx::Global)?);
            if !self.is_op(Op::Comma) {
                break;
            }
            self.advance();
        }
        self.expect(&Tok::Bracket(')'), "`)` closing the call")?;
        Ok(args)
    }

    fn alias_depth(&self, name: &str) -> Option<u32> {
        self.aliases
            .iter()
            .rev()
            .position(|a| a.as_deref() == Some(name))
            .and_then(|d| u32::try_from(d).ok())
    }

    /// Member access, indexing, slicing and method calls after an operand. Returns
    /// whether only `.name` steps were used (the only form assignments accept).
    fn postfix(&mut self, mut node: Node) -> Result<(Node, bool), ExprError> {
        let saved = self.nesting;
        let mut only_dots = true;
        loop {
            match self.peek() {
                Some(Tok::Op(Op::Dot)) => {
                    self.advance();
                    let name = match self.peek() {
                        Some(Tok::Ident(n)) => n.clone(),
                        Some(Tok::Op(op @ (Op::And | Op::Or | Op::Not | Op::In))) => {
                            op.symbol().to_string()
                        }
                        _ => return Err(self.unexpected("a property name after `.`")),
                    };
                    let name_at = self.here();
                    self.advance();
                    if self.is_bracket('(') {
                        let Some(method) = Method::from_name(&name) else {
                            return Err(ExprError::syntax(
                                name_at,
                                format!("unknown method `{name}`"),
                            ));
                        };
                        self.advance();
                        let args = self.arguments()?;
                        let (min, max) = method.arity();
                        if args.len() < min || args.len() > max {
                            return Err(ExprError::syntax(
                                name_at,
                                format!(
                                    "`.{name}()` takes {}, got {}",
                                    arity_text(min, max),
                                    args.len()
                                ),
                            ));
                        }
                        only_dots = false;
                        node = Node::Method {
                            method,
                            this: Box::new(node),
                            args,
                        };
                    } else {
                        node = member(node, Node::String(Arc::from(name.as_str())));
                    }
                }
                Some(Tok::Bracket('[')) => {
                    self.advance();
                    only_dots = false;
                    if self.is_op(Op::Colon) {
                        self.advance();
                        let to = self.slice_end()?;
                        node = Node::Slice {
                            node: Box::new(node),
                            from: None,
                            to,
                        };
                    } else {
                        let from = self.binary(0, Ctx::Global)?;
                        if self.is_op(Op::Colon) {
                            self.advance();
                            let to = self.slice_end()?;
                            node = Node::Slice {
                                node: Box::new(node),
                                from: Some(Box::new(from)),
                                to,
                            };
                        } else {
                            self.expect(&Tok::Bracket(']'), "`]`")?;
                            node = member(node, from);
                        }
                    }
                }
                _ => break,
            }
            self.enter()?;
        }
        self.nesting = saved;
        Ok((node, only_dots))
    }

    fn slice_end(&mut self) -> Result<Option<Box<Node>>, ExprError> {
        let to = if self.is_bracket(']') {
            None
        } else {
            Some(Box::new(self.binary(0, Ctx::Global)?))
        };
        self.expect(&Tok::Bracket(']'), "`]` closing the slice")?;
        Ok(to)
    }

    fn assignment(&mut self, target: Node) -> Result<Node, ExprError> {
        let mut list = Vec::new();
        let mut target = target;
        loop {
            let keys = assign_keys(&target)
                .ok_or_else(|| self.error_here("only property access may be assigned to"))?;
            self.expect(&Tok::Op(Op::Assign), "`=`")?;
            let value = self.binary(0, Ctx::Global)?;
            list.push((keys, value));
            if self.peek().is_none() {
                return Ok(Node::Assign { list, output: None });
            }
            self.expect(&Tok::Op(Op::Semi), "`;` between statements")?;
            if self.peek().is_none() {
                return Ok(Node::Assign { list, output: None });
            }
            let checkpoint = self.pos;
            if let Some(Tok::Ident(name)) = self.peek() {
                let name = name.clone();
                self.advance();
                let (candidate, only_dots) = self.postfix(Node::Ident(Arc::from(name.as_str())))?;
                if self.is_op(Op::Assign) && only_dots {
                    target = candidate;
                    continue;
                }
            }
            self.pos = checkpoint;
            let output = self.binary(0, Ctx::Global)?;
            return Ok(Node::Assign {
                list,
                output: Some(Box::new(output)),
            });
        }
    }

    /// One unary-test term: `> 5`, `[1..10]`, `'a'`, or any expression over `$`.
    fn unary_pair(&mut self) -> Result<Node, ExprError> {
        let subject = || Node::Ident(Arc::from("$"));
        let left = match self.peek() {
            Some(Tok::Op(op)) if op.is_comparison() => subject(),
            _ => self.binary(0, Ctx::Global)?,
        };
        if let Some(Tok::Op(op)) = self.peek() {
            if op.is_comparison() {
                let op = *op;
                self.advance();
                let right = self.binary(0, Ctx::Global)?;
                return Ok(Node::Binary(op, Box::new(left), Box::new(right)));
            }
        }
        Ok(match behaviour(&left) {
            Behaviour::Equal => Node::Binary(Op::Eq, Box::new(subject()), Box::new(left)),
            Behaviour::In => Node::Binary(Op::In, Box::new(subject()), Box::new(left)),
            Behaviour::AsBool => Node::Call {
                func: Func::Bool,
                args: vec![left],
                regex: None,
            },
        })
    }
}

fn arity_text(min: usize, max: usize) -> String {
    match (min, max) {
        (1, 1) => "1 argument".to_string(),
        (a, b) if a == b => format!("{a} arguments"),
        (a, b) => format!("{a} to {b} arguments"),
    }
}

/// Parses a number literal the way ZEN does: exact decimal, else scientific.
pub(crate) fn parse_number(text: &str) -> Option<Decimal> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    Decimal::from_str_exact(&cleaned)
        .or_else(|_| Decimal::from_scientific(&cleaned))
        .ok()
}

/// Builds `node[property]`, folding constant keys into a copy-free path.
fn member(node: Node, property: Node) -> Node {
    let step = match &property {
        Node::String(s) => Some(Step::Key(s.clone())),
        Node::Number(n) if n.fract().is_zero() => n.to_u32().map(Step::Index),
        _ => None,
    };
    match (node, step) {
        (Node::Path(base, mut steps), Some(step)) => {
            steps.push(step);
            Node::Path(base, steps)
        }
        (base @ (Node::Ident(_) | Node::Root | Node::Pointer(_)), Some(step)) => {
            Node::Path(Box::new(base), vec![step])
        }
        (node, _) => Node::Member(Box::new(node), Box::new(property)),
    }
}

fn assign_keys(target: &Node) -> Option<Vec<Arc<str>>> {
    match target {
        Node::Ident(name) => Some(vec![name.clone()]),
        Node::Path(base, steps) => {
            let Node::Ident(name) = base.as_ref() else {
                return None;
            };
            let mut keys = vec![name.clone()];
            for step in steps {
                match step {
                    Step::Key(k) => keys.push(k.clone()),
                    Step::Index(_) => return None,
                }
            }
            Some(keys)
        }
        _ => None,
    }
}

/// How a unary-test term that is not a comparison is tested against `$`.
fn behaviour(node: &Node) -> Behaviour {
    match node {
        Node::Pointer(_) => Behaviour::AsBool,
        Node::Array(_) | Node::Slice { .. } | Node::Interval { .. } => Behaviour::In,
        Node::Conditional(_, a, b)
        | Node::Binary(Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Pow, a, b) => {
            let (a, b) = (behaviour(a), behaviour(b));
            if a == b {
                a
            } else {
                Behaviour::Equal
            }
        }
        Node::Binary(..) => Behaviour::AsBool,
        Node::Unary(_, inner) | Node::Parenthesized(inner) => behaviour(inner),
        Node::Call { func, .. } => func.behaviour(),
        Node::HostCall {
            predicate: true, ..
        } => Behaviour::AsBool,
        Node::Closure { func, .. } => func.behaviour(),
        Node::Method { method, .. } => method.behaviour(),
        _ => Behaviour::Equal,
    }
}
