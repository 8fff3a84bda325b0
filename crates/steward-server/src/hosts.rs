//! Host names as settings take them (a connection's hosts, a workspace's egress allowlist):
//! lower-cased, each plain or with one leading `*.`, no scheme, port or path.

use crate::error::{ApiError, ApiResult};

/// The hosts, normalised; refuses anything that is not a host name.
pub fn normalize_hosts(hosts: Vec<String>) -> ApiResult<Vec<String>> {
    hosts.into_iter().map(|h| normalize_host(&h)).collect()
}

fn normalize_host(h: &str) -> ApiResult<String> {
    let host = h.trim().to_ascii_lowercase();
    let bare = host.strip_prefix("*.").unwrap_or(&host);
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(host)
    } else {
        Err(ApiError::invalid(format!("`{h}` is not a host name (no scheme, port or path)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_lowercased_and_wildcards_allowed_once() {
        let ok = normalize_hosts(vec![" API.GitHub.com ".into(), "*.Example.com".into()]);
        assert_eq!(ok.ok(), Some(vec!["api.github.com".to_owned(), "*.example.com".to_owned()]));
        for bad in ["https://x.com", "x.com:443", "x.com/a", "*.*.x.com", "", "a..b"] {
            assert!(normalize_hosts(vec![bad.into()]).is_err(), "{bad}");
        }
    }
}
