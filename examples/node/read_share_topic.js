// Read a department's share topic and print each message as JSON (one line each).
//
//     npm ci --prefix examples/node
//     node examples/node/read_share_topic.js 127.0.0.1:9092 jiuzhu.share.civil_affairs.v1 docs/jiuzhu.binpb
//
// `docs/jiuzhu.binpb` is the contracts' published descriptor set (`make descriptors` writes it
// again; a test fails when it differs from the contracts), read here with protobufjs.
//
// Each Kafka message is a `jiuzhu.common.v1.EventEnvelope`; its `payload` is the event named by
// `event_type` (and the `jiuzhu-event-type` header), holding only the fields the department's
// agreement allows, the person as the department's pseudonym. The `jiuzhu-agreement-version`
// header names the agreement it went out under; CloudEvents headers (`ce_id`, `ce_type`, …) say
// the same for CloudEvents tooling. Delivery is at least once: skip event ids seen.
//
// Offsets are committed after a message is handled (printed here; stored, in a real reader), so
// a reader that stops starts again where it left off and loses nothing. The consumer group is
// `JIUZHU_GROUP_ID` (default `department-reader-example`). Against Kafka with SASL_SSL (as
// `deploy/compose.yaml` runs it), set `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD` and
// `KAFKA_SSL_CA` (the CA certificate file); `KAFKA_SASL_MECHANISM` defaults to scram-sha-512.
//
// Optional arguments: how many messages to read before stopping, and how many seconds to wait
// for the next one (default: read for ever).
"use strict";

const fs = require("fs");
const { Kafka, logLevel } = require("kafkajs");
const protobuf = require("protobufjs");
require("protobufjs/ext/descriptor");

async function main([brokers, topic, descriptors, limitArg, timeoutArg]) {
  if (!brokers || !topic || !descriptors) {
    console.error("usage: read_share_topic.js BROKERS TOPIC DESCRIPTOR_SET [LIMIT] [IDLE_SECONDS]");
    process.exit(2);
  }
  const limit = limitArg ? Number(limitArg) : Infinity;
  const idleMs = timeoutArg ? Number(timeoutArg) * 1000 : Infinity;
  const root = protobuf.Root.fromDescriptor(fs.readFileSync(descriptors));
  const Envelope = root.lookupType("jiuzhu.common.v1.EventEnvelope");

  const config = { clientId: "jiuzhu-department-reader", brokers: brokers.split(","), logLevel: logLevel.WARN };
  if (process.env.KAFKA_SASL_USERNAME) {
    config.sasl = {
      mechanism: process.env.KAFKA_SASL_MECHANISM || "scram-sha-512",
      username: process.env.KAFKA_SASL_USERNAME,
      password: process.env.KAFKA_SASL_PASSWORD || "",
    };
    config.ssl = process.env.KAFKA_SSL_CA ? { ca: [fs.readFileSync(process.env.KAFKA_SSL_CA)] } : true;
  }
  const consumer = new Kafka(config).consumer({
    groupId: process.env.JIUZHU_GROUP_ID || "department-reader-example",
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });

  const seen = new Set();
  let idle;
  const done = new Promise((resolve) => {
    const rearm = () => {
      clearTimeout(idle);
      if (Number.isFinite(idleMs)) idle = setTimeout(resolve, idleMs);
    };
    rearm();
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic: from, partition, message }) => {
        rearm();
        const envelope = Envelope.decode(message.value);
        if (!seen.has(envelope.eventId)) {
          seen.add(envelope.eventId);
          const type = root.lookupType(envelope.eventType);
          const event = type.toObject(type.decode(envelope.payload), { longs: String, enums: String });
          const headers = Object.fromEntries(
            Object.entries(message.headers || {}).map(([k, v]) => [k, v ? v.toString() : ""]),
          );
          console.log(JSON.stringify({
            event_id: envelope.eventId,
            event_type: envelope.eventType,
            agreement_version: headers["jiuzhu-agreement-version"],
            event,
          }));
        }
        // Handled: the group moves past it.
        await consumer.commitOffsets([
          { topic: from, partition, offset: (BigInt(message.offset) + 1n).toString() },
        ]);
        if (seen.size >= limit) resolve();
      },
    }).catch((error) => {
      console.error(`kafka: ${error.message}`);
      process.exit(1);
    });
  });
  await done;
  clearTimeout(idle);
  await consumer.disconnect();
}

main(process.argv.slice(2)).catch((error) => {
  console.error(error.message);
  process.exit(1);
});
