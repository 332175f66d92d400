//! Jiuzhu's protobuf contracts as Rust: the messages and gRPC stubs generated from `proto/`,
//! and the encoded `FileDescriptorSet` that gRPC reflection serves and that integrators use to
//! decode our topics. Every other crate takes its wire types from here, never from its own copy.

/// Encoded `google.protobuf.FileDescriptorSet` of every Jiuzhu contract (and its imports).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/jiuzhu_descriptor.binpb"));

#[allow(clippy::all, missing_docs)]
pub mod jiuzhu {
    pub mod common {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.common.v1.rs"));
        }
    }
    pub mod registry {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.registry.v1.rs"));
        }
    }
    pub mod clues {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiuzhu.clues.v1.rs"));
        }
    }
}

pub use jiuzhu::{clues::v1 as clues, common::v1 as common, registry::v1 as registry};
