//! For integrators who decode our topics with their own tools (`make descriptors`):
//!
//!     jiuzhu-descriptors                 the encoded `FileDescriptorSet` of every contract
//!     jiuzhu-descriptors schema NAME     message NAME as one self-contained `.proto` text
//!                                        (what docs/asyncapi.json carries as its schema)

use std::io::Write;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => std::io::stdout().write_all(jiuzhu_proto::FILE_DESCRIPTOR_SET),
        [command, name] if command == "schema" => {
            let pool = prost_reflect::DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET)
                .map_err(std::io::Error::other)?;
            match jiuzhu_proto::schema::proto_schema(&pool, name) {
                Some(text) => std::io::stdout().write_all(text.as_bytes()),
                None => {
                    eprintln!("jiuzhu-descriptors: no message `{name}` in the contracts");
                    std::process::exit(2);
                }
            }
        }
        _ => {
            eprintln!("usage: jiuzhu-descriptors [schema MESSAGE]");
            std::process::exit(2);
        }
    }
}
