//! Model prices: turning a call's token usage into what it cost.
//!
//! A [`PriceTable`] maps model name patterns to a [`Price`] in US dollars per million tokens.
//! Costs come out as integer micro-dollars (millionths of a dollar), so summing the costs of
//! many calls never drifts. A model without a price has no cost ([`PriceTable::cost_micros`]
//! answers `None`): callers count it as zero and report the usage as unpriced.
//!
//! # Patterns
//!
//! A key is a model name (`gpt-4o`), or a prefix followed by `*` (`claude-sonnet-4*` prices
//! `claude-sonnet-4-20250514` and `claude-sonnet-4-5`). A `*` is only allowed at the very end.
//!
//! A key may be qualified with `/`-separated segments in front (`openai/gpt-4o-mini`,
//! `groq/*`). A key with `n` slashes is compared with the last `n + 1` `/`-separated segments
//! of the model name, and only when the name has that many: `gpt-4o-mini` prices both
//! `gpt-4o-mini` and `openrouter/openai/gpt-4o-mini`, while `openai/gpt-4o-mini` prices only
//! names ending in `openai/gpt-4o-mini`. Callers that want prices per configured provider look
//! up `"{provider}/{model}"`.
//!
//! When several keys match, the one with more segments wins, then the one with the longer name
//! or prefix, then an exact name over a prefix of the same length. So `gpt-4o-mini*` beats
//! `gpt-4o*` for `gpt-4o-mini-2024-07-18`, and `openai/*` beats `gpt-4o` for `openai/gpt-4o`.
//!
//! # Configuration
//!
//! A table deserializes from a map of keys to prices, for example in JSON
//! `{"gpt-4o": {"input": 2.5, "output": 10.0}}` or in TOML
//! `"gpt-4o" = { input = 2.5, output = 10.0 }`. Configured entries are applied over
//! [`PriceTable::defaults`] with [`PriceTable::merge`].

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::provider::Usage;

/// What a model costs, in US dollars per million tokens.
///
/// Prices are expected to be finite and non-negative; [`PriceTable`] refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per 1M input (prompt) tokens.
    #[serde(rename = "input", alias = "input_per_million")]
    pub input_per_million: f64,
    /// USD per 1M output (completion) tokens.
    #[serde(rename = "output", alias = "output_per_million")]
    pub output_per_million: f64,
}

impl Price {
    /// A price in USD per million input and output tokens.
    pub const fn new(input_per_million: f64, output_per_million: f64) -> Self {
        Self { input_per_million, output_per_million }
    }

    /// What `usage` costs at this price, in micro-dollars, rounded up to a whole one.
    ///
    /// A price per million tokens is exactly micro-dollars per token; it is counted in
    /// millionths of that (so prices are exact to 10⁻⁶ USD per million tokens) and the sum is
    /// rounded up once. Negative or NaN prices count as zero; the result saturates at
    /// `u64::MAX`.
    pub fn cost_micros(&self, usage: Usage) -> u64 {
        let input = u128::from(usage.input_tokens).saturating_mul(fine_units(self.input_per_million));
        let output = u128::from(usage.output_tokens).saturating_mul(fine_units(self.output_per_million));
        let micros = input.saturating_add(output).div_ceil(1_000_000);
        u64::try_from(micros).unwrap_or(u64::MAX)
    }

    fn check(&self) -> Result<(), String> {
        for (name, value) in [("input", self.input_per_million), ("output", self.output_per_million)] {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("the {name} price must be a finite, non-negative number, not {value}"));
            }
        }
        Ok(())
    }
}

/// A price per million tokens in millionths of a micro-dollar per token.
fn fine_units(per_million: f64) -> u128 {
    // `as` saturates: negative and NaN become 0, huge values u128::MAX.
    (per_million * 1_000_000.0).round() as u128
}

/// A table entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("price for `{pattern}`: {reason}")]
pub struct PriceError {
    /// The key of the entry.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Prices by model name pattern (see the [module documentation](self) for how keys match).
///
/// `PriceTable::default()` is empty; [`PriceTable::defaults`] holds list prices of well-known
/// models.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct PriceTable {
    entries: BTreeMap<String, Price>,
}

/// List prices in USD per million tokens (input, output).
const DEFAULT_PRICES: &[(&str, f64, f64)] = &[
    // OpenAI
    ("gpt-4o*", 2.50, 10.00),
    ("gpt-4o-mini*", 0.15, 0.60),
    ("gpt-4.1*", 2.00, 8.00),
    ("gpt-4.1-mini*", 0.40, 1.60),
    ("gpt-4.1-nano*", 0.10, 0.40),
    ("o3-mini*", 1.10, 4.40),
    ("o4-mini*", 1.10, 4.40),
    // Anthropic
    ("claude-opus-4*", 15.00, 75.00),
    ("claude-opus-4-5*", 5.00, 25.00),
    ("claude-sonnet-4*", 3.00, 15.00),
    ("claude-3-7-sonnet*", 3.00, 15.00),
    ("claude-haiku-4-5*", 1.00, 5.00),
    ("claude-3-5-haiku*", 0.80, 4.00),
];

impl PriceTable {
    /// An empty table: no model has a price.
    pub fn new() -> Self {
        Self::default()
    }

    /// List prices of a handful of well-known hosted models (OpenAI's GPT-4o, GPT-4.1 and
    /// o-series minis; Anthropic's Claude Opus 4, Sonnet 4 and Haiku), as published by the
    /// providers at the time of writing. Prices change: operators override or extend these in
    /// configuration ([`PriceTable::merge`]). Local models (Ollama, vLLM, llama.cpp) have no
    /// price here; configure one (such as `"ollama/*" = { input = 0, output = 0 }`) to count
    /// them as free rather than unpriced.
    pub fn defaults() -> Self {
        let entries = DEFAULT_PRICES
            .iter()
            .map(|&(pattern, input, output)| (pattern.to_owned(), Price::new(input, output)))
            .collect();
        Self { entries }
    }

    /// Adds or replaces the price for a key, answering the price it replaces.
    pub fn insert(&mut self, pattern: impl Into<String>, price: Price) -> Result<Option<Price>, PriceError> {
        let pattern = pattern.into();
        let checked = check_pattern(&pattern).and_then(|()| price.check());
        if let Err(reason) = checked {
            return Err(PriceError { pattern, reason });
        }
        Ok(self.entries.insert(pattern, price))
    }

    /// The price configured for exactly this key (no pattern matching).
    pub fn get(&self, pattern: &str) -> Option<Price> {
        self.entries.get(pattern).copied()
    }

    /// Removes the price for exactly this key.
    pub fn remove(&mut self, pattern: &str) -> Option<Price> {
        self.entries.remove(pattern)
    }

    /// The entries, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Price)> {
        self.entries.iter().map(|(pattern, price)| (pattern.as_str(), *price))
    }

    /// How many entries the table has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies `overrides` over this table: their entries replace those with the same key and
    /// the others are added. Entries of this table with other keys stay, and a more specific
    /// key still wins over a configured wildcard (configuring `claude-opus-4*` does not change
    /// the price of `claude-opus-4-5` while `claude-opus-4-5*` is in the table).
    pub fn merge(&mut self, overrides: PriceTable) {
        self.entries.extend(overrides.entries);
    }

    /// The price of a model (possibly qualified as `provider/model`), by the best matching key.
    pub fn price(&self, model: &str) -> Option<Price> {
        let mut best: Option<((usize, usize, bool), Price)> = None;
        for (pattern, price) in &self.entries {
            let slashes = pattern.matches('/').count();
            let Some(subject) = last_segments(model, slashes) else { continue };
            let (name, exact) = match pattern.strip_suffix('*') {
                Some(prefix) => (prefix, false),
                None => (pattern.as_str(), true),
            };
            let matches = if exact { subject == name } else { subject.starts_with(name) };
            if !matches {
                continue;
            }
            let rank = (slashes, name.len(), exact);
            if best.is_none_or(|(best_rank, _)| rank > best_rank) {
                best = Some((rank, *price));
            }
        }
        best.map(|(_, price)| price)
    }

    /// What `usage` of `model` cost, in micro-dollars rounded up; `None` when the model has no
    /// price (callers count it as 0 and report the usage as unpriced).
    pub fn cost_micros(&self, model: &str, usage: Usage) -> Option<u64> {
        self.price(model).map(|price| price.cost_micros(usage))
    }
}

/// The part of `model` made of its last `slashes + 1` `/`-separated segments, if it has that
/// many.
fn last_segments(model: &str, slashes: usize) -> Option<&str> {
    if model.matches('/').count() < slashes {
        return None;
    }
    let start = model.rmatch_indices('/').nth(slashes).map_or(0, |(slash, _)| slash + 1);
    Some(&model[start..])
}

/// Why a key is not a valid pattern, if it is not.
fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("the model name is empty".to_owned());
    }
    if pattern.trim() != pattern {
        return Err("the model name has spaces around it".to_owned());
    }
    if let Some(star) = pattern.find('*')
        && star + 1 != pattern.len()
    {
        return Err("`*` is only allowed at the end".to_owned());
    }
    let name = pattern.strip_suffix('*').unwrap_or(pattern);
    let mut segments = name.split('/');
    let last = segments.next_back().unwrap_or_default();
    if segments.any(str::is_empty) || (last.is_empty() && !pattern.ends_with('*')) {
        return Err("a `/`-separated segment is empty".to_owned());
    }
    Ok(())
}

impl<'de> Deserialize<'de> for PriceTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;

        impl<'de> Visitor<'de> for TableVisitor {
            type Value = PriceTable;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a map from model names to prices ({\"input\": USD, \"output\": USD} per 1M tokens)",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PriceTable, A::Error> {
                let mut table = PriceTable::new();
                while let Some(pattern) = map.next_key::<String>()? {
                    let price: Price = map.next_value().map_err(|error| {
                        <A::Error as de::Error>::custom(format_args!("price for `{pattern}`: {error}"))
                    })?;
                    if table.entries.contains_key(&pattern) {
                        return Err(<A::Error as de::Error>::custom(format_args!(
                            "price for `{pattern}` is given twice"
                        )));
                    }
                    table.insert(pattern, price).map_err(<A::Error as de::Error>::custom)?;
                }
                Ok(table)
            }
        }

        deserializer.deserialize_map(TableVisitor)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use serde_json::json;

    fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage { input_tokens, output_tokens }
    }

    fn table(entries: &[(&str, f64, f64)]) -> PriceTable {
        let mut table = PriceTable::new();
        for &(pattern, input, output) in entries {
            table.insert(pattern, Price::new(input, output)).unwrap();
        }
        table
    }

    #[test]
    fn exact_names_beat_wildcards_and_longer_prefixes_win() {
        let table = table(&[
            ("gpt-4o", 1.0, 1.0),
            ("gpt-4o*", 2.0, 2.0),
            ("gpt-4o-mini*", 3.0, 3.0),
            ("*", 9.0, 9.0),
        ]);
        assert_eq!(table.price("gpt-4o"), Some(Price::new(1.0, 1.0)));
        assert_eq!(table.price("gpt-4o-2024-08-06"), Some(Price::new(2.0, 2.0)));
        assert_eq!(table.price("gpt-4o-mini"), Some(Price::new(3.0, 3.0)));
        assert_eq!(table.price("gpt-4o-mini-2024-07-18"), Some(Price::new(3.0, 3.0)));
        assert_eq!(table.price("llama3.1:8b"), Some(Price::new(9.0, 9.0)));
        // Matching is by prefix from the start and case-sensitive.
        let table = table_without_catch_all();
        assert_eq!(table.price("my-gpt-4o"), None);
        assert_eq!(table.price("GPT-4o"), None);
    }

    fn table_without_catch_all() -> PriceTable {
        table(&[("gpt-4o", 1.0, 1.0), ("gpt-4o*", 2.0, 2.0)])
    }

    #[test]
    fn qualified_keys() {
        let table = table(&[
            ("gpt-4o-mini", 0.15, 0.6),
            ("openai/gpt-4o-mini", 0.2, 0.8),
            ("groq/*", 0.05, 0.1),
            ("a/b/c*", 7.0, 7.0),
        ]);
        // An unqualified key matches the last segment of any name.
        assert_eq!(table.price("gpt-4o-mini"), Some(Price::new(0.15, 0.6)));
        assert_eq!(table.price("azure/gpt-4o-mini"), Some(Price::new(0.15, 0.6)));
        // A qualified key wins over an unqualified one, and needs its qualifier.
        assert_eq!(table.price("openai/gpt-4o-mini"), Some(Price::new(0.2, 0.8)));
        assert_eq!(table.price("openrouter/openai/gpt-4o-mini"), Some(Price::new(0.2, 0.8)));
        assert_eq!(table.price("groq/llama-3.1-8b-instant"), Some(Price::new(0.05, 0.1)));
        assert_eq!(table.price("llama-3.1-8b-instant"), None);
        // `groq/*` covers one segment after `groq/`, not more.
        assert_eq!(table.price("groq/meta/llama"), None);
        assert_eq!(table.price("a/b/cde"), Some(Price::new(7.0, 7.0)));
        assert_eq!(table.price("x/a/b/c"), Some(Price::new(7.0, 7.0)));
        assert_eq!(table.price("b/c"), None);
    }

    #[test]
    fn last_segments_of_a_name() {
        assert_eq!(last_segments("a/b/c", 0), Some("c"));
        assert_eq!(last_segments("a/b/c", 1), Some("b/c"));
        assert_eq!(last_segments("a/b/c", 2), Some("a/b/c"));
        assert_eq!(last_segments("a/b/c", 3), None);
        assert_eq!(last_segments("c", 0), Some("c"));
        assert_eq!(last_segments("c", 1), None);
        assert_eq!(last_segments("", 0), Some(""));
        assert_eq!(last_segments("a/", 0), Some(""));
        assert_eq!(last_segments("/c", 1), Some("/c"));
    }

    #[test]
    fn costs_are_micro_dollars_rounded_up() {
        let table = table(&[("m", 2.5, 10.0), ("cheap", 0.15, 0.6), ("tenth", 0.1, 0.1), ("free", 0.0, 0.0)]);
        // 1000 × 2.5 + 500 × 10 = 7500 micro-dollars.
        assert_eq!(table.cost_micros("m", usage(1000, 500)), Some(7500));
        assert_eq!(table.cost_micros("m", usage(1_000_000, 1_000_000)), Some(12_500_000));
        // 0.15 + 0.6 = 0.75 micro-dollars: one, rounded up.
        assert_eq!(table.cost_micros("cheap", usage(1, 1)), Some(1));
        assert_eq!(table.cost_micros("cheap", usage(10, 0)), Some(2));
        // No float drift: 30 × 0.1 is exactly 3.
        assert_eq!(table.cost_micros("tenth", usage(30, 0)), Some(3));
        assert_eq!(table.cost_micros("tenth", usage(0, 31)), Some(4));
        assert_eq!(table.cost_micros("m", usage(0, 0)), Some(0));
        assert_eq!(table.cost_micros("free", usage(123_456, 789)), Some(0));
        // Huge usage saturates rather than overflowing.
        assert_eq!(table.cost_micros("m", usage(u64::MAX, u64::MAX)), Some(u64::MAX));
    }

    #[test]
    fn unknown_models_have_no_cost() {
        let table = PriceTable::defaults();
        assert_eq!(table.cost_micros("llama3.1:8b", usage(1000, 1000)), None);
        assert_eq!(table.cost_micros("ollama/qwen2.5", usage(1000, 1000)), None);
        assert_eq!(PriceTable::new().cost_micros("gpt-4o", usage(1, 1)), None);
    }

    #[test]
    fn defaults_price_well_known_models() {
        let table = PriceTable::defaults();
        for (pattern, price) in table.iter() {
            check_pattern(pattern).unwrap();
            price.check().unwrap();
        }
        let price = |model| table.price(model).map(|p| (p.input_per_million, p.output_per_million));
        assert_eq!(price("gpt-4o"), Some((2.5, 10.0)));
        assert_eq!(price("gpt-4o-2024-11-20"), Some((2.5, 10.0)));
        assert_eq!(price("gpt-4o-mini"), Some((0.15, 0.6)));
        assert_eq!(price("gpt-4.1"), Some((2.0, 8.0)));
        assert_eq!(price("gpt-4.1-mini-2025-04-14"), Some((0.4, 1.6)));
        assert_eq!(price("o3-mini"), Some((1.1, 4.4)));
        assert_eq!(price("claude-sonnet-4-20250514"), Some((3.0, 15.0)));
        assert_eq!(price("claude-sonnet-4-5"), Some((3.0, 15.0)));
        assert_eq!(price("claude-opus-4-1-20250805"), Some((15.0, 75.0)));
        assert_eq!(price("claude-opus-4-5-20251101"), Some((5.0, 25.0)));
        assert_eq!(price("claude-3-5-haiku-20241022"), Some((0.8, 4.0)));
        assert_eq!(price("openrouter/openai/gpt-4o-mini"), Some((0.15, 0.6)));
        // gpt-4o for 1000 input and 200 output tokens: 2500 + 2000.
        assert_eq!(table.cost_micros("gpt-4o", usage(1000, 200)), Some(4500));
    }

    #[test]
    fn merge_overrides_defaults() {
        let mut table = PriceTable::defaults();
        let before = table.len();
        let overrides: PriceTable = serde_json::from_value(json!({
            "gpt-4o": {"input": 2.0, "output": 8.0},
            "claude-opus-4*": {"input": 10.0, "output": 50.0},
            "ollama/*": {"input": 0, "output": 0},
        }))
        .unwrap();
        table.merge(overrides);
        assert_eq!(table.len(), before + 2);
        assert_eq!(table.price("gpt-4o"), Some(Price::new(2.0, 8.0)));
        // The default wildcard still prices the rest of the family.
        assert_eq!(table.price("gpt-4o-2024-08-06"), Some(Price::new(2.5, 10.0)));
        assert_eq!(table.price("claude-opus-4-1"), Some(Price::new(10.0, 50.0)));
        assert_eq!(table.price("claude-opus-4-5"), Some(Price::new(5.0, 25.0)));
        assert_eq!(table.cost_micros("ollama/llama3.1:8b", usage(10_000, 10_000)), Some(0));
    }

    #[test]
    fn deserializes_and_serializes() {
        let table: PriceTable = serde_json::from_str(
            r#"{"gpt-4o": {"input": 2.5, "output": 10.0}, "x*": {"input_per_million": 1, "output_per_million": 2}}"#,
        )
        .unwrap();
        assert_eq!(table.get("gpt-4o"), Some(Price::new(2.5, 10.0)));
        assert_eq!(table.get("x*"), Some(Price::new(1.0, 2.0)));
        assert_eq!(
            serde_json::to_value(&table).unwrap(),
            json!({"gpt-4o": {"input": 2.5, "output": 10.0}, "x*": {"input": 1.0, "output": 2.0}})
        );
        let empty: PriceTable = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn deserialization_errors_name_the_entry() {
        let error = |text: &str| serde_json::from_str::<PriceTable>(text).unwrap_err().to_string();
        let message = error(r#"{"gpt-4o": {"input": 2.5, "output": 10.0}, "bad-model": {"input": 1.0}}"#);
        assert!(message.contains("price for `bad-model`") && message.contains("output"), "{message}");
        let message = error(r#"{"bad-model": {"input": 1, "output": 2, "cached": 3}}"#);
        assert!(message.contains("price for `bad-model`") && message.contains("cached"), "{message}");
        let message = error(r#"{"bad-model": {"input": "cheap", "output": 2}}"#);
        assert!(message.contains("price for `bad-model`"), "{message}");
        let message = error(r#"{"bad-model": {"input": -1, "output": 2}}"#);
        assert!(message.contains("price for `bad-model`") && message.contains("non-negative"), "{message}");
        let message = error(r#"{"gpt-*-mini": {"input": 1, "output": 2}}"#);
        assert!(message.contains("price for `gpt-*-mini`") && message.contains("end"), "{message}");
        let message = error(r#"{"a": {"input": 1, "output": 2}, "a": {"input": 1, "output": 2}}"#);
        assert!(message.contains("price for `a` is given twice"), "{message}");
        let message = error(r#"["gpt-4o"]"#);
        assert!(message.contains("a map from model names to prices"), "{message}");
    }

    #[test]
    fn insert_checks_keys_and_prices() {
        let mut table = PriceTable::new();
        let price = Price::new(1.0, 1.0);
        for bad in ["", " gpt-4o", "a**", "*a", "openai//gpt", "/gpt", "openai/"] {
            let error = table.insert(bad, price).unwrap_err();
            assert_eq!(error.pattern, bad);
        }
        for bad in [f64::NAN, f64::INFINITY, -0.5] {
            assert!(table.insert("m", Price::new(bad, 1.0)).is_err());
            assert!(table.insert("m", Price::new(1.0, bad)).is_err());
        }
        assert!(table.is_empty());
        for good in ["*", "openai/*", "a/b/c", "gpt-4o*", "llama3.1:8b"] {
            assert_eq!(table.insert(good, price).unwrap(), None);
        }
        assert_eq!(table.insert("*", Price::new(2.0, 2.0)).unwrap(), Some(price));
        assert_eq!(table.remove("*"), Some(Price::new(2.0, 2.0)));
        assert_eq!(table.len(), 4);
    }
}
