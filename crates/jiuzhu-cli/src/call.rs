//! `jiuzhu call`: any unary RPC of a running service, request and answer as JSON, with the
//! method's types learnt from the server's own reflection service (as grpcurl does), over
//! mutual TLS with a certificate from `--certs`. The platform's machines have no grpcurl; this
//! is the same thing for operators and the quick start.

use std::collections::{BTreeSet, HashSet};
use std::str::FromStr;

use anyhow::Context;
use jiuzhu_proto::dynamic::DynamicCodec;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::transport::Channel;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// The service's address, e.g. https://127.0.0.1:50051.
    url: String,
    /// The method: `package.Service/Method` (e.g. jiuzhu.clues.v1.CluesService/GetLinkageIndexStatus),
    /// or `list` for the services the server offers.
    method: String,
    /// The request as JSON (protobuf JSON mapping); `{}` when absent, `-` reads standard input.
    request: Option<String>,
    #[command(flatten)]
    connection: crate::Connection,
}

pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    let channel = args.connection.channel(&args.url, None).await?;
    let mut reflection = ServerReflectionClient::new(channel.clone());
    if args.method == "list" {
        for service in list_services(&mut reflection).await? {
            println!("{service}");
        }
        return Ok(());
    }
    let (service, method) = args.method.split_once('/').with_context(|| {
        format!(
            "`{}` is not `package.Service/Method` (or `list`)",
            args.method
        )
    })?;
    let pool = descriptors_of(&mut reflection, service).await?;
    let method_descriptor = pool
        .get_service_by_name(service)
        .with_context(|| format!("the server does not offer {service}"))?
        .methods()
        .find(|m| m.name() == method)
        .with_context(|| format!("{service} has no method {method}"))?;
    if method_descriptor.is_client_streaming() || method_descriptor.is_server_streaming() {
        anyhow::bail!("{service}/{method} streams; `jiuzhu call` makes unary calls only");
    }
    let text = match args.request.as_deref() {
        None => "{}".to_owned(),
        Some("-") => std::io::read_to_string(std::io::stdin()).context("standard input")?,
        Some(text) => text.to_owned(),
    };
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    let request = DynamicMessage::deserialize(method_descriptor.input(), &mut deserializer)
        .with_context(|| {
            format!(
                "the request is not a {}",
                method_descriptor.input().full_name()
            )
        })?;
    deserializer
        .end()
        .context("unexpected text after the request's JSON")?;

    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.context("the connection is not ready")?;
    let path = http::uri::PathAndQuery::from_str(&format!("/{service}/{method}"))?;
    let codec = DynamicCodec(method_descriptor.output());
    let answer = grpc
        .unary(tonic::Request::new(request), path, codec)
        .await
        .map_err(|status| refused(&status))?;
    let json = serde_json::to_string_pretty(answer.get_ref())?;
    println!("{json}");
    Ok(())
}

/// The status as the caller should read it: code, message, and the fields a bad request names.
fn refused(status: &tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|bad| {
            bad.field_violations
                .into_iter()
                .map(|v| format!("\n  {}: {}", v.field, v.description))
                .collect()
        })
        .unwrap_or_default();
    anyhow::anyhow!(
        "{:?}: {}{}",
        status.code(),
        status.message(),
        fields.concat()
    )
}

async fn ask(
    reflection: &mut ServerReflectionClient<Channel>,
    request: MessageRequest,
) -> anyhow::Result<MessageResponse> {
    let outbound = futures::stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }]);
    let mut answers = reflection
        .server_reflection_info(outbound)
        .await
        .map_err(|status| refused(&status))?
        .into_inner();
    let answer: ServerReflectionResponse = answers
        .message()
        .await
        .map_err(|status| refused(&status))?
        .context("the reflection service closed without answering")?;
    match answer.message_response {
        Some(MessageResponse::ErrorResponse(error)) => {
            anyhow::bail!("reflection: {}", error.error_message)
        }
        Some(response) => Ok(response),
        None => anyhow::bail!("reflection gave an empty answer"),
    }
}

async fn list_services(
    reflection: &mut ServerReflectionClient<Channel>,
) -> anyhow::Result<Vec<String>> {
    match ask(reflection, MessageRequest::ListServices(String::new())).await? {
        MessageResponse::ListServicesResponse(list) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => anyhow::bail!("reflection answered a list with {other:?}"),
    }
}

/// The file declaring `symbol` and every file it imports, as the server describes them.
async fn descriptors_of(
    reflection: &mut ServerReflectionClient<Channel>,
    symbol: &str,
) -> anyhow::Result<DescriptorPool> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut wanted = BTreeSet::new();
    let mut request = MessageRequest::FileContainingSymbol(symbol.to_owned());
    loop {
        let MessageResponse::FileDescriptorResponse(response) = ask(reflection, request).await?
        else {
            anyhow::bail!("reflection did not answer with file descriptors");
        };
        for bytes in response.file_descriptor_proto {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())
                .context("reflection sent a file descriptor that does not decode")?;
            if seen.insert(file.name().to_owned()) {
                wanted.extend(file.dependency.iter().cloned());
                files.push(file);
            }
        }
        wanted.retain(|name| !seen.contains(name));
        let Some(next) = wanted.pop_first() else {
            break;
        };
        request = MessageRequest::FileByFilename(next);
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(files)
        .context("the server's descriptors do not fit together")?;
    Ok(pool)
}
