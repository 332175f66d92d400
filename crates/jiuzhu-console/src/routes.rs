//! Every page's address, and the layers every answer passes (security headers, same-origin
//! forms, the upload limit).

use axum::Router;
use axum::routing::{get, post};

use crate::pages;
use crate::web::{self, AppState};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::home::show))
        .route(
            "/signin",
            get(pages::signin::form).post(pages::signin::submit),
        )
        .route("/signout", post(pages::signin::signout))
        .route("/apply", get(pages::apply::form).post(pages::apply::submit))
        .route("/apply/code", post(pages::apply::send_code))
        .route(
            "/status",
            get(pages::apply::status_form).post(pages::apply::status),
        )
        .route("/language", post(pages::signin::language))
        .route("/clues", get(pages::clues::board))
        .route("/clues/{clue_id}/{action}", post(pages::clues::act))
        .route("/cases", get(pages::cases::list))
        .route("/cases/{case_id}", get(pages::cases::show))
        .route("/cases/{case_id}/stage", get(pages::cases::stage))
        .route("/cases/{case_id}/material", post(pages::cases::material))
        .route("/cases/{case_id}/review", post(pages::cases::review))
        .route("/cases/{case_id}/{action}", post(pages::cases::act))
        .route("/persons/{person_id}", get(pages::persons::show))
        .route("/finance", get(pages::finance::show))
        .route("/finance/statement", post(pages::finance::statement))
        .route("/followup", get(pages::followup::show))
        .route("/followup/{plan_id}", get(pages::followup::plan))
        .route("/followup/{plan_id}/visit", post(pages::followup::visit))
        .route(
            "/admin/staff",
            get(pages::admin::show).post(pages::admin::add),
        )
        .route(
            "/admin/staff/{staff_no}/active",
            post(pages::admin::set_active),
        )
        .route("/static/{*path}", get(crate::assets::serve))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(web::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.settings.max_upload_bytes + 64 * 1024,
        ))
        .layer(axum::middleware::from_fn(web::secure_headers))
        .layer(axum::middleware::from_fn(web::same_origin_posts))
        .with_state(state)
}
