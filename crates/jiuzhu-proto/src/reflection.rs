//! gRPC server reflection of the contracts, in both versions that stock clients speak (v1, and
//! v1alpha, which grpcio's and grpcurl's older releases still use), listing only the services
//! one port serves: a client that lists a port's services calls what is there.

use tonic_reflection::server::{Builder, Error, v1, v1alpha};

/// The names reflection lists beside a port's own services.
const REFLECTION: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

fn builder<'a>(served: &[&str], also: &[&'a [u8]]) -> Builder<'a> {
    let mut builder =
        Builder::configure().register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET);
    for set in also {
        builder = builder.register_encoded_file_descriptor_set(set);
    }
    for name in served.iter().chain(&REFLECTION) {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Reflection v1 and v1alpha listing `served` (full service names) and reflection itself;
/// `also` are encoded descriptor sets of services beside the contracts (e.g. gRPC health).
pub fn services(
    served: &[&str],
    also: &[&'static [u8]],
) -> Result<
    (
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    ),
    Error,
> {
    Ok((
        builder(served, also).build_v1()?,
        builder(served, also).build_v1alpha()?,
    ))
}
