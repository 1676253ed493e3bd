//! The dashboard's static files, embedded in the binary. Names carry a
//! version, so they are cached for a year and replaced by a new name.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `(name, content type, bytes)` of every asset.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "dashboard-1.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/dashboard.css"),
    ),
    (
        "dashboard-1.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/dashboard.js"),
    ),
    (
        "htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/vendor/htmx-2.0.11.min.js"),
    ),
    (
        "uPlot-1.6.32.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/vendor/uPlot-1.6.32.iife.min.js"),
    ),
    (
        "uPlot-1.6.32.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/vendor/uPlot-1.6.32.min.css"),
    ),
];

/// `GET /dashboard/assets/{name}`.
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        *bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    #[test]
    fn every_asset_is_embedded_and_not_empty() {
        for (name, content_type, bytes) in ASSETS {
            assert!(!bytes.is_empty(), "{name} is empty");
            assert!(content_type.starts_with("text/"), "{name}");
        }
    }
}
