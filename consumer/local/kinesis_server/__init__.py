"""fraudstream's own local Kinesis server: a stand-in that keeps up with production rates.

kinesis-mock stays the default stand-in of `fraudstream local up`: it is the emulator LocalStack
uses and it covers resharding. Its GetRecords, though, is its limit: a single Node thread that
builds a 10,000-record answer in about 2 s on a quiet machine (5-6 s on a busy one), so a
backlog drains at about 1,000-2,000 records/s a shard whatever the consumer can do
(docs/performance.md, "Backlog catch-up"). No other emulator reachable from the build machines
serves the KCL (HTTP/2 cleartext and CBOR) faster, so this one keeps records in per-shard lists
and answers with C-coded JSON and CBOR: `fraudstream local up --kinesis-server fraudstream`.

Modules: store (the streams, pure), wire (JSON and CBOR), app (ASGI dispatch),
__main__ (hypercorn on 127.0.0.1).
"""
