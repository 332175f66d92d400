// Parses an AsyncAPI document as integrators' tools do: the stock parser with the protobuf
// schema parser registered. Prints each message with the properties of its payload as JSON
// Schema (one JSON line each), and every diagnostic of severity error or warning to stderr;
// exits 1 when the document does not parse or a diagnostic is an error.
"use strict";

const { Parser, fromFile } = require("@asyncapi/parser");
const { ProtoBuffSchemaParser } = require("@asyncapi/protobuf-schema-parser");

(async () => {
  const parser = new Parser();
  parser.registerSchemaParser(ProtoBuffSchemaParser());
  const { document, diagnostics } = await fromFile(parser, process.argv[2]).parse();
  let failed = !document;
  for (const d of diagnostics) {
    // 0 error, 1 warning, 2 information, 3 hint.
    if (d.severity > 1) continue;
    console.error(`${d.severity === 0 ? "error" : "warning"} ${d.code}: ${d.message} at ${JSON.stringify(d.path)}`);
    if (d.severity === 0) failed = true;
  }
  if (document) {
    for (const message of document.allMessages()) {
      const payload = message.payload();
      console.log(JSON.stringify({
        message: message.id(),
        type: payload ? payload.type() : null,
        properties: payload && payload.properties() ? Object.keys(payload.properties()) : [],
      }));
    }
  }
  process.exit(failed ? 1 : 0);
})().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
