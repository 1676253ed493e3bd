//! Path parameters naming admin resources by id. Each is extracted like
//! `Path<…>`, but an id that does not decode (percent-encoded bytes that are
//! not UTF-8) names nothing: 404 in the admin error shape, not axum's
//! plain-text 400. The patterns are the ones the store's ids have, and
//! what the OpenAPI document states.

use super::fail;
use crate::error::{ApiError, ShapedError};
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::IntoParams;

macro_rules! path_id {
    ($name:ident, $pattern:literal, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ".")]
        #[derive(Debug, Deserialize, IntoParams)]
        #[into_params(parameter_in = Path)]
        pub(super) struct $name {
            #[doc = concat!("The ", $what, "'s id.")]
            #[param(pattern = $pattern)]
            pub(super) id: String,
        }

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ShapedError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                Path::<$name>::from_request_parts(parts, state)
                    .await
                    .map(|Path(id)| id)
                    .map_err(|_| {
                        fail(ApiError::not_found(concat!(
                            "No ",
                            $what,
                            " by that id (it is not valid UTF-8)."
                        )))
                    })
            }
        }
    };
}

path_id!(KeyId, "^key_[A-Za-z0-9]{1,64}$", "key");
path_id!(CredentialId, "^key_[A-Za-z0-9]{1,64}$", "admin credential");
path_id!(OrganisationId, "^org_[A-Za-z0-9]{1,64}$", "organisation");
path_id!(ProjectId, "^proj_[A-Za-z0-9]{1,64}$", "project");

/// An owner within an organisation: the path of an owner's budget.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct OwnerBudgetPath {
    /// The organisation's id.
    #[param(pattern = "^org_[A-Za-z0-9]{1,64}$")]
    pub(super) id: String,
    /// The owner, exactly as keys name it (percent-encoded in the path):
    /// 1-256 characters, no control characters.
    #[param(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,256}$")]
    pub(super) owner: String,
}

impl<S: Send + Sync> FromRequestParts<S> for OwnerBudgetPath {
    type Rejection = ShapedError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<OwnerBudgetPath>::from_request_parts(parts, state)
            .await
            .map(|Path(path)| path)
            .map_err(|_| {
                fail(ApiError::not_found(
                    "No organisation or owner by that name (it is not valid UTF-8).",
                ))
            })
    }
}

path_id!(
    ServiceAccountId,
    "^key_[A-Za-z0-9]{1,64}$",
    "service account"
);
path_id!(TrustedIssuerId, "^tis_[A-Za-z0-9]{1,64}$", "trusted issuer");

/// One key of a service account.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ServiceAccountKeyPath {
    /// The service account's id (its client id).
    #[param(pattern = "^key_[A-Za-z0-9]{1,64}$")]
    pub(super) id: String,
    /// The key's id (`private_key_id` of its key file).
    #[param(pattern = "^sak_[A-Za-z0-9]{1,64}$")]
    pub(super) kid: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ServiceAccountKeyPath {
    type Rejection = ShapedError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<ServiceAccountKeyPath>::from_request_parts(parts, state)
            .await
            .map(|Path(path)| path)
            .map_err(|_| {
                fail(ApiError::not_found(
                    "No service account or key by that id (it is not valid UTF-8).",
                ))
            })
    }
}
