//! Organisations and projects in the admin API. Every key belongs to a
//! project of an organisation; admin credentials are scoped to one of them
//! or to the whole instance.

use super::access::{Actor, Role};
use super::ids::{OrganisationId, ProjectId};
use super::keys::validate_name;
use super::limits::{self, LimitsView};
use super::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, UnsupportedMediaType,
};
use super::{fail, parse_object, store_failed, AdminResult};
use crate::auth::key;
use crate::error::{ApiError, ShapedError};
use crate::policy::limits::{nanos_to_usd, Period};
use crate::server::AppState;
use crate::store::{Organisation, Project, DEFAULT_ORG};
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Routes under `/admin/v1/organisations` and `/admin/v1/projects`, with
/// the limits set on them.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/organisations",
            post(create_organisation).get(list_organisations),
        )
        .route(
            "/organisations/{id}",
            get(show_organisation).patch(limits::update_organisation),
        )
        .route("/projects", post(create_project).get(list_projects))
        .route(
            "/projects/{id}",
            get(show_project).patch(limits::update_project),
        )
        .merge(limits::routes())
}

/// Body of `POST /admin/v1/organisations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateOrganisation {
    /// Unique name: 1-128 characters, no control characters.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    name: String,
}

/// An organisation, with its budget and prepaid balance.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Organisation)]
pub(super) struct OrganisationView {
    /// Public id (`org_…`).
    id: String,
    /// Unique name.
    name: String,
    /// Unix ms.
    created_at: i64,
    /// Most that every key of the organisation may spend per
    /// `budget_period` together, in US dollars (`null`: no budget).
    budget_usd: Option<f64>,
    budget_period: Option<Period>,
    /// Percentages of the budget at which alerts are raised (`null`: the
    /// gateway's default, 50, 80 and 100).
    budget_alerts: Option<Vec<u8>>,
    /// Everything ever topped up, in US dollars; the organisation's spend
    /// is charged against it (`null`: not prepaid).
    prepaid_usd: Option<f64>,
    /// Unix ms of the last change to the budget or the balance.
    updated_at: i64,
}

/// The admin API's view of an organisation.
pub(super) fn organisation_view(org: &Organisation) -> OrganisationView {
    let budget = org.limits.budget.as_ref();
    OrganisationView {
        id: org.id.clone(),
        name: org.name.clone(),
        created_at: org.created_at,
        budget_usd: budget.map(|b| nanos_to_usd(b.limit)),
        budget_period: budget.map(|b| b.period),
        budget_alerts: budget.and_then(|b| b.alert_thresholds.clone()),
        prepaid_usd: org.prepaid_nanos.map(nanos_to_usd),
        updated_at: org.updated_at,
    }
}

/// A project, with the limits its keys share.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Project)]
pub(super) struct ProjectView {
    /// Public id (`proj_…`).
    id: String,
    /// The organisation it belongs to.
    org_id: String,
    /// Name, unique within the organisation.
    name: String,
    /// Unix ms.
    created_at: i64,
    /// Limits shared by every key of the project.
    #[serde(flatten)]
    limits: LimitsView,
    /// Unix ms of the last change to the limits.
    updated_at: i64,
    /// What an anomaly (spike, new network, odd hour) on a key of the
    /// project does, for keys without a policy of their own: `alert` or
    /// `suspend`; `null`: alert.
    on_anomaly: Option<crate::anomaly::OnAnomaly>,
}

/// The admin API's view of a project.
pub(super) fn project_view(project: &Project) -> ProjectView {
    ProjectView {
        id: project.id.clone(),
        org_id: project.org_id.clone(),
        name: project.name.clone(),
        created_at: project.created_at,
        limits: LimitsView::of(&project.limits),
        updated_at: project.updated_at,
        on_anomaly: project.on_anomaly,
    }
}

/// Organisations the caller can see.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrganisationList {
    data: Vec<OrganisationView>,
}

/// Projects the caller can see.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProjectList {
    data: Vec<ProjectView>,
}

/// An organisation the caller can see; any other is "not found", so ids
/// cannot be probed across tenants.
pub(super) async fn find_organisation(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<Organisation, ShapedError> {
    let not_found = || {
        fail(ApiError::not_found(format!(
            "No organisation with id '{}'.",
            crate::error::printable(id)
        )))
    };
    if !key::valid_id("org", id) {
        return Err(not_found());
    }
    state
        .store
        .get_organisation(id)
        .await
        .map_err(store_failed)?
        .filter(|o| actor.org_id.as_ref().is_none_or(|own| *own == o.id))
        .ok_or_else(not_found)
}

/// A project the caller can see; any other is "not found".
pub(super) async fn find_project(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<Project, ShapedError> {
    let not_found = || {
        fail(ApiError::not_found(format!(
            "No project with id '{}'.",
            crate::error::printable(id)
        )))
    };
    if !key::valid_id("proj", id) {
        return Err(not_found());
    }
    state
        .store
        .get_project(id)
        .await
        .map_err(store_failed)?
        .filter(|p| actor.sees_project(p))
        .ok_or_else(not_found)
}

pub(super) async fn read_body<T: serde::de::DeserializeOwned>(
    request: Request,
    what: &str,
) -> Result<T, ShapedError> {
    let (parts, body) = request.into_parts();
    let bytes = crate::proxy::read_json_body(&parts.headers, body, 16 * 1024)
        .await
        .map_err(fail)?;
    parse_object(&bytes, what)
}

fn conflict(message: String) -> ShapedError {
    fail(ApiError::conflict(message))
}

/// Create an organisation
///
/// Instance-wide admins and owners only.
#[utoipa::path(
    post,
    path = "/organisations",
    tag = "tenancy",
    request_body = CreateOrganisation,
    responses(
        (status = 201, description = "Created.", body = OrganisationView),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn create_organisation(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> AdminResult {
    actor.require_instance("create organisations")?;
    actor.require(Role::Admin, "create organisations")?;
    let input: CreateOrganisation = read_body(request, "organisation").await?;
    let name = input.name;
    validate_name(&name)?;
    let now = crate::time::now_ms();
    let org = Organisation {
        id: key::new_id("org"),
        name,
        created_at: now,
        limits: crate::policy::limits::Limits::default(),
        prepaid_nanos: None,
        updated_at: now,
    };
    if !state
        .store
        .insert_organisation(&org)
        .await
        .map_err(store_failed)?
    {
        return Err(conflict(format!(
            "An organisation named '{}' exists already.",
            crate::error::printable(&org.name)
        )));
    }
    tracing::info!(org_id = %org.id, "organisation created");
    Ok((StatusCode::CREATED, Json(organisation_view(&org))).into_response())
}

/// List organisations
///
/// Every one for an instance-wide credential; otherwise the caller's own.
#[utoipa::path(
    get,
    path = "/organisations",
    tag = "tenancy",
    responses(
        (status = 200, description = "Organisations in scope.", body = OrganisationList),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list_organisations(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> AdminResult {
    let orgs = state
        .store
        .list_organisations(actor.org_id.as_deref())
        .await
        .map_err(store_failed)?;
    let data = orgs.iter().map(organisation_view).collect();
    Ok(Json(OrganisationList { data }).into_response())
}

/// Show an organisation
#[utoipa::path(
    get,
    path = "/organisations/{id}",
    tag = "tenancy",
    params(OrganisationId),
    responses(
        (status = 200, description = "The organisation, with its budget and prepaid balance.", body = OrganisationView),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn show_organisation(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    OrganisationId { id }: OrganisationId,
) -> AdminResult {
    let org = find_organisation(&state, &actor, &id).await?;
    Ok(Json(organisation_view(&org)).into_response())
}

/// Body of `POST /admin/v1/projects`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateProject {
    /// Name, unique within the organisation: 1-128 characters, no control
    /// characters.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    name: String,
    /// Default: the caller's organisation, or the default one.
    #[serde(default)]
    #[schema(pattern = "^org_[A-Za-z0-9]{1,64}$")]
    org_id: Option<String>,
}

/// Create a project
///
/// Admins and owners of the organisation (or of the instance); a
/// project-scoped credential cannot create projects.
#[utoipa::path(
    post,
    path = "/projects",
    tag = "tenancy",
    request_body = CreateProject,
    responses(
        (status = 201, description = "Created.", body = ProjectView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn create_project(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> AdminResult {
    actor.require(Role::Admin, "create projects")?;
    if actor.project_id.is_some() {
        return Err(fail(ApiError::forbidden(
            "insufficient_role",
            "A project-scoped admin credential may not create projects.",
        )));
    }
    let input: CreateProject = read_body(request, "project").await?;
    let name = input.name;
    validate_name(&name)?;
    let org_id = input
        .org_id
        .or_else(|| actor.org_id.clone())
        .unwrap_or_else(|| DEFAULT_ORG.into());
    let org_not_found = || {
        fail(ApiError::not_found(format!(
            "No organisation with id '{}'.",
            crate::error::printable(&org_id)
        )))
    };
    if !key::valid_id("org", &org_id) || !actor.covers(Some(&org_id), None) {
        return Err(org_not_found());
    }
    if state
        .store
        .get_organisation(&org_id)
        .await
        .map_err(store_failed)?
        .is_none()
    {
        return Err(org_not_found());
    }
    let now = crate::time::now_ms();
    let project = Project {
        id: key::new_id("proj"),
        org_id: org_id.clone(),
        name,
        created_at: now,
        limits: crate::policy::limits::Limits::default(),
        updated_at: now,
        on_anomaly: None,
    };
    if !state
        .store
        .insert_project(&project)
        .await
        .map_err(store_failed)?
    {
        return Err(conflict(format!(
            "The organisation has a project named '{}' already.",
            crate::error::printable(&project.name)
        )));
    }
    tracing::info!(project_id = %project.id, org_id = %project.org_id, "project created");
    Ok((StatusCode::CREATED, Json(project_view(&project))).into_response())
}

/// Filters of `GET /admin/v1/projects`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ProjectQuery {
    /// Only this organisation's projects.
    org_id: Option<String>,
}

/// List projects
#[utoipa::path(
    get,
    path = "/projects",
    tag = "tenancy",
    params(ProjectQuery),
    responses(
        (status = 200, description = "Projects in scope.", body = ProjectList),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list_projects(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    uri: Uri,
) -> AdminResult {
    let Query(query) = Query::<ProjectQuery>::try_from_uri(&uri).map_err(|e| {
        fail(ApiError::invalid_request(crate::error::printable(
            &e.body_text(),
        )))
    })?;
    // An id that cannot exist selects nothing and never reaches the store.
    if query
        .org_id
        .as_deref()
        .is_some_and(|o| !key::valid_id("org", o))
    {
        return Ok(Json(ProjectList { data: Vec::new() }).into_response());
    }
    let org = query.org_id.or_else(|| actor.org_id.clone());
    let projects: Vec<ProjectView> = state
        .store
        .list_projects(org.as_deref())
        .await
        .map_err(store_failed)?
        .iter()
        .filter(|p| actor.sees_project(p))
        .map(project_view)
        .collect();
    Ok(Json(ProjectList { data: projects }).into_response())
}

/// Show a project
#[utoipa::path(
    get,
    path = "/projects/{id}",
    tag = "tenancy",
    params(ProjectId),
    responses(
        (status = 200, description = "The project, with its limits.", body = ProjectView),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn show_project(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ProjectId { id }: ProjectId,
) -> AdminResult {
    let project = find_project(&state, &actor, &id).await?;
    Ok(Json(project_view(&project)).into_response())
}
