//! Writes the encoded `FileDescriptorSet` of every Jiuzhu contract to standard output, for
//! integrators who decode our topics with their own tools (`make descriptors`).

use std::io::Write;

fn main() -> std::io::Result<()> {
    std::io::stdout().write_all(jiuzhu_proto::FILE_DESCRIPTOR_SET)
}
