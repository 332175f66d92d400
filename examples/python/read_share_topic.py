"""Read a department's share topic and print each message as JSON.

    pip install confluent-kafka protobuf
    python examples/python/read_share_topic.py 127.0.0.1:9092 jiuzhu.share.civil_affairs.v1 docs/jiuzhu.binpb

`docs/jiuzhu.binpb` is the contracts' published descriptor set (`make descriptors` writes it
again; a test fails when it differs from the contracts).

Each Kafka message is a `jiuzhu.common.v1.EventEnvelope`; its `payload` is the event named by
`event_type` (and the `jiuzhu-event-type` header), holding only the fields the department's
agreement allows, the person as the department's pseudonym. The `jiuzhu-agreement-version`
header names the agreement it went out under. Delivery is at least once: skip event ids seen.

Offsets are committed after a message is handled (printed here; stored, in a real reader), so
a reader that stops starts again where it left off and loses nothing. The consumer group is
`JIUZHU_GROUP_ID` (default `department-reader-example`). Against Kafka with SASL_SSL (as
`deploy/compose.yaml` runs it), set `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD` and
`KAFKA_SSL_CA` (the CA certificate file); `KAFKA_SASL_MECHANISM` defaults to SCRAM-SHA-512.
"""

import json
import os
import sys

from confluent_kafka import Consumer
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def main(brokers, topic, descriptors, limit=None, timeout=30.0):
    pool = descriptor_pool.DescriptorPool()
    files = descriptor_pb2.FileDescriptorSet.FromString(open(descriptors, "rb").read())
    for file in files.file:
        pool.Add(file)
    message_class = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    Envelope = message_class("jiuzhu.common.v1.EventEnvelope")

    config = {
        "bootstrap.servers": brokers,
        "group.id": os.environ.get("JIUZHU_GROUP_ID", "department-reader-example"),
        "auto.offset.reset": "earliest",
        # Committed by hand, after each message is handled.
        "enable.auto.commit": False,
    }
    if os.environ.get("KAFKA_SASL_USERNAME"):
        config.update({
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": os.environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            "sasl.username": os.environ["KAFKA_SASL_USERNAME"],
            "sasl.password": os.environ.get("KAFKA_SASL_PASSWORD", ""),
        })
        if os.environ.get("KAFKA_SSL_CA"):
            config["ssl.ca.location"] = os.environ["KAFKA_SSL_CA"]
    consumer = Consumer(config)
    consumer.subscribe([topic])
    seen = set()
    try:
        while limit is None or len(seen) < limit:
            record = consumer.poll(timeout)
            if record is None:
                break
            if record.error():
                raise SystemExit(f"kafka: {record.error()}")
            envelope = Envelope.FromString(record.value())
            if envelope.event_id in seen:
                consumer.commit(message=record, asynchronous=False)
                continue
            seen.add(envelope.event_id)
            event = message_class(envelope.event_type).FromString(envelope.payload)
            headers = dict((k, v.decode()) for k, v in (record.headers() or []))
            print(json.dumps({
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "agreement_version": headers.get("jiuzhu-agreement-version"),
                "event": json_format.MessageToDict(event),
            }, ensure_ascii=False), flush=True)
            # Handled: the group moves past it.
            consumer.commit(message=record, asynchronous=False)
    finally:
        consumer.close()


if __name__ == "__main__":
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else None
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
    main(sys.argv[1], sys.argv[2], sys.argv[3], limit, timeout)
