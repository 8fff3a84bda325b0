//! Which jq programs certainly finish quickly, so an executor may evaluate them where it is
//! instead of on a thread its timeout can walk away from.
//!
//! A program is *quick* when it has no loops, recursion or iteration of its own: no `def`, no
//! `reduce`/`foreach`, no `..` and no `.[]`, and calls only builtins that take one pass over
//! their input (`map`, `select`, `length`, `tostring`, ...). It must also produce a bounded
//! number of outputs, since generators combined with `,`, `+` or `as` multiply. The work of a
//! quick program is then at most a few passes over the data it reads, never an unbounded loop
//! such as `last(range(1e12))` or `def f: f; f`.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Pattern, Term};
use jaq_core::path::Part;

/// Builtins that take one pass (or a sort) over their input and call their arguments at most
/// once per element.
const ONE_PASS: &[&str] = &[
    "abs",
    "add",
    "all",
    "any",
    "arrays",
    "ascii",
    "ascii_downcase",
    "ascii_upcase",
    "booleans",
    "capture",
    "ceil",
    "contains",
    "del",
    "empty",
    "endswith",
    "error",
    "explode",
    "false",
    "first",
    "flatten",
    "floor",
    "from_entries",
    "fromjson",
    "getpath",
    "group_by",
    "has",
    "implode",
    "in",
    "index",
    "indices",
    "inside",
    "isempty",
    "iterables",
    "join",
    "keys",
    "keys_unsorted",
    "last",
    "length",
    "ltrimstr",
    "map",
    "map_values",
    "max",
    "max_by",
    "min",
    "min_by",
    "not",
    "null",
    "nulls",
    "numbers",
    "objects",
    "reverse",
    "rindex",
    "round",
    "rtrimstr",
    "scalars",
    "select",
    "sort",
    "sort_by",
    "split",
    "sqrt",
    "startswith",
    "strings",
    "sub",
    "gsub",
    "test",
    "to_entries",
    "tojson",
    "tonumber",
    "tostring",
    "trim",
    "ltrim",
    "rtrim",
    "true",
    "type",
    "unique",
    "unique_by",
    "utf8bytelength",
    "values",
    "with_entries",
];

/// More outputs than this and a program is not quick.
const MAX_OUTPUTS: u64 = 256;

/// Whether `source` is a quick program (see the module documentation). Programs that do not
/// parse are not quick.
pub(crate) fn is_quick(source: &str) -> bool {
    jaq_core::load::parse(source, |p| p.term()).and_then(|t| outputs(&t)).is_some_and(|n| n <= MAX_OUTPUTS)
}

/// An upper bound of how many values `t` outputs per input, or `None` when `t` is not quick.
fn outputs(t: &Term<&str>) -> Option<u64> {
    let bounded = |n: u64| (n <= MAX_OUTPUTS).then_some(n);
    match t {
        Term::Id | Term::Num(_) | Term::Var(_) | Term::Break(_) => Some(1),
        Term::Recurse | Term::Fold(..) | Term::Def(..) => None,
        Term::Str(_, parts) => product(parts.iter().filter_map(|p| match p {
            StrPart::Term(t) => Some(t),
            StrPart::Str(_) | StrPart::Char(_) => None,
        })),
        // Collecting outputs into one value.
        Term::Arr(inner) => inner.as_deref().map_or(Some(1), |t| outputs(t).map(|_| 1)),
        Term::Obj(fields) => {
            let mut n = 1_u64;
            for (key, value) in fields {
                n = bounded(n.saturating_mul(outputs(key)?))?;
                if let Some(value) = value {
                    n = bounded(n.saturating_mul(outputs(value)?))?;
                }
            }
            Some(n)
        }
        Term::Neg(t) | Term::Label(_, t) => outputs(t),
        Term::BinOp(l, op, r) => {
            let (l, r) = (outputs(l)?, outputs(r)?);
            match op {
                BinaryOp::Comma | BinaryOp::Alt => bounded(l.saturating_add(r)),
                BinaryOp::Pipe(pattern) => {
                    pattern.as_ref().map_or(Some(()), quick_pattern)?;
                    bounded(l.saturating_mul(r))
                }
                _ => bounded(l.saturating_mul(r)),
            }
        }
        Term::TryCatch(t, catch) => {
            bounded(outputs(t)?.saturating_add(catch.as_deref().map_or(Some(0), outputs)?))
        }
        Term::IfThenElse(branches, otherwise) => {
            let mut n = otherwise.as_deref().map_or(Some(1), outputs)?;
            for (condition, then) in branches {
                n = bounded(n.saturating_add(outputs(condition)?.saturating_mul(outputs(then)?)))?;
            }
            Some(n)
        }
        // Formats such as `@base64` convert their input in one pass.
        Term::Call(name, args) if ONE_PASS.contains(name) || name.starts_with('@') => product(args.iter()),
        Term::Call(..) => None,
        Term::Path(t, path) => {
            let mut n = outputs(t)?;
            for (part, _) in &path.0 {
                let part = match part {
                    Part::Index(i) => outputs(i)?,
                    // `.[]` iterates; a slice `.[a:b]` does not.
                    Part::Range(None, None) => return None,
                    Part::Range(from, to) => {
                        let from = from.as_ref().map_or(Some(1), outputs)?;
                        from.saturating_mul(to.as_ref().map_or(Some(1), outputs)?)
                    }
                };
                n = bounded(n.saturating_mul(part))?;
            }
            Some(n)
        }
    }
}

fn product<'a, 's: 'a>(terms: impl Iterator<Item = &'a Term<&'s str>>) -> Option<u64> {
    let mut n = 1_u64;
    for t in terms {
        n = n.saturating_mul(outputs(t)?);
        if n > MAX_OUTPUTS {
            return None;
        }
    }
    Some(n)
}

fn quick_pattern(p: &Pattern<&str>) -> Option<()> {
    match p {
        Pattern::Var(_) => Some(()),
        Pattern::Arr(items) => items.iter().try_for_each(quick_pattern),
        Pattern::Obj(fields) => fields.iter().try_for_each(|(key, p)| {
            outputs(key)?;
            quick_pattern(p)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_operators_and_one_pass_builtins_are_quick() {
        for src in [
            ".steps.s0.output + 1",
            "{ total: (.steps.order.output.items | map(.price * .qty) | add), who: .inputs.name }",
            "if .inputs.vip then \"gold\" elif .x > 2 then 1 else null end",
            ".a // \"default\" | tostring | ascii_downcase",
            "\"Deploy \\(.inputs.service) \\(.inputs.version)\"",
            ".items | map(select(.ok)) | length",
            ".a as $x | [$x, .b[0], .c[1:3]] | @base64",
            "(.a, .b) as [$x, $y] | {($x): $y}",
            "try .a.b catch \"none\"",
        ] {
            assert!(is_quick(src), "{src} should be quick");
        }
    }

    #[test]
    fn loops_recursion_iteration_and_blowups_are_not() {
        for src in [
            "last(range(1e12))",
            "def f: f; f",
            "reduce .[] as $x (0; . + $x)",
            "[.[] | . * 2]",
            "[..]",
            "[repeat(1)]",
            "until(. > 10; . + 1)",
            "[recurse(.a)]",
            "[(1,2) + (1,2) + (1,2) + (1,2) + (1,2) + (1,2) + (1,2) + (1,2) + (1,2)]",
            "\"\\(range(10))\"",
            ".a | frobnicate",
            ".a | |",
        ] {
            assert!(!is_quick(src), "{src} should not be quick");
        }
    }
}
