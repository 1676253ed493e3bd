//! Limits in the admin API: requests and tokens per minute, requests in
//! flight and spending budgets on keys, projects, organisations and owners,
//! and organisations' prepaid balances. People set money in US dollars; the
//! store keeps nanodollars.
//!
//! The fields are the same wherever limits are set: `rpm`, `tpm`,
//! `max_concurrent`, `budget_usd`, `budget_period` (`day`, `week`, `month`
//! or `total`; `month` unless given) and `budget_alerts` (percentages of the
//! budget at which alerts are raised; `null` for the gateway's default 50,
//! 80 and 100, `[]` for none). On an update an absent field keeps its value
//! and `null` removes the limit; `budget_period` or `budget_alerts` alone
//! change the existing budget, and are a 409 (`no_budget`) where there is
//! none.

use super::access::Actor;
use super::ids::{OrganisationId, OwnerBudgetPath, ProjectId};
use super::keys::validate_owner;
use super::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, UnsupportedMediaType,
};
use super::tenancy::{
    find_organisation, find_project, organisation_view, project_view, read_body, OrganisationView,
    ProjectView,
};
use super::{fail, store_failed, AdminResult};
use crate::error::{ApiError, ShapedError};
use crate::policy::limits::{
    nanos_to_usd, normalise_thresholds, usd_to_nanos, Budget, Limits, Period, MAX_CONCURRENT,
    MAX_PREPAID, MAX_RPM, MAX_TPM, MAX_USD,
};
use crate::server::AppState;
use crate::store::OwnerBudget;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::ToSchema;

/// Routes of organisations' balances and owner budgets (the `PATCH` of a
/// project or an organisation is routed with the rest of it, in `tenancy`).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/organisations/{id}/balance", post(top_up))
        .route(
            "/organisations/{id}/owners/{owner}/budget",
            put(set_owner_budget).delete(remove_owner_budget),
        )
        .route("/organisations/{id}/owner-budgets", get(list_owner_budgets))
}

/// Smallest top-up: one nanodollar.
const MIN_TOP_UP_USD: f64 = 1e-9;

/// A whole number as JSON may write it: `60`, or `60.0` (JSON Schema calls
/// both integers, and clients generated from the document send either).
/// A fraction or a negative number is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Whole(pub(super) u64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Whole;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                Ok(Whole(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                u64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::custom(format!("{v} is negative; expected a whole number")))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                // 2^64 is exact as an f64; anything below it that is whole
                // converts without loss of meaning.
                if v.is_finite()
                    && v.fract() == 0.0
                    && (0.0..18_446_744_073_709_551_616.0).contains(&v)
                {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    return Ok(Whole(v as u64));
                }
                Err(E::custom(format!(
                    "{v} is not a whole number of at most 2^64"
                )))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Distinguish `"field": null` (remove) from an absent field (keep).
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Limits as the admin API shows them; `null` means no limit of that kind.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LimitsView {
    /// Requests per minute.
    rpm: Option<u32>,
    /// Tokens per minute (prompt estimate plus `max_tokens`, settled to the
    /// real count).
    tpm: Option<u64>,
    /// Requests in flight at once.
    max_concurrent: Option<u32>,
    /// Most that may be spent per `budget_period`, in US dollars.
    budget_usd: Option<f64>,
    /// The budget's calendar period.
    budget_period: Option<Period>,
    /// Percentages of the budget at which alerts are raised (`null`: the
    /// gateway's default, 50, 80 and 100).
    budget_alerts: Option<Vec<u8>>,
}

impl LimitsView {
    /// The view of `limits`.
    pub(super) fn of(limits: &Limits) -> LimitsView {
        let budget = limits.budget.as_ref();
        LimitsView {
            rpm: limits.rpm,
            tpm: limits.tpm,
            max_concurrent: limits.max_concurrent,
            budget_usd: budget.map(|b| nanos_to_usd(b.limit)),
            budget_period: budget.map(|b| b.period),
            budget_alerts: budget.and_then(|b| b.alert_thresholds.clone()),
        }
    }
}

/// The schema of `budget_alerts` in request bodies.
pub(super) fn alert_thresholds() -> Schema {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(100)),
        )
        .max_items(Some(crate::policy::limits::MAX_ALERT_THRESHOLDS))
        .unique_items(true)
        .description(Some(
            "Percentages of the budget (1-100, each once, in any order; stored ascending) at \
             which alerts are raised; `null`: the gateway's default, 50, 80 and 100; `[]`: none.",
        ))
        .build()
        .into()
}

/// The limit fields of a request body as parsed: `Some(None)` is a `null`.
#[derive(Debug, Default)]
pub(super) struct LimitsInput {
    /// `rpm`.
    pub(super) rpm: Option<Option<Whole>>,
    /// `tpm`.
    pub(super) tpm: Option<Option<Whole>>,
    /// `max_concurrent`.
    pub(super) max_concurrent: Option<Option<Whole>>,
    /// `budget_usd`.
    pub(super) budget_usd: Option<Option<f64>>,
    /// `budget_period` (a `null` is the same as leaving it out).
    pub(super) budget_period: Option<String>,
    /// `budget_alerts`.
    pub(super) budget_alerts: Option<Option<Vec<Whole>>>,
}

/// A rate checked against `1..=max` and converted to its type.
fn rate<T: TryFrom<u64> + std::fmt::Display + Copy>(
    param: &'static str,
    value: Option<Option<Whole>>,
    max: T,
    unit: &str,
) -> Result<Option<Option<T>>, ShapedError>
where
    u64: From<T>,
{
    let refused = || {
        fail(ApiError::invalid_param(
            param,
            format!("'{param}' must be a whole number of {unit} from 1 to {max}; null removes the limit."),
        ))
    };
    match value {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(Whole(v))) if v < 1 || v > u64::from(max) => Err(refused()),
        Some(Some(Whole(v))) => T::try_from(v).map(|v| Some(Some(v))).map_err(|_| refused()),
    }
}

/// Dollars to nanos for a budget, or a 400 naming `param`.
pub(super) fn budget_nanos(param: &'static str, usd: f64) -> Result<i64, ShapedError> {
    usd_to_nanos(usd).ok_or_else(|| {
        fail(ApiError::invalid_param(
            param,
            format!("'{param}' must be a number of US dollars from 0 to {MAX_USD:.0}."),
        ))
    })
}

/// A period by name, or a 400 naming the valid ones.
pub(super) fn parse_period(name: &str) -> Result<Period, ShapedError> {
    Period::parse(name).ok_or_else(|| {
        fail(ApiError::invalid_param(
            "budget_period",
            format!(
                "Unknown budget_period '{}'; periods are day, week, month and total.",
                crate::error::printable(name)
            ),
        ))
    })
}

/// Alert thresholds, checked and sorted, or a 400.
pub(super) fn parse_thresholds(thresholds: &[Whole]) -> Result<Vec<u8>, ShapedError> {
    let thresholds: Vec<u64> = thresholds.iter().map(|Whole(t)| *t).collect();
    normalise_thresholds(&thresholds).map_err(|e| {
        fail(ApiError::invalid_param(
            "budget_alerts",
            format!("'budget_alerts': {e}."),
        ))
    })
}

impl LimitsInput {
    /// The limits after applying this input to `current`. Values are
    /// checked first (400); then budget fields that need a budget where
    /// there is none are refused: a 400 when `creating` (the request itself
    /// is incomplete), else a 409 (`no_budget`: the subject has none).
    pub(super) fn apply(self, current: &Limits, creating: bool) -> Result<Limits, ShapedError> {
        let rpm = rate("rpm", self.rpm, MAX_RPM, "requests per minute")?;
        let tpm = rate("tpm", self.tpm, MAX_TPM, "tokens per minute")?;
        let max_concurrent = rate(
            "max_concurrent",
            self.max_concurrent,
            MAX_CONCURRENT,
            "requests in flight",
        )?;
        let budget_usd = self
            .budget_usd
            .map(|usd| usd.map(|usd| budget_nanos("budget_usd", usd)).transpose())
            .transpose()?;
        let period = self
            .budget_period
            .as_deref()
            .map(parse_period)
            .transpose()?;
        let alerts = self
            .budget_alerts
            .map(|a| a.map(|a| parse_thresholds(&a)).transpose())
            .transpose()?;

        let mut limits = current.clone();
        if let Some(rpm) = rpm {
            limits.rpm = rpm;
        }
        if let Some(tpm) = tpm {
            limits.tpm = tpm;
        }
        if let Some(max_concurrent) = max_concurrent {
            limits.max_concurrent = max_concurrent;
        }
        match budget_usd {
            None => {}
            Some(None) => limits.budget = None,
            Some(Some(limit)) => {
                // A new amount keeps the period and alerts already set.
                let kept = limits.budget.take();
                limits.budget = Some(Budget {
                    limit,
                    period: kept.as_ref().map_or(Period::Month, |b| b.period),
                    alert_thresholds: kept.and_then(|b| b.alert_thresholds),
                });
            }
        }
        let no_budget = |param: &'static str| {
            if creating {
                fail(ApiError::invalid_param(
                    param,
                    format!("'{param}' needs 'budget_usd'."),
                ))
            } else {
                fail(ApiError::state_conflict(
                    "no_budget",
                    format!("There is no budget to set '{param}' on; give 'budget_usd' too."),
                ))
            }
        };
        if let Some(period) = period {
            limits
                .budget
                .as_mut()
                .ok_or_else(|| no_budget("budget_period"))?
                .period = period;
        }
        match (alerts, limits.budget.as_mut()) {
            (None, _) | (Some(None), None) => {}
            (Some(alerts), Some(budget)) => budget.alert_thresholds = alerts,
            (Some(Some(_)), None) => return Err(no_budget("budget_alerts")),
        }
        Ok(limits)
    }
}

/// Body of `PATCH /admin/v1/projects/{id}`: the project's limits, shared by
/// all its keys. Absent fields keep their value; `null` removes a limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateProject {
    /// Requests per minute; `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10000000)]
    rpm: Option<Option<Whole>>,
    /// Tokens per minute; `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 100000000000_u64)]
    tpm: Option<Option<Whole>>,
    /// Requests in flight at once; `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1000000)]
    max_concurrent: Option<Option<Whole>>,
    /// Budget per period in US dollars (0 to 1e9); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1000000000)]
    budget_usd: Option<Option<f64>>,
    /// The budget's period (default `month`).
    #[serde(default)]
    #[schema(value_type = Option<Period>)]
    budget_period: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = alert_thresholds)]
    budget_alerts: Option<Option<Vec<Whole>>>,
    /// What an anomaly on a key of the project does, for keys without a
    /// policy of their own: `alert` or `suspend`; `null` removes the
    /// policy (alert).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::anomaly::OnAnomaly>)]
    on_anomaly: Option<Option<crate::anomaly::OnAnomaly>>,
}

/// Set a project's limits
///
/// Rates, concurrency and a budget shared by every key of the project,
/// and its anomaly policy.
/// Admins and owners of the organisation or the instance; a project-scoped
/// credential may not set its own project's limits.
#[utoipa::path(
    patch,
    path = "/projects/{id}",
    tag = "tenancy",
    params(ProjectId),
    request_body = UpdateProject,
    responses(
        (status = 200, description = "The project as now stored.", body = ProjectView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn update_project(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ProjectId { id }: ProjectId,
    request: Request,
) -> AdminResult {
    let input: UpdateProject = read_body(request, "project limits").await?;
    let project = find_project(&state, &actor, &id).await?;
    actor.require_tenant_limits("set project limits")?;
    let limits = LimitsInput {
        rpm: input.rpm,
        tpm: input.tpm,
        max_concurrent: input.max_concurrent,
        budget_usd: input.budget_usd,
        budget_period: input.budget_period,
        budget_alerts: input.budget_alerts,
    }
    .apply(&project.limits, false)?;
    let mut stored = project.clone();
    if let Some(on_anomaly) = input.on_anomaly {
        if on_anomaly != project.on_anomaly {
            stored = state
                .store
                .set_project_on_anomaly(&project.id, on_anomaly, crate::time::now_ms())
                .await
                .map_err(store_failed)?
                .ok_or_else(|| fail(ApiError::not_found("The project vanished meanwhile.")))?;
            tracing::info!(project_id = %stored.id, on_anomaly = on_anomaly.map_or("none", |p| p.as_str()), "project anomaly policy changed");
        }
    }
    if limits == project.limits {
        // No limit changes: the counters keep their state.
        return Ok(Json(project_view(&stored)).into_response());
    }
    let stored = state
        .store
        .set_project_limits(&project.id, &limits, crate::time::now_ms())
        .await
        .map_err(store_failed)?
        .ok_or_else(|| fail(ApiError::not_found("The project vanished meanwhile.")))?;
    tracing::info!(project_id = %stored.id, "project limits changed");
    apply_now(&state).await;
    Ok(Json(project_view(&stored)).into_response())
}

/// Body of `PATCH /admin/v1/organisations/{id}`: the organisation's budget,
/// shared by every key of every project in it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateOrganisation {
    /// Budget per period in US dollars (0 to 1e9); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1000000000)]
    budget_usd: Option<Option<f64>>,
    /// The budget's period (default `month`).
    #[serde(default)]
    #[schema(value_type = Option<Period>)]
    budget_period: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = alert_thresholds)]
    budget_alerts: Option<Option<Vec<Whole>>>,
}

/// Set an organisation's budget
///
/// Admins and owners of the organisation or the instance.
#[utoipa::path(
    patch,
    path = "/organisations/{id}",
    tag = "tenancy",
    params(OrganisationId),
    request_body = UpdateOrganisation,
    responses(
        (status = 200, description = "The organisation as now stored.", body = OrganisationView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn update_organisation(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    OrganisationId { id }: OrganisationId,
    request: Request,
) -> AdminResult {
    let input: UpdateOrganisation = read_body(request, "organisation budget").await?;
    let org = find_organisation(&state, &actor, &id).await?;
    actor.require_tenant_limits("set organisation budgets")?;
    let limits = LimitsInput {
        budget_usd: input.budget_usd,
        budget_period: input.budget_period,
        budget_alerts: input.budget_alerts,
        ..LimitsInput::default()
    }
    .apply(&org.limits, false)?;
    if limits == org.limits {
        return Ok(Json(organisation_view(&org)).into_response());
    }
    let stored = state
        .store
        .set_organisation_limits(&org.id, limits.budget.as_ref(), crate::time::now_ms())
        .await
        .map_err(store_failed)?
        .ok_or_else(|| fail(ApiError::not_found("The organisation vanished meanwhile.")))?;
    tracing::info!(org_id = %stored.id, "organisation budget changed");
    apply_now(&state).await;
    Ok(Json(organisation_view(&stored)).into_response())
}

/// Body of `POST /admin/v1/organisations/{id}/balance`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TopUp {
    /// US dollars to add to the prepaid balance (at least one billionth,
    /// at most 1e9 per top-up).
    #[schema(minimum = 0.000000001, maximum = 1000000000)]
    amount_usd: f64,
}

/// Top up a prepaid balance
///
/// Adds to the organisation's prepaid balance (making it prepaid if it was
/// not) and records the top-up. Admins and owners of the organisation or
/// the instance. A balance holds at most 1e9 US dollars in total: a top-up
/// past that is a 409 (`balance_limit`).
#[utoipa::path(
    post,
    path = "/organisations/{id}/balance",
    tag = "tenancy",
    params(OrganisationId),
    request_body = TopUp,
    responses(
        (status = 200, description = "The organisation, with its new `prepaid_usd`.", body = OrganisationView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn top_up(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    OrganisationId { id }: OrganisationId,
    request: Request,
) -> AdminResult {
    let input: TopUp = read_body(request, "top-up").await?;
    let org = find_organisation(&state, &actor, &id).await?;
    actor.require_tenant_limits("top up balances")?;
    let amount = Some(input.amount_usd)
        .filter(|usd| (MIN_TOP_UP_USD..=MAX_USD).contains(usd))
        .and_then(usd_to_nanos)
        .filter(|nanos| *nanos > 0)
        .ok_or_else(|| {
            fail(ApiError::invalid_param(
                "amount_usd",
                format!(
                    "'amount_usd' must be a number of US dollars from 0.000000001 to {MAX_USD:.0}."
                ),
            ))
        })?;
    let now = crate::time::now_ms();
    let total = state
        .store
        .top_up_balance(&org.id, amount, &actor.id, now)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| {
            fail(ApiError::state_conflict(
                "balance_limit",
                format!(
                    "A prepaid balance holds at most {:.0} US dollars in total; this top-up would pass that.",
                    nanos_to_usd(MAX_PREPAID)
                ),
            ))
        })?;
    apply_now(&state).await;
    tracing::info!(org_id = %org.id, amount_nanos = amount, total_nanos = total, "balance topped up");
    let org = crate::store::Organisation {
        prepaid_nanos: Some(total),
        updated_at: now,
        ..org
    };
    Ok(Json(organisation_view(&org)).into_response())
}

/// An owner's budget within an organisation.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OwnerBudget)]
pub(super) struct OwnerBudgetView {
    org_id: String,
    /// The owner, exactly as keys name it.
    owner: String,
    /// Most that every key of the owner in the organisation may spend per
    /// period together, in US dollars.
    budget_usd: f64,
    budget_period: Period,
    /// Percentages of the budget at which alerts are raised (`null`: the
    /// gateway's default, 50, 80 and 100).
    budget_alerts: Option<Vec<u8>>,
    /// Unix ms of the last change.
    updated_at: i64,
}

fn owner_budget_view(budget: &OwnerBudget) -> OwnerBudgetView {
    OwnerBudgetView {
        org_id: budget.org_id.clone(),
        owner: budget.owner.clone(),
        budget_usd: nanos_to_usd(budget.budget.limit),
        budget_period: budget.budget.period,
        budget_alerts: budget.budget.alert_thresholds.clone(),
        updated_at: budget.updated_at,
    }
}

/// Body of `PUT /admin/v1/organisations/{id}/owners/{owner}/budget`: the
/// whole budget (what is left out takes its default).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetOwnerBudget {
    /// Budget per period in US dollars (0 to 1e9).
    #[schema(minimum = 0, maximum = 1000000000)]
    budget_usd: f64,
    /// The budget's period (default `month`).
    #[serde(default)]
    #[schema(value_type = Option<Period>)]
    budget_period: Option<String>,
    #[serde(default)]
    #[schema(schema_with = alert_thresholds)]
    budget_alerts: Option<Vec<Whole>>,
}

/// The owner named in an owner-budget path, checked.
fn checked_owner(owner: &str) -> Result<(), ShapedError> {
    validate_owner(owner)
}

/// Set an owner's budget
///
/// One budget for every key of `owner` in the organisation, whatever their
/// project. Admins and owners of the organisation or the instance.
#[utoipa::path(
    put,
    path = "/organisations/{id}/owners/{owner}/budget",
    tag = "tenancy",
    params(OwnerBudgetPath),
    request_body = SetOwnerBudget,
    responses(
        (status = 200, description = "The budget as now stored.", body = OwnerBudgetView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn set_owner_budget(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    OwnerBudgetPath { id, owner }: OwnerBudgetPath,
    request: Request,
) -> AdminResult {
    let input: SetOwnerBudget = read_body(request, "owner budget").await?;
    let org = find_organisation(&state, &actor, &id).await?;
    actor.require_tenant_limits("set owner budgets")?;
    checked_owner(&owner)?;
    let budget = Budget {
        limit: budget_nanos("budget_usd", input.budget_usd)?,
        period: input
            .budget_period
            .as_deref()
            .map(parse_period)
            .transpose()?
            .unwrap_or(Period::Month),
        alert_thresholds: input
            .budget_alerts
            .as_deref()
            .map(parse_thresholds)
            .transpose()?,
    };
    let now = crate::time::now_ms();
    state
        .store
        .set_owner_budget(&org.id, &owner, Some(&budget), now)
        .await
        .map_err(store_failed)?;
    tracing::info!(org_id = %org.id, "owner budget set");
    apply_now(&state).await;
    Ok(Json(owner_budget_view(&OwnerBudget {
        org_id: org.id,
        owner,
        budget,
        updated_at: now,
    }))
    .into_response())
}

/// What removing an owner's budget did.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OwnerBudgetRemoval {
    org_id: String,
    owner: String,
    /// `true` when a budget was removed; `false` when there was none (a
    /// removal is idempotent).
    deleted: bool,
}

/// Remove an owner's budget
///
/// Admins and owners of the organisation or the instance. Removing a
/// budget that is not there changes nothing (`deleted: false`).
#[utoipa::path(
    delete,
    path = "/organisations/{id}/owners/{owner}/budget",
    tag = "tenancy",
    params(OwnerBudgetPath),
    responses(
        (status = 200, description = "What was removed.", body = OwnerBudgetRemoval),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn remove_owner_budget(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    OwnerBudgetPath { id, owner }: OwnerBudgetPath,
) -> AdminResult {
    let org = find_organisation(&state, &actor, &id).await?;
    actor.require_tenant_limits("remove owner budgets")?;
    checked_owner(&owner)?;
    let deleted = state
        .store
        .set_owner_budget(&org.id, &owner, None, crate::time::now_ms())
        .await
        .map_err(store_failed)?;
    if deleted {
        tracing::info!(org_id = %org.id, "owner budget removed");
        apply_now(&state).await;
    }
    Ok(Json(OwnerBudgetRemoval {
        org_id: org.id,
        owner,
        deleted,
    })
    .into_response())
}

/// An organisation's owner budgets.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OwnerBudgetList {
    data: Vec<OwnerBudgetView>,
}

/// List an organisation's owner budgets
///
/// By owner; every role that sees the organisation may read them.
#[utoipa::path(
    get,
    path = "/organisations/{id}/owner-budgets",
    tag = "tenancy",
    params(OrganisationId),
    responses(
        (status = 200, description = "The owner budgets.", body = OwnerBudgetList),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list_owner_budgets(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    OrganisationId { id }: OrganisationId,
) -> AdminResult {
    let org = find_organisation(&state, &actor, &id).await?;
    let data = state
        .store
        .owner_budgets(&org.id)
        .await
        .map_err(store_failed)?
        .iter()
        .map(owner_budget_view)
        .collect();
    Ok(Json(OwnerBudgetList { data }).into_response())
}

/// Apply a limit change to this node's limits stage at once; other nodes
/// pick it up with their next key refresh.
async fn apply_now(state: &AppState) {
    // A minute's overlap re-reads rows of the same moment; re-applying is
    // harmless.
    let since = crate::time::now_ms().saturating_sub(60_000);
    match state.store.subject_limits_changed_since(since).await {
        Ok(changed) => state.governor.apply(changed),
        Err(error) => {
            tracing::warn!(%error, "reading changed limits failed; the key refresh will apply them")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::limits::NANOS_PER_USD;

    fn ok(result: Result<Limits, ShapedError>) -> Limits {
        match result {
            Ok(limits) => limits,
            Err(e) => panic!("refused: {}", e.0.message),
        }
    }

    fn budget(usd: i64, period: Period) -> Option<Budget> {
        Some(Budget {
            limit: usd * NANOS_PER_USD,
            period,
            alert_thresholds: None,
        })
    }

    #[test]
    fn whole_numbers_may_be_written_as_floats() {
        let parse = |text: &str| serde_json::from_str::<Whole>(text).map(|Whole(n)| n);
        assert_eq!(parse("60").ok(), Some(60));
        assert_eq!(parse("60.0").ok(), Some(60));
        assert_eq!(parse("6e1").ok(), Some(60));
        for refused in ["1.5", "-1", "-1.0", "1e30", "\"60\"", "null"] {
            assert!(parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn an_update_changes_only_what_it_names() {
        let current = Limits {
            rpm: Some(10),
            budget: budget(5, Period::Week),
            ..Limits::default()
        };
        let updated = ok(LimitsInput {
            tpm: Some(Some(Whole(1000))),
            budget_usd: Some(Some(7.0)),
            budget_alerts: Some(Some(vec![Whole(90), Whole(50)])),
            ..LimitsInput::default()
        }
        .apply(&current, false));
        assert_eq!(updated.rpm, Some(10));
        assert_eq!(updated.tpm, Some(1000));
        let b = updated.budget.unwrap();
        assert_eq!(
            (b.limit, b.period, b.alert_thresholds),
            (7 * NANOS_PER_USD, Period::Week, Some(vec![50, 90])),
            "a new amount keeps the period; thresholds are sorted"
        );
        let cleared = ok(LimitsInput {
            rpm: Some(None),
            budget_usd: Some(None),
            ..LimitsInput::default()
        }
        .apply(&current, false));
        assert_eq!(cleared, Limits::default());
    }

    #[test]
    fn a_new_budget_is_monthly_unless_told() {
        let created = ok(LimitsInput {
            budget_usd: Some(Some(3.5)),
            ..LimitsInput::default()
        }
        .apply(&Limits::default(), true));
        assert_eq!(created.budget.unwrap().period, Period::Month);
    }

    #[test]
    fn budget_fields_without_a_budget_are_refused() {
        let period_only = || LimitsInput {
            budget_period: Some("day".into()),
            ..LimitsInput::default()
        };
        let err = period_only().apply(&Limits::default(), true).unwrap_err();
        assert_eq!(err.0.status, 400);
        let err = period_only().apply(&Limits::default(), false).unwrap_err();
        assert_eq!((err.0.status.as_u16(), err.0.code), (409, "no_budget"));
        // Removing the budget and setting its period at once conflicts too.
        let err = LimitsInput {
            budget_usd: Some(None),
            budget_period: Some("day".into()),
            ..LimitsInput::default()
        }
        .apply(
            &Limits {
                budget: budget(1, Period::Day),
                ..Limits::default()
            },
            false,
        )
        .unwrap_err();
        assert_eq!(err.0.status, 409);
        // A null alert list without a budget changes nothing.
        assert!(LimitsInput {
            budget_alerts: Some(None),
            ..LimitsInput::default()
        }
        .apply(&Limits::default(), false)
        .is_ok());
    }

    #[test]
    fn values_out_of_range_are_400s_naming_the_field() {
        let cases = [
            LimitsInput {
                rpm: Some(Some(Whole(0))),
                ..LimitsInput::default()
            },
            LimitsInput {
                rpm: Some(Some(Whole(u64::from(MAX_RPM) + 1))),
                ..LimitsInput::default()
            },
            LimitsInput {
                tpm: Some(Some(Whole(0))),
                ..LimitsInput::default()
            },
            LimitsInput {
                max_concurrent: Some(Some(Whole(u64::from(MAX_CONCURRENT) + 1))),
                ..LimitsInput::default()
            },
            LimitsInput {
                budget_usd: Some(Some(-1.0)),
                ..LimitsInput::default()
            },
            LimitsInput {
                budget_usd: Some(Some(2e9)),
                ..LimitsInput::default()
            },
            LimitsInput {
                budget_usd: Some(Some(1.0)),
                budget_period: Some("year".into()),
                ..LimitsInput::default()
            },
            LimitsInput {
                budget_usd: Some(Some(1.0)),
                budget_alerts: Some(Some(vec![Whole(0)])),
                ..LimitsInput::default()
            },
        ];
        let params = [
            "rpm",
            "rpm",
            "tpm",
            "max_concurrent",
            "budget_usd",
            "budget_usd",
            "budget_period",
            "budget_alerts",
        ];
        for (input, param) in cases.into_iter().zip(params) {
            let err = input.apply(&Limits::default(), false).unwrap_err();
            assert_eq!(err.0.status, 400, "{param}");
            assert_eq!(err.0.param, Some(param));
        }
    }
}
