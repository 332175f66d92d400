//! Clue acquisition's gRPC shell.

use jiuzhu_proto::clues::clues_service_server::CluesService;
use jiuzhu_proto::clues::{GetLinkageIndexStatusRequest, GetLinkageIndexStatusResponse};
use jiuzhu_runtime::grpc::database_status;
use sqlx::{PgPool, Row};
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct CluesApi {
    pool: PgPool,
}

impl CluesApi {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[tonic::async_trait]
impl CluesService for CluesApi {
    async fn get_linkage_index_status(
        &self,
        _request: Request<GetLinkageIndexStatusRequest>,
    ) -> Result<Response<GetLinkageIndexStatusResponse>, Status> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM linkage_persons) AS persons, \
             (SELECT applied_events FROM linkage_index_stats) AS applied",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(database_status)?;
        Ok(Response::new(GetLinkageIndexStatusResponse {
            indexed_persons: row.try_get("persons").map_err(database_status)?,
            applied_events: row.try_get("applied").map_err(database_status)?,
        }))
    }
}
