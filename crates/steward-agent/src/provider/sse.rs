//! An incremental Server-Sent Events parser: feed it the body's byte chunks as they arrive and
//! it hands back each complete event. Lines may end in `\n`, `\r\n` or `\r`, and an event, a
//! line or a multi-byte character may be split across chunks.

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if the event had one.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last `id:` seen on the stream.
    pub id: Option<String>,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet ended.
    line: Vec<u8>,
    /// The previous byte was `\r`, so a `\n` right after it ends nothing.
    after_cr: bool,
    /// No line has been read yet (a leading byte-order mark is dropped).
    first_line: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self { first_line: true, ..Self::default() }
    }

    /// Reads one chunk and returns the events it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(at) => {
                    self.line.extend_from_slice(&rest[..at]);
                    self.after_cr = rest[at] == b'\r';
                    rest = &rest[at + 1..];
                    self.end_line(&mut out);
                }
                None => {
                    self.line.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        out
    }

    /// The end of the stream: an unterminated last line and event still count, since some
    /// servers close the connection without the final blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        self.end_line(&mut out);
        out.pop()
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let bytes = std::mem::take(&mut self.line);
        let mut line = String::from_utf8_lossy(&bytes).into_owned();
        if self.first_line {
            self.first_line = false;
            if let Some(stripped) = line.strip_prefix('\u{feff}') {
                line = stripped.to_owned();
            }
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take().filter(|e| !e.is_empty());
        if !self.has_data {
            return;
        }
        self.has_data = false;
        out.push(SseEvent { event, data: std::mem::take(&mut self.data), id: self.id.clone() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out: Vec<SseEvent> = chunks.iter().flat_map(|c| p.push(c)).collect();
        out.extend(p.finish());
        out
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn lf_and_crlf_lines() {
        let lf = all(&[b"data: a\n\ndata: b\n\n"]);
        let crlf = all(&[b"data: a\r\n\r\ndata: b\r\n\r\n"]);
        let cr = all(&[b"data: a\r\rdata: b\r\r"]);
        assert_eq!(data(&lf), ["a", "b"]);
        assert_eq!(lf, crlf);
        assert_eq!(lf, cr);
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_end() {
        let events = all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n", b"\r\n"]);
        assert_eq!(data(&events), ["a", "b"]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let events = all(&[b"data: one\ndata:two\ndata\n\n"]);
        assert_eq!(data(&events), ["one\ntwo\n"]);
    }

    #[test]
    fn comments_and_event_names() {
        let events = all(&[b": keep-alive\n\nevent: ping\ndata: {}\n\n: x\ndata: plain\n\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.as_deref(), Some("ping"));
        assert_eq!(events[0].data, "{}");
        assert_eq!(events[1].event, None, "the name does not carry over to the next event");
        assert_eq!(events[1].data, "plain");
    }

    #[test]
    fn events_split_at_every_byte() {
        let text = "event: content_block_delta\r\ndata: {\"text\":\"h\u{e9}llo \u{1f600}\"}\r\n\r\nid: 7\ndata: [DONE]\n\n";
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
        let events = all(&chunks);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.as_deref(), Some("content_block_delta"));
        assert_eq!(events[0].data, "{\"text\":\"h\u{e9}llo \u{1f600}\"}");
        assert_eq!(events[1].data, "[DONE]");
        assert_eq!(events[1].id.as_deref(), Some("7"));
    }

    #[test]
    fn unterminated_last_event_is_kept_and_empty_events_are_not_dispatched() {
        let events = all(&[b"event: nothing\n\n\n\ndata: last"]);
        assert_eq!(data(&events), ["last"]);
        assert_eq!(events[0].event, None);
    }

    #[test]
    fn empty_data_line_dispatches_an_empty_event_and_bom_is_dropped() {
        let events = all(&[b"\xef\xbb\xbfdata:\n\n"]);
        assert_eq!(events, [SseEvent::default()]);
    }
}
