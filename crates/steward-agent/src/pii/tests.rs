#![expect(clippy::unwrap_used, reason = "tests")]

use super::detect::luhn_valid;
use super::*;
use proptest::prelude::*;
use serde_json::json;

fn masked(text: &str) -> String {
    Masker::new().mask_text(text)
}

fn round_trip(text: &str) -> String {
    let mut masker = Masker::new();
    let out = masker.mask_text(text);
    assert_eq!(masker.restore_text(&out), text, "round trip of {text:?} via {out:?}");
    out
}

#[test]
fn masks_and_restores_several_values() {
    let text = "Write to ann@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111.";
    let out = round_trip(text);
    assert_eq!(out, "Write to [email_1] or call [phone_1]; card [card_1].");
}

#[test]
fn repeated_values_share_a_placeholder_and_numbering_is_per_kind() {
    let mut masker = Masker::new();
    let out = masker.mask_text("a@x.org, b@x.org, a@x.org, 555-123-4567, b@x.org");
    assert_eq!(out, "[email_1], [email_2], [email_1], [phone_1], [email_2]");
    // Stable across calls on the same masker.
    assert_eq!(masker.mask_text("b@x.org then c@x.org"), "[email_2] then [email_3]");
    assert_eq!(masker.len(), 4);
    assert_eq!(masker.restore_text("[email_3] [email_1] [phone_1]"), "c@x.org a@x.org 555-123-4567");
}

#[test]
fn values_at_edges_and_next_to_punctuation() {
    for text in [
        "ann@example.com",
        "ann@example.com.",
        "(ann@example.com)",
        "<ann@example.com>,",
        "\"ann@example.com\"",
        "4111111111111111",
        "[4111111111111111]",
        "+14155552671",
        "(+1 415 555 2671)",
        "ann@example.com,4111111111111111",
        "x:ann@example.com;+14155552671!",
        "ünïcödé ann@example.com ✓",
    ] {
        let out = round_trip(text);
        assert!(!out.contains("ann@example.com") && !out.contains("4111") && !out.contains("2671"), "{out}");
    }
    assert_eq!(masked("(ann@example.com)"), "([email_1])");
    assert_eq!(masked("[4111111111111111]"), "[[card_1]]");
    assert_eq!(masked("x:ann@example.com;+14155552671!"), "x:[email_1];[phone_1]!");
}

#[test]
fn email_edge_cases() {
    assert_eq!(masked("mail first.last+news@mail.sub.example.co.uk now"), "mail [email_1] now");
    assert_eq!(masked("It is ann@example.com."), "It is [email_1].");
    assert_eq!(masked("ann@example.com... or"), "[email_1]... or");
    assert_eq!(masked("ANN_99%x@Example-Mail.COM"), "[email_1]");
    assert_eq!(masked("mailto:ann@example.com"), "mailto:[email_1]");
    assert_eq!(masked("jürgen@müller.de"), "[email_1]");
    // Leading dots and `..` are not part of the local part.
    assert_eq!(masked("...ann@example.com"), "...[email_1]");
    assert_eq!(masked("a..ann@example.com"), "a..[email_1]");
    // Not addresses.
    for text in ["user@localhost", "a@b.c", "@example.com", "ann.@example.com", "a@b..com", "x@1.23", "@"] {
        assert_eq!(masked(text), text);
    }
    // Two addresses sharing characters do not overlap.
    let mut masker = Masker::new();
    let out = masker.mask_text("a@b.com@c.org");
    assert_eq!(masker.restore_text(&out), "a@b.com@c.org");
}

#[test]
fn cards_must_pass_luhn() {
    assert_eq!(masked("card 4111 1111 1111 1111 ok"), "card [card_1] ok");
    assert_eq!(masked("card 5500-0000-0000-0004 ok"), "card [card_1] ok");
    assert_eq!(masked("amex 378282246310005"), "amex [card_1]");
    assert_eq!(masked("amex 3782 822463 10005"), "amex [card_1]");
    assert_eq!(masked("4242424242424242"), "[card_1]");
    assert_eq!(masked("19 digits 4111 1111 1111 1111 003"), "19 digits [card_1]");
    // Luhn-invalid: left alone, and not taken for a phone either.
    for text in ["4111 1111 1111 1112", "4111111111111112", "5500-0000-0000-0005", "1234 5678 9012 3456"] {
        assert_eq!(masked(text), text);
    }
    // Mixed separators are not a card.
    assert_eq!(masked("4111 1111-1111 1111"), "4111 1111-1111 1111");
    // Inside a word or a longer number.
    assert_eq!(masked("id4111111111111111"), "id4111111111111111");
    assert_eq!(masked("0.4111111111111111"), "0.4111111111111111");
    // A trailing group that would break the checksum is left out.
    assert_eq!(masked("4111 1111 1111 1111 2026"), "[card_1] 2026");
}

#[test]
fn luhn() {
    let digits = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
    assert!(luhn_valid(&digits("4111111111111111")));
    assert!(luhn_valid(&digits("79927398713")));
    assert!(!luhn_valid(&digits("79927398710")));
    assert!(!luhn_valid(&digits("4111111111111112")));
}

#[test]
fn phones() {
    for text in [
        "+44 20 7946 0958",
        "+1 (415) 555-2671",
        "+1-415-555-2671",
        "+4915112345678",
        "+49 (0)30 1234567",
        "0044 20 7946 0958",
        "(555) 123-4567",
        "(555)123-4567",
        "555-123-4567",
        "555.123.4567",
        "555-1234",
        "1-800-555-0199",
        "030 1234567",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "(030) 123 456 78",
        "07911123456",
    ] {
        assert_eq!(masked(&format!("Tel: {text}.")), "Tel: [phone_1].", "{text}");
    }
}

#[test]
fn numbers_that_are_not_phones() {
    for text in [
        "2026-11-22",
        "on 2026-11-22 at 12:30",
        "2026-11-22T12:30:00Z",
        "22.11.2026",
        "11/22/2026",
        "12:30",
        "12:30:45",
        "1999",
        "from 1999-2005",
        "€1,234.56",
        "$1234567.89",
        "1,234,567.89",
        "1.234.567",
        "1 234 567",
        "100 200 300",
        "order #12345",
        "order 12345",
        "1234567890",
        "192.168.100.200",
        "10.0.0.1",
        "172.16.254.100",
        "1 2 3 4 5 6 7 8",
        "version 1.2.3",
        "12-34-56",
        "+12345",
        "call555-123-4567",
    ] {
        assert_eq!(masked(text), text, "{text}");
    }
}

#[test]
fn json_values_mask_strings_only() {
    let mut masker = Masker::new();
    let value = json!({
        "ann@example.com": "ann@example.com",
        "contacts": [{"email": "bob@example.org", "phone": "+1 415 555 2671"}, "ann@example.com"],
        "number": 4111111111111111_u64,
        "nothing": null,
        "ok": true,
    });
    let out = masker.mask_value(&value);
    assert_eq!(
        out,
        json!({
            "ann@example.com": "[email_1]",
            "contacts": [{"email": "[email_2]", "phone": "[phone_1]"}, "[email_1]"],
            "number": 4111111111111111_u64,
            "nothing": null,
            "ok": true,
        })
    );
    assert_eq!(masker.restore_value(&out), value);
    // Tool arguments the model writes with placeholders get the originals.
    let arguments = json!({"to": "[email_2]", "cc": ["[email_1]", "[email_9]"], "n": 1});
    assert_eq!(
        masker.restore_value(&arguments),
        json!({"to": "bob@example.org", "cc": ["ann@example.com", "[email_9]"], "n": 1})
    );
}

#[test]
fn restore_leaves_unknown_and_malformed_placeholders() {
    let mut masker = Masker::new();
    masker.mask_text("ann@example.com");
    for text in ["[email_2]", "[email_]", "[email_1", "[EMAIL_1]", "[phone_1]", "[[email_x]]", "[", "]"] {
        assert_eq!(masker.restore_text(text), text);
    }
    assert_eq!(masker.restore_text("[[email_1]]"), "[ann@example.com]");
    assert_eq!(masker.restore_text("x[email_1]y[email_1]"), "xann@example.comyann@example.com");
}

#[test]
fn literal_placeholders_in_the_input_survive_a_round_trip() {
    let mut masker = Masker::new();
    let text = "literally [email_1] and [card_2], then ann@example.com";
    let out = masker.mask_text(text);
    assert_eq!(out, "literally [email_1] and [card_2], then [email_2]");
    assert_eq!(masker.restore_text(&out), text);
    // In a JSON value, a literal anywhere in it is kept out of the numbering.
    let value = json!(["bob@example.org", "see [email_3]"]);
    let out = masker.mask_value(&value);
    assert_eq!(out, json!(["[email_4]", "see [email_3]"]));
    assert_eq!(masker.restore_value(&out), value);
}

#[test]
fn entries_persist_the_mapping() {
    let mut masker = Masker::new();
    let out = masker.mask_text("ann@example.com, +1 415 555 2671, bob@example.org, 4111111111111111");
    let entries = masker.to_entries();
    assert_eq!(
        entries,
        vec![
            ("[email_1]".to_owned(), "ann@example.com".to_owned()),
            ("[phone_1]".to_owned(), "+1 415 555 2671".to_owned()),
            ("[email_2]".to_owned(), "bob@example.org".to_owned()),
            ("[card_1]".to_owned(), "4111111111111111".to_owned()),
        ]
    );
    let mut resumed = Masker::from_entries(entries);
    assert_eq!(resumed.restore_text(&out), masker.restore_text(&out));
    // Known values keep their placeholders; new ones continue the numbering.
    assert_eq!(resumed.mask_text("bob@example.org cy@example.net"), "[email_2] [email_3]");
    assert_eq!(resumed.mask_text("5500 0000 0000 0004"), "[card_2]");
    // Entries that are not placeholders, and repeats, are ignored.
    let odd = Masker::from_entries(vec![
        ("[email_7]".to_owned(), "a@b.org".to_owned()),
        ("[email_7]".to_owned(), "other@b.org".to_owned()),
        ("email_1".to_owned(), "c@d.org".to_owned()),
        ("[email_2] ".to_owned(), "c@d.org".to_owned()),
        ("[fax_1]".to_owned(), "c@d.org".to_owned()),
    ]);
    assert_eq!(odd.len(), 1);
    assert_eq!(odd.restore_text("[email_7]"), "a@b.org");
    let mut odd = odd;
    assert_eq!(odd.mask_text("new@b.org"), "[email_8]");
}

#[test]
fn debug_hides_values() {
    let mut masker = Masker::new();
    assert!(masker.is_empty());
    masker.mask_text("ann@example.com 4111111111111111 ann@example.com");
    assert!(!masker.is_empty());
    let debug = format!("{masker:?}");
    assert_eq!(debug, "Masker { emails: 1, phones: 0, cards: 1, .. }");
    assert!(!debug.contains("ann") && !debug.contains("4111"));
}

#[test]
fn text_without_personal_data_is_unchanged() {
    let mut masker = Masker::new();
    let text = "Nothing here: 42 apples, 3.14, 2026, [1, 2, 3], a @ b, ok.";
    assert_eq!(masker.mask_text(text), text);
    assert!(masker.is_empty());
    assert_eq!(masker.mask_text(""), "");
}

#[test]
fn long_and_repetitive_inputs() {
    for unit in ["(1)", "1 ", "1-", "a@", "@a.", "4111 ", "+1 ", ".", "[email_1]"] {
        let text = unit.repeat(20_000);
        let mut masker = Masker::new();
        let out = masker.mask_text(&text);
        assert_eq!(masker.restore_text(&out), text);
    }
}

/// A random Luhn-valid 16-digit number starting with 4, written together or in groups.
fn card() -> impl Strategy<Value = String> {
    (proptest::collection::vec(0u8..10, 14), prop_oneof![Just(""), Just(" "), Just("-")]).prop_map(
        |(body, separator)| {
            let mut digits = vec![4u8];
            digits.extend(body);
            let check = (0u8..10)
                .find(|&d| {
                    let mut all = digits.clone();
                    all.push(d);
                    luhn_valid(&all)
                })
                .unwrap();
            digits.push(check);
            let groups: Vec<String> =
                digits.chunks(4).map(|chunk| chunk.iter().map(|d| char::from(b'0' + d)).collect()).collect();
            groups.join(separator)
        },
    )
}

fn email() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,8}(\\.[a-zA-Z0-9_]{1,6})?(\\+[a-z0-9]{1,5})?@[a-z0-9]{1,10}(\\.[a-z0-9]([a-z0-9-]{0,5}[a-z0-9])?)?\\.[a-z]{2,6}"
}

fn filler() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,30}", "[0-9 .,:+()#@-]{0,20}", any::<String>()]
}

proptest! {
    #[test]
    fn mask_then_restore_gives_the_original(
        parts in proptest::collection::vec((filler(), prop_oneof![email(), card()]), 0..6),
        tail in filler(),
    ) {
        let mut text = String::new();
        for (filler, value) in &parts {
            text.push_str(filler);
            text.push(' ');
            text.push_str(value);
            text.push(' ');
        }
        text.push_str(&tail);
        let mut masker = Masker::new();
        let out = masker.mask_text(&text);
        prop_assert_eq!(masker.restore_text(&out), text.clone());
        for (_, value) in &parts {
            prop_assert!(!out.contains(value.as_str()), "{:?} left in {:?}", value, out);
        }
    }

    #[test]
    fn arbitrary_text_round_trips(text in any::<String>()) {
        let mut masker = Masker::new();
        let out = masker.mask_text(&text);
        prop_assert_eq!(masker.restore_text(&out), text);
    }
}
