//! The person file: everything the five services recorded about one person, oldest first, as
//! one timeline (the registry's `GetPersonFile`, read for the member and audited as theirs).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use jiuzhu_proto::registry::{FileOrder, GetPersonFileRequest};
use serde::Deserialize;

use crate::web::{AppState, Frame, Member, OrPage, PageError, answer, render};

#[derive(Debug, Clone)]
pub struct Entry {
    pub at: String,
    pub producer: String,
    pub what: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "person.html")]
struct PersonPage {
    f: Frame,
    person_id: String,
    entries: Vec<Entry>,
    next_page: String,
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    page: String,
}

pub async fn show(
    State(state): State<AppState>,
    member: Member,
    Path(person_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    answer(
        async {
            if !person_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err((
                    PageError::BadInput("person_id: letters, digits and hyphens".to_owned()),
                    Some(member.clone()),
                )
                    .into());
            }
            let file = member
                .acting(&state)
                .registry()
                .get_person_file(GetPersonFileRequest {
                    person_id: person_id.clone(),
                    page_size: 200,
                    page_token: query.page,
                    order: FileOrder::OldestFirst.into(),
                    purpose: super::PURPOSE.to_owned(),
                })
                .await
                .or_page(&member)?
                .into_inner();
            let entries = file
                .entries
                .iter()
                .map(|e| Entry {
                    at: e
                        .occurred_at
                        .as_ref()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                        .map(|t| {
                            (t + chrono::Duration::hours(8))
                                .format("%Y-%m-%d %H:%M")
                                .to_string()
                        })
                        .unwrap_or_default(),
                    producer: e.producer.clone(),
                    what: e
                        .event_type
                        .rsplit('.')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    detail: e.detail_json.clone(),
                })
                .collect();
            Ok(render(&PersonPage {
                f: Frame::for_member(&member, "person.title"),
                person_id,
                entries,
                next_page: file.next_page_token,
            }))
        }
        .await,
    )
}
