//! The client group query language (docs/eventgrid.md §7.5): `attributes.<key>` and
//! `authenticationName` compared with `=`, `<>`, `!=`, `<`, `>`, `<=`, `>=`, `IN [...]`, joined
//! by `and` (binding tighter) and `or`, with parentheses. Parsed at PUT with errors that say
//! where and why; evaluated at CONNECT and on change.
//!
//! Semantics: keywords are case-insensitive; string comparison is case-sensitive except against
//! `authenticationName`, which matches case-insensitively (docs/eventgrid.md §7.3). Ordering
//! operators compare integers only; any type mismatch, and any missing attribute, makes the
//! comparison false (`<>` included). An array attribute satisfies `=`/`IN` when one element
//! does and `<>`/`!=` when none does. The text is bounded ([`MAX_LEN`], [`MAX_DEPTH`]) so a
//! hostile PUT cannot exhaust the parser's stack.

use super::{AttrValue, Attributes, eq_fold};

/// Longest query text accepted, in characters.
pub const MAX_LEN: usize = 1024;
/// Deepest parenthesis nesting accepted.
pub const MAX_DEPTH: usize = 32;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The text as given (a GET returns it).
    pub text: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    AuthName,
    Attr(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lit {
    Str(String),
    Int(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Cmp(Operand, Op, Lit),
    In(Operand, Vec<Lit>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Query {
    /// Parses `text`; the error names the position and what was expected.
    pub fn parse(text: &str) -> Result<Query, String> {
        let len = text.chars().count();
        if len > MAX_LEN {
            return Err(format!(
                "the query is {len} characters long; at most {MAX_LEN} are allowed"
            ));
        }
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            at: 0,
            end: len + 1,
            depth: 0,
        };
        let expr = p.or_expr()?;
        if let Some(t) = p.tokens.get(p.at) {
            return Err(format!(
                "expected 'and', 'or' or the end of the query at position {}",
                t.pos
            ));
        }
        Ok(Query {
            text: text.to_owned(),
            expr,
        })
    }

    /// Whether a client with these values is in the group.
    pub fn matches(&self, auth_name: &str, attrs: &Attributes) -> bool {
        eval(&self.expr, auth_name, attrs)
    }
}

fn eval(e: &Expr, auth_name: &str, attrs: &Attributes) -> bool {
    match e {
        Expr::And(v) => v.iter().all(|e| eval(e, auth_name, attrs)),
        Expr::Or(v) => v.iter().any(|e| eval(e, auth_name, attrs)),
        Expr::Cmp(operand, op, lit) => match operand {
            Operand::AuthName => match lit {
                Lit::Str(s) => {
                    let eq = eq_fold(auth_name, s);
                    match op {
                        Op::Eq => eq,
                        Op::Ne => !eq,
                        _ => false,
                    }
                }
                Lit::Int(_) => false,
            },
            Operand::Attr(key) => match attrs.get(key) {
                None => false,
                Some(AttrValue::Strs(items)) => match (op, lit) {
                    (Op::Eq, Lit::Str(s)) => items.iter().any(|i| i == s),
                    (Op::Ne, Lit::Str(s)) => !items.iter().any(|i| i == s),
                    _ => false,
                },
                Some(v) => match scalar_cmp(v, lit) {
                    None => false,
                    Some(ord) => {
                        use std::cmp::Ordering::*;
                        let ordered = matches!(v, AttrValue::Int(_));
                        match op {
                            Op::Eq => ord == Equal,
                            Op::Ne => ord != Equal,
                            Op::Lt => ordered && ord == Less,
                            Op::Gt => ordered && ord == Greater,
                            Op::Le => ordered && ord != Greater,
                            Op::Ge => ordered && ord != Less,
                        }
                    }
                },
            },
        },
        Expr::In(operand, lits) => match operand {
            Operand::AuthName => lits
                .iter()
                .any(|l| matches!(l, Lit::Str(s) if eq_fold(auth_name, s))),
            Operand::Attr(key) => match attrs.get(key) {
                None => false,
                Some(AttrValue::Strs(items)) => lits
                    .iter()
                    .any(|l| matches!(l, Lit::Str(s) if items.iter().any(|i| i == s))),
                Some(v) => lits
                    .iter()
                    .any(|l| scalar_cmp(v, l) == Some(std::cmp::Ordering::Equal)),
            },
        },
    }
}

/// The order of a scalar attribute against a literal of the same type; `None` on a mismatch.
/// A boolean equals the string literal `true` or `false` (any case) and is not ordered.
fn scalar_cmp(v: &AttrValue, lit: &Lit) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    match (v, lit) {
        (AttrValue::Int(a), Lit::Int(b)) => Some(a.cmp(b)),
        (AttrValue::Str(a), Lit::Str(b)) => Some(if a == b {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
        (AttrValue::Bool(a), Lit::Str(b)) => {
            let s = if *a { "true" } else { "false" };
            Some(if s.eq_ignore_ascii_case(b) {
                Ordering::Equal
            } else {
                Ordering::Less
            })
        }
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Op(Op),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    /// 1-based character position.
    pos: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        let simple = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            '=' => Some(Tok::Op(Op::Eq)),
            _ => None,
        };
        if let Some(tok) = simple {
            out.push(Token { tok, pos });
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let (tok, used) = match (c, next) {
            ('<', Some('>')) | ('!', Some('=')) => (Tok::Op(Op::Ne), 2),
            ('<', Some('=')) => (Tok::Op(Op::Le), 2),
            ('>', Some('=')) => (Tok::Op(Op::Ge), 2),
            ('<', _) => (Tok::Op(Op::Lt), 1),
            ('>', _) => (Tok::Op(Op::Gt), 1),
            ('\'' | '"', _) => {
                let Some(len) = chars[i + 1..].iter().position(|&x| x == c) else {
                    return Err(format!("unterminated string starting at position {pos}"));
                };
                let s: String = chars[i + 1..i + 1 + len].iter().collect();
                (Tok::Str(s), len + 2)
            }
            ('-', Some(d)) | (d @ '0'..='9', _) if d.is_ascii_digit() => {
                let start = if c == '-' { i + 1 } else { i };
                let len = chars[start..]
                    .iter()
                    .take_while(|x| x.is_ascii_digit())
                    .count();
                let digits: String = chars[start..start + len].iter().collect();
                let n: i64 = digits
                    .parse()
                    .map_err(|_| format!("integer out of range at position {pos}"))?;
                (Tok::Int(if c == '-' { -n } else { n }), start + len - i)
            }
            (c, _) if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                let len = chars[i..]
                    .iter()
                    .take_while(|x| x.is_ascii_alphanumeric() || **x == '_' || **x == '.')
                    .count();
                (Tok::Ident(chars[i..i + len].iter().collect()), len)
            }
            _ => return Err(format!("unexpected character '{c}' at position {pos}")),
        };
        out.push(Token { tok, pos });
        i += used;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// The position just past the text (for "expected … at the end").
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at).map(|t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |t| t.pos)
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    fn or_expr(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.and_expr()?];
        while self.keyword("or") {
            self.at += 1;
            terms.push(self.and_expr()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::Or(terms)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.primary()?];
        while self.keyword("and") {
            self.at += 1;
            terms.push(self.primary()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::And(terms)
        })
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let pos = self.pos();
        match self.peek() {
            Some(Tok::LParen) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!(
                        "parentheses nested deeper than {MAX_DEPTH} at position {pos}"
                    ));
                }
                self.at += 1;
                let e = self.or_expr()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(format!("expected ')' at position {}", self.pos()));
                }
                self.at += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(Tok::Ident(name)) => {
                let name = name.clone();
                let operand = operand(&name, pos)?;
                self.at += 1;
                self.comparison(operand, &name)
            }
            _ => Err(format!(
                "expected 'attributes.<key>', 'authenticationName' or '(' at position {pos}"
            )),
        }
    }

    fn comparison(&mut self, operand: Operand, name: &str) -> Result<Expr, String> {
        if self.keyword("in") {
            self.at += 1;
            if self.peek() != Some(&Tok::LBracket) {
                return Err(format!(
                    "expected '[' after 'IN' at position {}",
                    self.pos()
                ));
            }
            self.at += 1;
            let mut lits = vec![self.literal()?];
            loop {
                match self.peek() {
                    Some(Tok::Comma) => {
                        self.at += 1;
                        lits.push(self.literal()?);
                    }
                    Some(Tok::RBracket) => {
                        self.at += 1;
                        return Ok(Expr::In(operand, lits));
                    }
                    _ => return Err(format!("expected ',' or ']' at position {}", self.pos())),
                }
            }
        }
        let Some(Tok::Op(op)) = self.peek() else {
            return Err(format!(
                "expected an operator after '{name}' at position {}",
                self.pos()
            ));
        };
        let op = *op;
        self.at += 1;
        let lit = self.literal()?;
        Ok(Expr::Cmp(operand, op, lit))
    }

    fn literal(&mut self) -> Result<Lit, String> {
        let lit = match self.peek() {
            Some(Tok::Str(s)) => Lit::Str(s.clone()),
            Some(Tok::Int(n)) => Lit::Int(*n),
            _ => {
                return Err(format!(
                    "expected a quoted string or an integer at position {}",
                    self.pos()
                ));
            }
        };
        self.at += 1;
        Ok(lit)
    }
}

fn operand(name: &str, pos: usize) -> Result<Operand, String> {
    if name.eq_ignore_ascii_case("authenticationName") {
        return Ok(Operand::AuthName);
    }
    if let Some((head, key)) = name.split_once('.')
        && head.eq_ignore_ascii_case("attributes")
    {
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Ok(Operand::Attr(key.to_owned()));
        }
        return Err(format!(
            "invalid attribute key '{key}' at position {pos} (letters, digits and '_')"
        ));
    }
    Err(format!(
        "expected 'attributes.<key>' or 'authenticationName' at position {pos}, found '{name}'"
    ))
}

#[cfg(test)]
mod tests;
