"""Read a department's share topic and print each message as JSON.

    pip install confluent-kafka protobuf
    make descriptors            # writes target/jiuzhu.binpb, the contracts' descriptor set
    python examples/python/read_share_topic.py 127.0.0.1:9092 jiuzhu.share.civil_affairs.v1 target/jiuzhu.binpb

Each Kafka message is a `jiuzhu.common.v1.EventEnvelope`; its `payload` is the event named by
`event_type` (and the `jiuzhu-event-type` header), holding only the fields the department's
agreement allows, the person as the department's pseudonym. The `jiuzhu-agreement-version`
header names the agreement it went out under. Delivery is at least once: skip event ids seen.
"""

import json
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

    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "department-reader-example",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
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
    finally:
        consumer.close()


if __name__ == "__main__":
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else None
    main(sys.argv[1], sys.argv[2], sys.argv[3], limit)
