//! A message of the contracts as one self-contained `.proto` text: the message (marked
//! `@RootNode`) and every message and enum it uses, transitively, in one file. AsyncAPI's
//! protobuf schema format wants exactly that (its tools follow no imports but Google's), so
//! `docs/asyncapi.json` carries these texts, and a test holds them to the contracts.
//!
//! Types keep their fields, numbers and kinds. Types of the root's package keep their names
//! (nested ones joined by `_`); types of other packages are named by their full name with `_`
//! for `.`. Well-known `google.protobuf` types are imported.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use prost_reflect::{
    Cardinality, DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor,
};

/// The self-contained text of message `full_name`, `None` when the pool has no such message.
pub fn proto_schema(pool: &DescriptorPool, full_name: &str) -> Option<String> {
    let root = pool.get_message_by_name(full_name)?;
    let package = root.package_name().to_owned();
    let mut messages: BTreeMap<String, MessageDescriptor> = BTreeMap::new();
    let mut enums: BTreeMap<String, EnumDescriptor> = BTreeMap::new();
    let mut imports = BTreeSet::new();
    let mut queue = VecDeque::from([root.clone()]);
    while let Some(message) = queue.pop_front() {
        if messages.contains_key(message.full_name()) {
            continue;
        }
        for field in message.fields() {
            for kind in field_kinds(&field) {
                match kind {
                    Kind::Message(used) if used.package_name() == "google.protobuf" => {
                        imports.insert(used.parent_file().name().to_owned());
                    }
                    Kind::Message(used) => queue.push_back(used),
                    Kind::Enum(used) => {
                        enums.insert(used.full_name().to_owned(), used);
                    }
                    _ => {}
                }
            }
        }
        messages.insert(message.full_name().to_owned(), message);
    }

    let mut text = format!("syntax = \"proto3\";\n\npackage {package};\n");
    if !imports.is_empty() {
        text.push('\n');
        for import in &imports {
            let _ = writeln!(text, "import \"{import}\";");
        }
    }
    let _ = write!(
        text,
        "\n// {full_name} and the types it uses, from Jiuzhu's published contracts (proto/,\n\
         // docs/jiuzhu.binpb), in one file.\n// @RootNode\n"
    );
    write_message(&mut text, &root, &package);
    for (name, message) in &messages {
        if name != full_name {
            text.push('\n');
            write_message(&mut text, message, &package);
        }
    }
    for enumeration in enums.values() {
        text.push('\n');
        let _ = writeln!(
            text,
            "enum {} {{",
            local_name(
                enumeration.full_name(),
                enumeration.package_name(),
                &package
            )
        );
        for value in enumeration.values() {
            let _ = writeln!(text, "  {} = {};", value.name(), value.number());
        }
        text.push_str("}\n");
    }
    Some(text)
}

/// The kinds a field refers to: a map's key and value, else its own.
fn field_kinds(field: &FieldDescriptor) -> Vec<Kind> {
    match field.kind() {
        Kind::Message(entry) if field.is_map() => entry.fields().map(|f| f.kind()).collect(),
        kind => vec![kind],
    }
}

/// A type's name in the one file: relative to the root's package with nesting joined by `_`, or
/// its full name with `_` for `.` when it belongs to another package.
fn local_name(full_name: &str, type_package: &str, root_package: &str) -> String {
    if type_package == root_package {
        full_name
            .strip_prefix(&format!("{root_package}."))
            .unwrap_or(full_name)
            .replace('.', "_")
    } else {
        full_name.replace('.', "_")
    }
}

fn type_name(kind: &Kind, package: &str) -> String {
    match kind {
        Kind::Double => "double".to_owned(),
        Kind::Float => "float".to_owned(),
        Kind::Int32 => "int32".to_owned(),
        Kind::Int64 => "int64".to_owned(),
        Kind::Uint32 => "uint32".to_owned(),
        Kind::Uint64 => "uint64".to_owned(),
        Kind::Sint32 => "sint32".to_owned(),
        Kind::Sint64 => "sint64".to_owned(),
        Kind::Fixed32 => "fixed32".to_owned(),
        Kind::Fixed64 => "fixed64".to_owned(),
        Kind::Sfixed32 => "sfixed32".to_owned(),
        Kind::Sfixed64 => "sfixed64".to_owned(),
        Kind::Bool => "bool".to_owned(),
        Kind::String => "string".to_owned(),
        Kind::Bytes => "bytes".to_owned(),
        Kind::Message(m) if m.package_name() == "google.protobuf" => m.full_name().to_owned(),
        Kind::Message(m) => local_name(m.full_name(), m.package_name(), package),
        Kind::Enum(e) => local_name(e.full_name(), e.package_name(), package),
    }
}

fn field_line(field: &FieldDescriptor, package: &str) -> String {
    let kind = field.kind();
    let declared = match &kind {
        Kind::Message(entry) if field.is_map() => {
            let key = entry.map_entry_key_field().kind();
            let value = entry.map_entry_value_field().kind();
            format!(
                "map<{}, {}>",
                type_name(&key, package),
                type_name(&value, package)
            )
        }
        _ if field.cardinality() == Cardinality::Repeated => {
            format!("repeated {}", type_name(&kind, package))
        }
        _ if field.field_descriptor_proto().proto3_optional() => {
            format!("optional {}", type_name(&kind, package))
        }
        _ => type_name(&kind, package),
    };
    format!("{declared} {} = {};", field.name(), field.number())
}

fn write_message(text: &mut String, message: &MessageDescriptor, package: &str) {
    let _ = writeln!(
        text,
        "message {} {{",
        local_name(message.full_name(), message.package_name(), package)
    );
    let mut oneofs_written = BTreeSet::new();
    for field in message.fields() {
        match field.containing_oneof() {
            Some(oneof) if !oneof.is_synthetic() => {
                if oneofs_written.insert(oneof.name().to_owned()) {
                    let _ = writeln!(text, "  oneof {} {{", oneof.name());
                    for member in oneof.fields() {
                        let _ = writeln!(text, "    {}", field_line(&member, package));
                    }
                    text.push_str("  }\n");
                }
            }
            _ => {
                let _ = writeln!(text, "  {}", field_line(&field, package));
            }
        }
    }
    text.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).unwrap_or_default()
    }

    #[test]
    fn a_message_brings_the_types_it_uses_under_names_of_one_file() {
        let schema = proto_schema(&pool(), "jiuzhu.registry.v1.PersonRecord").unwrap_or_default();
        assert!(schema.contains("package jiuzhu.registry.v1;"), "{schema}");
        assert!(
            schema.contains("// @RootNode\nmessage PersonRecord {"),
            "{schema}"
        );
        assert!(!schema.contains("\nimport \"jiuzhu/"), "{schema}");
        // A type of another package, and an enum, come along.
        assert!(schema.contains("message jiuzhu_common_v1_"), "{schema}");
        assert!(schema.contains("\nenum "), "{schema}");
    }

    #[test]
    fn well_known_types_are_imported_and_unknown_names_are_none() {
        let schema = proto_schema(&pool(), "jiuzhu.common.v1.EventEnvelope").unwrap_or_default();
        assert!(
            schema.contains("import \"google/protobuf/timestamp.proto\";"),
            "{schema}"
        );
        assert!(schema.contains("google.protobuf.Timestamp "), "{schema}");
        assert_eq!(proto_schema(&pool(), "jiuzhu.common.v1.Nothing"), None);
    }
}
