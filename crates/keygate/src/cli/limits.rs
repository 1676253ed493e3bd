//! Limit flags shared by `keys create|update`, `projects update` and the
//! organisation commands, and how limits show in tables.

use crate::policy::limits::{Period, MAX_CONCURRENT, MAX_RPM, MAX_TPM};
use anyhow::bail;
use serde_json::{json, Value};

/// A spending budget: `--budget`, `--budget-period`, `--budget-alerts`.
#[derive(Debug, Default, clap::Args)]
pub struct BudgetFlags {
    /// Spending budget per period, in US dollars (on an update, a new amount
    /// keeps the period and alerts already set).
    #[arg(long, value_name = "USD")]
    budget: Option<f64>,
    /// The budget's calendar period (a new budget's default: month).
    #[arg(long, value_enum, value_name = "PERIOD")]
    budget_period: Option<Period>,
    /// Alert at these percentages of the budget, comma-separated (e.g.
    /// 50,80,100), or `none` for no alerts (default: 50,80,100).
    #[arg(long, value_name = "PERCENTS")]
    budget_alerts: Option<String>,
}

impl BudgetFlags {
    /// Put the budget fields named into `body`.
    pub fn apply(&self, body: &mut Value) -> anyhow::Result<()> {
        if let Some(usd) = self.budget {
            body["budget_usd"] = json!(usd);
        }
        if let Some(period) = self.budget_period {
            body["budget_period"] = json!(period.name());
        }
        if let Some(alerts) = &self.budget_alerts {
            body["budget_alerts"] = parse_alerts(alerts)?;
        }
        Ok(())
    }
}

fn parse_alerts(text: &str) -> anyhow::Result<Value> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(json!([]));
    }
    let mut percents = Vec::new();
    for part in text.split(',') {
        match part.trim().parse::<u32>() {
            Ok(p) => percents.push(p),
            Err(_) => bail!(
                "--budget-alerts takes percentages separated by commas (50,80,100) or `none`, not '{}'",
                part.trim()
            ),
        }
    }
    Ok(json!(percents))
}

/// Rates, concurrency and a budget: the limits of a key or a project.
#[derive(Debug, Default, clap::Args)]
pub struct LimitFlags {
    /// Requests per minute.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_RPM)))]
    rpm: Option<u32>,
    /// Tokens per minute (prompt estimate plus max_tokens, settled to the
    /// real count).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_TPM))]
    tpm: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONCURRENT)))]
    max_concurrent: Option<u32>,
    #[command(flatten)]
    budget: BudgetFlags,
}

impl LimitFlags {
    /// Put the limits named into `body`.
    pub fn apply(&self, body: &mut Value) -> anyhow::Result<()> {
        if let Some(rpm) = self.rpm {
            body["rpm"] = json!(rpm);
        }
        if let Some(tpm) = self.tpm {
            body["tpm"] = json!(tpm);
        }
        if let Some(max) = self.max_concurrent {
            body["max_concurrent"] = json!(max);
        }
        self.budget.apply(body)
    }
}

/// A limit `--clear` removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Limit {
    /// Requests per minute.
    Rpm,
    /// Tokens per minute.
    Tpm,
    /// Requests in flight.
    MaxConcurrent,
    /// The whole budget (amount, period and alerts).
    Budget,
    /// The budget's alert thresholds (back to the default 50,80,100).
    BudgetAlerts,
}

impl Limit {
    /// The request field that clears it.
    fn field(self) -> &'static str {
        match self {
            Limit::Rpm => "rpm",
            Limit::Tpm => "tpm",
            Limit::MaxConcurrent => "max_concurrent",
            Limit::Budget => "budget_usd",
            Limit::BudgetAlerts => "budget_alerts",
        }
    }
}

/// `--clear`: limits to remove on an update.
#[derive(Debug, Default, clap::Args)]
pub struct ClearFlags {
    /// Remove limits, comma-separated: rpm, tpm, max-concurrent, budget,
    /// budget-alerts (budget-alerts goes back to the default 50,80,100).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIMITS")]
    clear: Vec<Limit>,
}

impl ClearFlags {
    /// Set each cleared field to `null`; refuse clearing a limit the same
    /// command sets.
    pub fn apply(&self, body: &mut Value) -> anyhow::Result<()> {
        for limit in &self.clear {
            let field = limit.field();
            if body.get(field).is_some() {
                bail!("--clear {field} contradicts setting it in the same command");
            }
            if *limit == Limit::Budget
                && (body.get("budget_period").is_some() || body.get("budget_alerts").is_some())
            {
                bail!(
                    "--clear budget removes the whole budget; do not set its period or alerts too"
                );
            }
            body[field] = Value::Null;
        }
        Ok(())
    }
}

/// Dollars as people read them: `100`, `2.5`, `0.000001`.
fn usd(amount: f64) -> String {
    let text = format!("{amount:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("${text}")
}

/// A table cell for a budget: `$100/month`, or `-`.
fn budget_cell(row: &Value) -> Value {
    match (row["budget_usd"].as_f64(), row["budget_period"].as_str()) {
        (Some(amount), Some(period)) => Value::String(format!("{}/{period}", usd(amount))),
        _ => Value::Null,
    }
}

/// A row with a `budget` column (and `prepaid`, for organisations) for
/// tables; JSON output keeps the answer as it came.
pub fn with_limit_cells(mut row: Value) -> Value {
    row["budget"] = budget_cell(&row);
    if let Some(prepaid) = row.get("prepaid_usd").and_then(Value::as_f64) {
        row["prepaid"] = Value::String(usd(prepaid));
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_request_fields() {
        let flags = LimitFlags {
            rpm: Some(60),
            budget: BudgetFlags {
                budget: Some(2.5),
                budget_period: Some(Period::Week),
                budget_alerts: Some("80, 50".into()),
            },
            ..LimitFlags::default()
        };
        let mut body = json!({});
        flags.apply(&mut body).unwrap();
        assert_eq!(
            body,
            json!({"rpm": 60, "budget_usd": 2.5, "budget_period": "week", "budget_alerts": [80, 50]})
        );
        let mut none = json!({});
        BudgetFlags {
            budget_alerts: Some("none".into()),
            ..BudgetFlags::default()
        }
        .apply(&mut none)
        .unwrap();
        assert_eq!(none, json!({"budget_alerts": []}));
        assert!(BudgetFlags {
            budget_alerts: Some("50,x".into()),
            ..BudgetFlags::default()
        }
        .apply(&mut json!({}))
        .is_err());
    }

    #[test]
    fn clear_sends_nulls_and_refuses_contradictions() {
        let mut body = json!({"tpm": 5});
        ClearFlags {
            clear: vec![Limit::Rpm, Limit::Budget],
        }
        .apply(&mut body)
        .unwrap();
        assert_eq!(body, json!({"tpm": 5, "rpm": null, "budget_usd": null}));
        let mut body = json!({"rpm": 5});
        assert!(ClearFlags {
            clear: vec![Limit::Rpm]
        }
        .apply(&mut body)
        .is_err());
    }

    #[test]
    fn budgets_read_as_dollars_per_period() {
        let row = with_limit_cells(json!({"budget_usd": 100.0, "budget_period": "month"}));
        assert_eq!(row["budget"], "$100/month");
        let row = with_limit_cells(
            json!({"budget_usd": 0.25, "budget_period": "day", "prepaid_usd": 12.5}),
        );
        assert_eq!(
            (&row["budget"], &row["prepaid"]),
            (&json!("$0.25/day"), &json!("$12.5"))
        );
        assert!(with_limit_cells(json!({"budget_usd": null}))["budget"].is_null());
    }
}
