//! Organisations and projects in the admin API. Every key belongs to a
//! project of an organisation; admin credentials are scoped to one of them
//! or to the whole instance.

use super::access::{Actor, Role};
use super::ids::{OrganisationId, ProjectId};
use super::keys::validate_name;
use super::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, UnsupportedMediaType,
};
use super::{fail, parse_object, store_failed, AdminResult};
use crate::auth::key;
use crate::error::{ApiError, ShapedError};
use crate::server::AppState;
use crate::store::{Organisation, Project, DEFAULT_ORG};
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Routes under `/admin/v1/organisations` and `/admin/v1/projects`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/organisations",
            post(create_organisation).get(list_organisations),
        )
        .route("/organisations/{id}", get(show_organisation))
        .route("/projects", post(create_project).get(list_projects))
        .route("/projects/{id}", get(show_project))
}

/// Body of `POST /admin/v1/organisations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateOrganisation {
    /// Unique name: 1-128 characters, no control characters.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    name: String,
}

/// Organisations the caller can see.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrganisationList {
    data: Vec<Organisation>,
}

/// Projects the caller can see.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProjectList {
    data: Vec<Project>,
}

async fn read_body<T: serde::de::DeserializeOwned>(
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
        (status = 201, description = "Created.", body = Organisation),
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
    let org = Organisation {
        id: key::new_id("org"),
        name,
        created_at: crate::time::now_ms(),
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
    Ok((StatusCode::CREATED, Json(org)).into_response())
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
    Ok(Json(OrganisationList { data: orgs }).into_response())
}

/// Show an organisation
#[utoipa::path(
    get,
    path = "/organisations/{id}",
    tag = "tenancy",
    params(OrganisationId),
    responses(
        (status = 200, description = "The organisation.", body = Organisation),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn show_organisation(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    OrganisationId { id }: OrganisationId,
) -> AdminResult {
    let not_found = || {
        fail(ApiError::not_found(format!(
            "No organisation with id '{}'.",
            crate::error::printable(&id)
        )))
    };
    if !key::valid_id("org", &id) {
        return Err(not_found());
    }
    let org = state
        .store
        .get_organisation(&id)
        .await
        .map_err(store_failed)?
        .filter(|o| actor.org_id.as_ref().is_none_or(|own| *own == o.id))
        .ok_or_else(not_found)?;
    Ok(Json(org).into_response())
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
        (status = 201, description = "Created.", body = Project),
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
    let project = Project {
        id: key::new_id("proj"),
        org_id: org_id.clone(),
        name,
        created_at: crate::time::now_ms(),
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
    Ok((StatusCode::CREATED, Json(project)).into_response())
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
    let projects: Vec<Project> = state
        .store
        .list_projects(org.as_deref())
        .await
        .map_err(store_failed)?
        .into_iter()
        .filter(|p| actor.sees_project(p))
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
        (status = 200, description = "The project.", body = Project),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn show_project(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ProjectId { id }: ProjectId,
) -> AdminResult {
    let not_found = || {
        fail(ApiError::not_found(format!(
            "No project with id '{}'.",
            crate::error::printable(&id)
        )))
    };
    if !key::valid_id("proj", &id) {
        return Err(not_found());
    }
    let project = state
        .store
        .get_project(&id)
        .await
        .map_err(store_failed)?
        .filter(|p| actor.sees_project(p))
        .ok_or_else(not_found)?;
    Ok(Json(project).into_response())
}
