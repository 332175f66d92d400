"""`make descriptors`, second half: every message of docs/asyncapi.json gets its payload schema
as one self-contained .proto text (`jiuzhu-descriptors schema NAME`), which AsyncAPI's protobuf
schema parser reads (it follows no imports). The message named is `x-jiuzhu-protobuf-message`.
tests/tests/asyncapi.rs fails while the document and the contracts differ."""

import json
import subprocess
import sys

PATH = "docs/asyncapi.json"
binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/jiuzhu-descriptors"
with open(PATH, encoding="utf-8") as f:
    document = json.load(f)
for message in document["components"]["messages"].values():
    payload = message["payload"]
    name = message.get("x-jiuzhu-protobuf-message") or payload["schema"]
    message["x-jiuzhu-protobuf-message"] = name
    text = subprocess.run([binary, "schema", name], check=True, capture_output=True, text=True).stdout
    message["payload"] = {"schemaFormat": payload["schemaFormat"], "schema": text}
with open(PATH, "w", encoding="utf-8") as f:
    f.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
