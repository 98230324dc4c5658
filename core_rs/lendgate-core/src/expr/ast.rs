//! The syntax tree the parser produces and the interpreter walks.

use std::sync::Arc;

use regex::Regex;
use rust_decimal::Decimal;

use super::date::Method;
use super::functions::{ClosureFn, Func};
use super::lexer::Op;

/// One path step of a member access known at compile time.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Key(Arc<str>),
    Index(u32),
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Number(Decimal),
    String(Arc<str>),
    Array(Vec<Node>),
    /// Object literal: (key expression, value expression) pairs.
    Object(Vec<(Node, Node)>),
    /// `$root`: the whole input document.
    Root,
    /// A field of the input document (`$` in unary tests is one too).
    Ident(Arc<str>),
    /// The current element of an enclosing closure, `depth` closures up
    /// (`#` is depth 0; an `as` alias resolves to its closure's depth).
    Pointer(u32),
    /// `node.key` / `node[0]` chains with constant keys, resolved without copying.
    Path(Box<Node>, Vec<Step>),
    /// `node[expr]`.
    Member(Box<Node>, Box<Node>),
    /// `node[from:to]` (both ends inclusive, as in ZEN).
    Slice {
        node: Box<Node>,
        from: Option<Box<Node>>,
        to: Option<Box<Node>>,
    },
    Interval {
        left: Box<Node>,
        right: Box<Node>,
        left_bracket: char,
        right_bracket: char,
    },
    Template(Vec<Node>),
    Parenthesized(Box<Node>),
    Conditional(Box<Node>, Box<Node>, Box<Node>),
    Unary(Op, Box<Node>),
    Binary(Op, Box<Node>, Box<Node>),
    /// A built-in function; `regex` is the pattern precompiled when it is a literal.
    Call {
        func: Func,
        args: Vec<Node>,
        regex: Option<Arc<Regex>>,
    },
    /// A call of a host function declared in the options (`in_list(...)`).
    HostCall {
        name: Arc<str>,
        args: Vec<Node>,
        predicate: bool,
    },
    Closure {
        func: ClosureFn,
        array: Box<Node>,
        body: Box<Node>,
    },
    Method {
        method: Method,
        this: Box<Node>,
        args: Vec<Node>,
    },
    /// `a = 1; b.c = 2; expr`: dotted keys and values, then an optional result.
    Assign {
        list: Vec<(Vec<Arc<str>>, Node)>,
        output: Option<Box<Node>>,
    },
}
