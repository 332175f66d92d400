use std::collections::HashMap;

use rdkafka::message::{Header, Headers, OwnedHeaders};

/// Header naming the payload's event type (full protobuf name).
pub const EVENT_TYPE_HEADER: &str = "jiuzhu-event-type";
/// Header carrying the event id, so tools can deduplicate without decoding.
pub const EVENT_ID_HEADER: &str = "jiuzhu-event-id";
/// Standard content-type header.
pub const CONTENT_TYPE: &str = "content-type";
/// Content type of every record value on an events topic.
pub const ENVELOPE_CONTENT_TYPE: &str =
    "application/x-protobuf; messageType=jiuzhu.common.v1.EventEnvelope";

/// Record headers as a string map (non-UTF-8 values are skipped).
pub fn header_map<H: Headers>(headers: Option<&H>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(headers) = headers {
        for header in headers.iter() {
            if let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                map.insert(header.key.to_owned(), value.to_owned());
            }
        }
    }
    map
}

pub fn with_entries<'a>(
    mut headers: OwnedHeaders,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> OwnedHeaders {
    for (key, value) in entries {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}
