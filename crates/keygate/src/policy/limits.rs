//! The limits an administrator sets on a key, an owner, a project or an
//! organisation: request and token rates, concurrent requests, and a
//! spending budget per calendar period.

use serde::{Deserialize, Serialize};

/// Money in billionths of a US dollar: exact integer arithmetic for prices
/// as small as $0.001 per million tokens, and room for 9 billion dollars.
pub type Nanos = i64;

/// Nanos in one US dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// Dollars (as an administrator types them) to nanos; `None` for a
/// negative, non-finite or absurdly large amount.
pub fn usd_to_nanos(usd: f64) -> Option<Nanos> {
    if !usd.is_finite() || !(0.0..=1e9).contains(&usd) {
        return None;
    }
    // Round to the nearest nano: 0.1 + 0.2 typed by a person is 0.3.
    #[allow(clippy::cast_possible_truncation)]
    Some((usd * NANOS_PER_USD as f64).round() as i64)
}

/// Nanos to dollars, for reports and messages.
pub fn nanos_to_usd(nanos: Nanos) -> f64 {
    nanos as f64 / NANOS_PER_USD as f64
}

/// The calendar period a budget covers. Periods are aligned to the
/// calendar in the configured time zone (`KEYGATE_BUDGET_TIMEZONE`): a
/// monthly budget resets at midnight on the first of the month, a weekly one
/// on Monday, a daily one at midnight. `Total` never resets.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Calendar day.
    Day,
    /// ISO week, Monday to Sunday.
    Week,
    /// Calendar month.
    Month,
    /// Since the budget was set; never resets.
    Total,
}

impl Period {
    /// The name used in the API, the CLI and the store.
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Total => "total",
        }
    }

    /// Parse a stored or typed name.
    pub fn parse(name: &str) -> Option<Period> {
        match name {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            "total" => Some(Period::Total),
            _ => None,
        }
    }
}

/// A spending limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Most that may be spent in one period.
    pub limit: Nanos,
    /// The period.
    pub period: Period,
    /// Percentages of the limit at which an alert is raised, ascending
    /// (`None`: the gateway's default, 50, 80 and 100).
    pub alert_thresholds: Option<Vec<u8>>,
}

/// Every limit one subject (key, owner, project, organisation) may carry;
/// `None` means no limit of that kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens (prompt estimate plus `max_tokens`, settled to the real
    /// count) per minute.
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    pub max_concurrent: Option<u32>,
    /// Spending budget.
    pub budget: Option<Budget>,
}

impl Limits {
    /// No limit of any kind.
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none()
            && self.tpm.is_none()
            && self.max_concurrent.is_none()
            && self.budget.is_none()
    }
}

/// Who a budget or rate limit belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// One key, by id.
    Key(String),
    /// Every key of one owner within an organisation.
    Owner {
        /// Organisation id.
        org_id: String,
        /// The owner's identity.
        owner: String,
    },
    /// Every key of a project, by id.
    Project(String),
    /// Every key of an organisation, by id.
    Organisation(String),
}

impl Subject {
    /// A stable name, used in counter names and alert dedupe keys.
    pub fn name(&self) -> String {
        match self {
            Subject::Key(id) => format!("key:{id}"),
            Subject::Owner { org_id, owner } => format!("owner:{org_id}:{owner}"),
            Subject::Project(id) => format!("project:{id}"),
            Subject::Organisation(id) => format!("org:{id}"),
        }
    }

    /// How people read it in messages.
    pub fn describe(&self) -> String {
        match self {
            Subject::Key(id) => format!("key {id}"),
            Subject::Owner { owner, .. } => format!("owner {owner}"),
            Subject::Project(id) => format!("project {id}"),
            Subject::Organisation(id) => format!("organisation {id}"),
        }
    }
}

/// The limits set on owners, projects and organisations, as the store
/// holds them; keys carry theirs on their record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectLimits {
    /// Whose limits.
    pub subject: Subject,
    /// The limits (budget, rates; owners and organisations carry only a
    /// budget, projects every kind).
    pub limits: Limits,
    /// An organisation's prepaid balance: everything ever topped up, in
    /// nanos (`None`: the organisation is not prepaid). Spend since the
    /// organisation was created is charged against it.
    pub prepaid: Option<Nanos>,
    /// Unix ms of the last change: a changed limit starts a fresh counter,
    /// loaded from the ledger.
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_round_to_the_nearest_nano() {
        assert_eq!(usd_to_nanos(0.1 + 0.2), Some(300_000_000));
        assert_eq!(usd_to_nanos(5.0), Some(5 * NANOS_PER_USD));
        assert_eq!(usd_to_nanos(-1.0), None);
        assert_eq!(usd_to_nanos(f64::NAN), None);
        assert_eq!(usd_to_nanos(1e12), None);
    }

    #[test]
    fn periods_round_trip_by_name() {
        for p in [Period::Day, Period::Week, Period::Month, Period::Total] {
            assert_eq!(Period::parse(p.name()), Some(p));
        }
        assert_eq!(Period::parse("year"), None);
    }
}
