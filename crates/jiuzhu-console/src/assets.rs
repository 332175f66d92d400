//! The console's static files, compiled into the binary: its stylesheet, and the
//! front-end packages vendored from npm (`static/vendor/VENDORED.md` records their versions).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Path under `/static/`, content type, bytes.
const ASSETS: [(&str, &str, &[u8]); 2] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/console.css"),
    ),
    (
        "vendor/htmx.org-2.0.11/htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/vendor/htmx.org-2.0.11/htmx.min.js"),
    ),
];

pub async fn serve(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
