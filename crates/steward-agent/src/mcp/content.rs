//! A tool's result as text for the model.

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use serde_json::Value;

use super::ToolResult;

/// Joins the text blocks; images, audio and binary resources become placeholders naming their
/// type (the model is sent text only). Structured content is added as JSON text unless a text
/// block already holds the same value, as servers are asked to do.
pub(super) fn flatten(result: CallToolResult) -> ToolResult {
    let mut parts: Vec<String> = result.content.iter().filter_map(block_text).collect();
    if let Some(structured) = result.structured_content {
        let repeated = result
            .content
            .iter()
            .filter_map(|b| b.as_text())
            .any(|t| serde_json::from_str::<Value>(&t.text).is_ok_and(|v| v == structured));
        if !repeated {
            parts.push(structured.to_string());
        }
    }
    ToolResult { content: parts.join("\n"), is_error: result.is_error.unwrap_or(false) }
}

fn block_text(block: &ContentBlock) -> Option<String> {
    Some(match block {
        ContentBlock::Text(t) => t.text.clone(),
        ContentBlock::Image(i) => format!("[image: {}]", i.mime_type),
        ContentBlock::Audio(a) => format!("[audio: {}]", a.mime_type),
        ContentBlock::Resource(r) => match &r.resource {
            ResourceContents::TextResourceContents { text, .. } => text.clone(),
            ResourceContents::BlobResourceContents { uri, .. } => format!("[resource: {uri}]"),
            _ => return None,
        },
        ContentBlock::ResourceLink(link) => format!("[resource link: {}]", link.uri),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_blocks_are_joined_and_others_named() {
        let result = CallToolResult::success(vec![
            ContentBlock::text("first"),
            ContentBlock::image("AAAA", "image/png"),
            ContentBlock::embedded_text("file:///notes.txt", "embedded"),
            ContentBlock::text("last"),
        ]);
        let flat = flatten(result);
        assert_eq!(flat.content, "first\n[image: image/png]\nembedded\nlast");
        assert!(!flat.is_error);
    }

    #[test]
    fn structured_content_is_added_once() {
        let mut only = CallToolResult::success(vec![]);
        only.structured_content = Some(json!({"sum": 5}));
        assert_eq!(flatten(only).content, r#"{"sum":5}"#);

        let mut both = CallToolResult::success(vec![ContentBlock::text(r#"{ "sum": 5 }"#)]);
        both.structured_content = Some(json!({"sum": 5}));
        assert_eq!(flatten(both).content, r#"{ "sum": 5 }"#);

        let mut differing = CallToolResult::success(vec![ContentBlock::text("five")]);
        differing.structured_content = Some(json!({"sum": 5}));
        assert_eq!(flatten(differing).content, "five\n{\"sum\":5}");
    }

    #[test]
    fn errors_stay_errors() {
        let flat = flatten(CallToolResult::error(vec![ContentBlock::text("no such city")]));
        assert_eq!(flat, ToolResult { content: "no such city".into(), is_error: true });
    }
}
