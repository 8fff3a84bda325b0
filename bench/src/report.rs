//! Output: one JSON line per repetition, a summary line per scenario (median, min and max of
//! every number), and the Markdown table `bench/run.sh` prints from the summary lines.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Map, Value, json};

use crate::RunArgs;

/// The numbers (and notes) one repetition reports, in the order they are printed.
pub type Sample = Map<String, Value>;

/// Runs `reps` repetitions of a scenario, printing each as it ends, then the summary.
pub async fn repeat<F, Fut>(scenario: &str, args: &RunArgs, reps: usize, mut rep: F) -> anyhow::Result<()>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<Sample>>,
{
    anyhow::ensure!(reps > 0, "--reps must be at least 1");
    let db = args.db.name();
    let mut samples = Vec::with_capacity(reps);
    for i in 1..=reps {
        eprintln!("{scenario} on {db}: repetition {i} of {reps}");
        let sample = rep(i).await.with_context(|| format!("{scenario} on {db}, repetition {i}"))?;
        let mut line = Map::new();
        line.insert("scenario".into(), json!(scenario));
        line.insert("db".into(), json!(db));
        line.insert("rep".into(), json!(i));
        line.extend(sample.clone());
        println!("{}", Value::Object(line));
        samples.push(sample);
    }
    println!("{}", summary(scenario, db, &samples));
    Ok(())
}

/// Median, minimum and maximum of every numeric field the samples share.
fn summary(scenario: &str, db: &str, samples: &[Sample]) -> Value {
    let (mut median, mut min, mut max) = (Map::new(), Map::new(), Map::new());
    if let Some(first) = samples.first() {
        for key in first.keys() {
            let mut values: Vec<f64> = samples.iter().filter_map(|s| s.get(key)?.as_f64()).collect();
            if values.len() != samples.len() {
                continue;
            }
            values.sort_by(f64::total_cmp);
            median.insert(key.clone(), json!(round(median_of(&values))));
            min.insert(key.clone(), json!(round(values[0])));
            max.insert(key.clone(), json!(round(values[values.len() - 1])));
        }
    }
    json!({
        "scenario": scenario,
        "db": db,
        "summary": true,
        "reps": samples.len(),
        "median": median,
        "min": min,
        "max": max,
    })
}

/// The middle value of sorted, non-empty `values` (the mean of the two middle ones for an even
/// count).
fn median_of(values: &[f64]) -> f64 {
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// The median of `values` in any order (NaN when there are none, which prints as `null`).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    median_of(&values)
}

/// Keeps three decimals: enough for microseconds and MiB, and readable JSON.
pub fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// One summary line, as read back.
struct Summary {
    reps: u64,
    median: Map<String, Value>,
    min: Map<String, Value>,
    max: Map<String, Value>,
}

/// Prints a Markdown table of the summary lines in `files`: per scenario and metric, the
/// median (min–max) on each database and the PostgreSQL/SQLite ratio of the medians.
pub fn table(files: &[PathBuf]) -> anyhow::Result<()> {
    // scenario → db → summary; scenarios keep the order they first appear in.
    let mut order: Vec<String> = Vec::new();
    let mut found: BTreeMap<(String, String), Summary> = BTreeMap::new();
    let mut machines: Vec<Value> = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(line).with_context(|| format!("bad line in {}", file.display()))?;
            if v.get("machine").is_some() {
                machines.push(v);
                continue;
            }
            if v.get("summary") != Some(&Value::Bool(true)) {
                continue;
            }
            let text_of = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            let obj = |k: &str| v.get(k).and_then(Value::as_object).cloned().unwrap_or_default();
            let scenario = text_of("scenario");
            if !order.contains(&scenario) {
                order.push(scenario.clone());
            }
            let summary = Summary {
                reps: v.get("reps").and_then(Value::as_u64).unwrap_or(0),
                median: obj("median"),
                min: obj("min"),
                max: obj("max"),
            };
            found.insert((scenario, text_of("db")), summary);
        }
    }
    println!("| Scenario | Metric | SQLite: median (min–max) | PostgreSQL: median (min–max) | PG / SQLite |");
    println!("|---|---|---|---|---|");
    for scenario in &order {
        let sqlite = found.get(&(scenario.clone(), "sqlite".to_owned()));
        let pg = found.get(&(scenario.clone(), "postgres".to_owned()));
        let mut metrics: Vec<&String> = Vec::new();
        for s in [sqlite, pg].into_iter().flatten() {
            for k in s.median.keys() {
                if !metrics.contains(&k) {
                    metrics.push(k);
                }
            }
        }
        let reps = |s: Option<&Summary>| s.map_or("–".to_owned(), |s| s.reps.to_string());
        let label = format!("{scenario} (reps: SQLite {}, PostgreSQL {})", reps(sqlite), reps(pg));
        for metric in metrics {
            let cell = |s: Option<&Summary>| match s.and_then(|s| s.median.get(metric)?.as_f64()) {
                Some(m) => {
                    let lo = s.and_then(|s| s.min.get(metric)?.as_f64()).unwrap_or(m);
                    let hi = s.and_then(|s| s.max.get(metric)?.as_f64()).unwrap_or(m);
                    format!("{} ({}–{})", fmt(m), fmt(lo), fmt(hi))
                }
                None => "–".to_owned(),
            };
            let median = |s: Option<&Summary>| s.and_then(|s| s.median.get(metric)?.as_f64());
            let ratio = match (median(pg), median(sqlite)) {
                (Some(p), Some(q)) if q != 0.0 => format!("{:.2}×", p / q),
                _ => "–".to_owned(),
            };
            println!("| {label} | {metric} | {} | {} | {ratio} |", cell(sqlite), cell(pg));
        }
    }
    if let Some(m) = machines.first() {
        let text =
            |k: &str| m.get(k).map_or_else(String::new, |v| v.as_str().map_or(v.to_string(), str::to_owned));
        println!();
        println!(
            "Machine: {} × {}, {} GiB, {}, Linux {}, {}.",
            text("nproc"),
            text("cpu"),
            text("mem_gib"),
            text("os"),
            text("kernel"),
            text("rustc")
        );
        let loads: Vec<String> = machines
            .iter()
            .map(|m| format!("{} {}", text_of_value(m, "machine"), text_of_value(m, "loadavg")))
            .collect();
        println!("Load average (1, 5, 15 min): {}.", loads.join("; "));
    }
    Ok(())
}

fn text_of_value(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// About three significant digits.
fn fmt(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median_of(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median_of(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }

    #[test]
    fn summary_covers_numbers_every_sample_has() {
        let a: Sample = serde_json::from_value(json!({"x": 1.0, "y": 5, "note": "a"})).expect("map");
        let b: Sample = serde_json::from_value(json!({"x": 3.0, "y": 7, "note": "b"})).expect("map");
        let c: Sample = serde_json::from_value(json!({"x": 2.0, "note": "c"})).expect("map");
        let s = summary("s", "sqlite", &[a, b, c]);
        assert_eq!(s["median"], json!({"x": 2.0}));
        assert_eq!(s["min"]["x"], json!(1.0));
        assert_eq!(s["max"]["x"], json!(3.0));
        assert_eq!(s["reps"], json!(3));
    }
}
