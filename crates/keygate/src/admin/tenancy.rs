//! Organisations and projects in the admin API. Every key belongs to a
//! project of an organisation; admin credentials are scoped to one of them
//! or to the whole instance.

use super::access::{Actor, Role};
use super::keys::validate_name;
use super::{fail, parse_object, store_failed, AdminResult};
use crate::auth::key;
use crate::error::{ApiError, ShapedError};
use crate::server::AppState;
use crate::store::{Organisation, Project, DEFAULT_ORG};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrganisation {
    name: String,
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

/// `POST /admin/v1/organisations`: instance-wide admins and owners only.
async fn create_organisation(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> AdminResult {
    actor.require_instance("create organisations")?;
    actor.require(Role::Admin, "create organisations")?;
    let input: CreateOrganisation = read_body(request, "organisation").await?;
    let name = input.name.trim().to_string();
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

async fn list_organisations(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> AdminResult {
    let orgs = state
        .store
        .list_organisations(actor.org_id.as_deref())
        .await
        .map_err(store_failed)?;
    Ok(Json(json!({ "data": orgs })).into_response())
}

async fn show_organisation(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    name: String,
    /// Default: the caller's organisation, or the default one.
    #[serde(default)]
    org_id: Option<String>,
}

/// `POST /admin/v1/projects`: admins and owners of the organisation (or
/// of the instance); a project-scoped credential cannot create projects.
async fn create_project(
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
    let name = input.name.trim().to_string();
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectQuery {
    org_id: Option<String>,
}

async fn list_projects(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    uri: Uri,
) -> AdminResult {
    let Query(query) = Query::<ProjectQuery>::try_from_uri(&uri).map_err(|e| {
        fail(ApiError::invalid_request(crate::error::printable(
            &e.body_text(),
        )))
    })?;
    let org = query.org_id.or_else(|| actor.org_id.clone());
    let projects: Vec<Project> = state
        .store
        .list_projects(org.as_deref())
        .await
        .map_err(store_failed)?
        .into_iter()
        .filter(|p| actor.sees_project(p))
        .collect();
    Ok(Json(json!({ "data": projects })).into_response())
}

async fn show_project(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
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
