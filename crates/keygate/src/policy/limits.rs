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
    if !usd.is_finite() || !(0.0..=MAX_USD).contains(&usd) {
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
    /// One access token, by `jti` (a token minted with a budget of its own).
    Token(String),
}

impl Subject {
    /// A stable name, used in counter names and alert dedupe keys.
    pub fn name(&self) -> String {
        match self {
            Subject::Key(id) => format!("key:{id}"),
            Subject::Owner { org_id, owner } => format!("owner:{org_id}:{owner}"),
            Subject::Project(id) => format!("project:{id}"),
            Subject::Organisation(id) => format!("org:{id}"),
            Subject::Token(jti) => format!("token:{jti}"),
        }
    }

    /// How people read it in messages.
    pub fn describe(&self) -> String {
        match self {
            Subject::Key(id) => format!("key {id}"),
            Subject::Owner { owner, .. } => format!("owner {owner}"),
            Subject::Project(id) => format!("project {id}"),
            Subject::Organisation(id) => format!("organisation {id}"),
            Subject::Token(jti) => format!("token {jti}"),
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

/// Most requests per minute a limit may allow.
pub const MAX_RPM: u32 = 10_000_000;
/// Most tokens per minute a limit may allow.
pub const MAX_TPM: u64 = 100_000_000_000;
/// Most requests in flight a limit may allow.
pub const MAX_CONCURRENT: u32 = 1_000_000;
/// Largest amount, in dollars, a budget or a single top-up may name (what
/// [`usd_to_nanos`] accepts).
pub const MAX_USD: f64 = 1e9;
/// Largest prepaid balance an organisation may hold in total: a billion
/// dollars, far below where sums of nanos could overflow.
pub const MAX_PREPAID: Nanos = 1_000_000_000 * NANOS_PER_USD;
/// Most alert thresholds one budget may carry.
pub const MAX_ALERT_THRESHOLDS: usize = 10;

/// Check alert thresholds as an administrator gave them and put them in
/// ascending order: each a percentage 1-100, none twice, at most
/// [`MAX_ALERT_THRESHOLDS`]. An empty list means "never alert".
pub fn normalise_thresholds(thresholds: &[u64]) -> Result<Vec<u8>, String> {
    if thresholds.len() > MAX_ALERT_THRESHOLDS {
        return Err(format!(
            "at most {MAX_ALERT_THRESHOLDS} alert thresholds may be set"
        ));
    }
    let mut percents = Vec::with_capacity(thresholds.len());
    for &t in thresholds {
        match u8::try_from(t) {
            Ok(p) if (1..=100).contains(&p) => percents.push(p),
            _ => {
                return Err(format!(
                    "alert threshold {t} is not a percentage from 1 to 100"
                ))
            }
        }
    }
    percents.sort_unstable();
    if percents.windows(2).any(|w| w[0] == w[1]) {
        return Err("an alert threshold is listed twice".into());
    }
    Ok(percents)
}

/// Alert thresholds as a row keeps them: `50,80,100` (empty: never alert).
pub fn thresholds_to_text(thresholds: &[u8]) -> String {
    thresholds
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Read thresholds written by [`thresholds_to_text`]; `None` if the text is
/// not a valid list.
pub fn thresholds_from_text(text: &str) -> Option<Vec<u8>> {
    if text.trim().is_empty() {
        return Some(Vec::new());
    }
    let parsed = text
        .split(',')
        .map(|t| t.trim().parse::<u64>().ok())
        .collect::<Option<Vec<u64>>>()?;
    normalise_thresholds(&parsed).ok()
}

/// Limits as a database row holds them: one nullable column per kind, the
/// budget as three (`budget_nanos`, `budget_period`, `budget_alerts`).
/// Organisations and owners keep only the budget columns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitColumns {
    /// `rpm`.
    pub rpm: Option<i64>,
    /// `tpm`.
    pub tpm: Option<i64>,
    /// `max_concurrent`.
    pub max_concurrent: Option<i64>,
    /// `budget_nanos`.
    pub budget_nanos: Option<i64>,
    /// `budget_period` (`day`, `week`, `month`, `total`).
    pub budget_period: Option<String>,
    /// `budget_alerts`, as [`thresholds_to_text`] writes it (`NULL`: the
    /// gateway's default thresholds).
    pub budget_alerts: Option<String>,
}

impl LimitColumns {
    /// The columns that store `limits`.
    pub fn from_limits(limits: &Limits) -> LimitColumns {
        let budget = limits.budget.as_ref();
        LimitColumns {
            rpm: limits.rpm.map(i64::from),
            // Validation keeps rates far below i64::MAX; saturating keeps a
            // limit a limit even if it did not.
            tpm: limits.tpm.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            max_concurrent: limits.max_concurrent.map(i64::from),
            budget_nanos: budget.map(|b| b.limit),
            budget_period: budget.map(|b| b.period.name().to_string()),
            budget_alerts: budget
                .and_then(|b| b.alert_thresholds.as_deref())
                .map(thresholds_to_text),
        }
    }

    /// The limits these columns store; an error names what is unreadable
    /// (a stored row no validation would have let in).
    pub fn into_limits(self) -> Result<Limits, String> {
        let rate = |name: &str, value: Option<i64>| -> Result<Option<u64>, String> {
            value
                .map(|v| {
                    u64::try_from(v)
                        .ok()
                        .filter(|v| *v >= 1)
                        .ok_or_else(|| format!("{name} {v} is not a positive number"))
                })
                .transpose()
        };
        let small = |name: &str, value: Option<u64>| -> Result<Option<u32>, String> {
            value
                .map(|v| u32::try_from(v).map_err(|_| format!("{name} {v} is too large")))
                .transpose()
        };
        let budget = match (self.budget_nanos, self.budget_period) {
            (None, _) => None,
            (Some(limit), period) => {
                let period = period.unwrap_or_default();
                if limit < 0 {
                    return Err(format!("budget_nanos {limit} is negative"));
                }
                let period = Period::parse(&period)
                    .ok_or_else(|| format!("unknown budget_period '{period}'"))?;
                let alert_thresholds = self
                    .budget_alerts
                    .map(|text| {
                        thresholds_from_text(&text)
                            .ok_or_else(|| format!("unreadable budget_alerts '{text}'"))
                    })
                    .transpose()?;
                Some(Budget {
                    limit,
                    period,
                    alert_thresholds,
                })
            }
        };
        Ok(Limits {
            rpm: small("rpm", rate("rpm", self.rpm)?)?,
            tpm: rate("tpm", self.tpm)?,
            max_concurrent: small(
                "max_concurrent",
                rate("max_concurrent", self.max_concurrent)?,
            )?,
            budget,
        })
    }
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
    #[test]
    fn thresholds_are_percentages_sorted_once_each() {
        assert_eq!(normalise_thresholds(&[80, 50, 100]), Ok(vec![50, 80, 100]));
        assert_eq!(normalise_thresholds(&[]), Ok(vec![]));
        assert!(normalise_thresholds(&[0]).is_err());
        assert!(normalise_thresholds(&[101]).is_err());
        assert!(normalise_thresholds(&[50, 50]).is_err());
        assert!(normalise_thresholds(&(1..=11).collect::<Vec<_>>()).is_err());
        assert!(normalise_thresholds(&[u64::MAX]).is_err());
        assert_eq!(thresholds_from_text("50,80,100"), Some(vec![50, 80, 100]));
        assert_eq!(thresholds_from_text(""), Some(vec![]));
        assert_eq!(thresholds_from_text("50,x"), None);
        assert_eq!(thresholds_to_text(&[50, 80, 100]), "50,80,100");
    }

    #[test]
    fn limits_round_trip_through_their_columns() {
        let full = Limits {
            rpm: Some(60),
            tpm: Some(100_000),
            max_concurrent: Some(4),
            budget: Some(Budget {
                limit: 5 * NANOS_PER_USD,
                period: Period::Week,
                alert_thresholds: Some(vec![50, 90]),
            }),
        };
        for limits in [
            full.clone(),
            Limits::default(),
            Limits {
                budget: Some(Budget {
                    alert_thresholds: None,
                    ..full.budget.clone().unwrap()
                }),
                ..Limits::default()
            },
        ] {
            let columns = LimitColumns::from_limits(&limits);
            assert_eq!(columns.into_limits(), Ok(limits));
        }
        let corrupt = LimitColumns {
            budget_nanos: Some(1),
            budget_period: Some("year".into()),
            ..LimitColumns::default()
        };
        assert!(corrupt.into_limits().unwrap_err().contains("year"));
        let negative = LimitColumns {
            rpm: Some(0),
            ..LimitColumns::default()
        };
        assert!(negative.into_limits().is_err());
    }
}
