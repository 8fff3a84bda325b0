//! Secret handles: what `${{ secret("name") }}` evaluates to.
//!
//! Expressions never see a secret value. `secret("github")` yields a *handle*, a short text
//! that names the connection (`⟦secret:github⟧`), which flows through templates, transforms
//! and code like any other string. Only the http step replaces handles by the connection's
//! value, when it builds the outgoing request and only for the connection's hosts; anywhere
//! else (a step output, a log line, an export) the handle is all there is to see.

/// Opens a handle. The brackets are not ASCII so that ordinary text and URL-encoded or JSON
/// data never contain a handle by accident.
pub const HANDLE_OPEN: &str = "⟦secret:";
/// Closes a handle.
pub const HANDLE_CLOSE: &str = "⟧";

/// The jq definition of `secret/1`, added to every expression's standard library.
pub(crate) const SECRET_DEF: &str = r#"def secret($name):
  if ($name | type) == "string" and ($name | test("^[A-Za-z0-9_-]{1,64}$"))
  then "⟦secret:" + $name + "⟧"
  else error("secret() takes a connection name: 1 to 64 letters, digits, `-` or `_`")
  end;"#;

/// The handle of connection `name`'s secret.
pub fn handle(name: &str) -> String {
    format!("{HANDLE_OPEN}{name}{HANDLE_CLOSE}")
}

/// The connection names of the handles in `text`, in order of appearance (with repeats).
pub fn handles_in(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find(HANDLE_OPEN)? + HANDLE_OPEN.len();
            let after = &rest[start..];
            let Some(end) = after.find(HANDLE_CLOSE) else {
                rest = "";
                return None;
            };
            let name = &after[..end];
            rest = &after[end + HANDLE_CLOSE.len()..];
            if is_name(name) {
                return Some(name);
            }
        }
    })
}

/// `text` with every handle replaced by what `value` gives for its name; an error from
/// `value` stops the replacement. Text that holds no handle is returned unchanged.
pub fn replace_handles<E>(text: &str, mut value: impl FnMut(&str) -> Result<String, E>) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(HANDLE_OPEN) {
        let after = &rest[at + HANDLE_OPEN.len()..];
        match after.find(HANDLE_CLOSE).map(|end| (&after[..end], end)) {
            Some((name, end)) if is_name(name) => {
                out.push_str(&rest[..at]);
                out.push_str(&value(name)?);
                rest = &after[end + HANDLE_CLOSE.len()..];
            }
            _ => {
                out.push_str(&rest[..at + HANDLE_OPEN.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Expr;

    #[test]
    fn secret_yields_a_handle_not_a_value() {
        let e = Expr::compile(r#""Bearer " + secret("github")"#).expect("compiles");
        assert_eq!(e.eval(&json!({})).expect("evaluates"), json!("Bearer ⟦secret:github⟧"));
        let bad = Expr::compile(r#"secret("no spaces")"#).expect("compiles");
        let err = bad.eval(&json!({})).expect_err("a bad name is an error");
        assert!(err.message.contains("connection name"), "{err}");
    }

    #[test]
    fn handles_are_found_and_replaced_in_place() {
        let text = format!("a {} b {} c {}", handle("one"), handle("two-2"), handle("one"));
        assert_eq!(handles_in(&text).collect::<Vec<_>>(), ["one", "two-2", "one"]);
        let out = replace_handles(&text, |n| Ok::<_, ()>(n.to_uppercase())).expect("replaced");
        assert_eq!(out, "a ONE b TWO-2 c ONE");
    }

    #[test]
    fn text_that_only_looks_like_a_handle_is_left_alone() {
        let text = "⟦secret:has space⟧ and ⟦secret:open";
        assert_eq!(handles_in(text).count(), 0);
        assert_eq!(replace_handles(text, |_| Err::<String, _>("called")).expect("untouched"), text);
        let err = replace_handles(&handle("x"), |n| Err::<String, _>(format!("no {n}")));
        assert_eq!(err, Err("no x".to_owned()));
    }
}
