"""The hot-path benchmark: the real record processor against a naive per-record peer.

`python -m bench --json` starts its own redis-server and moto server on 127.0.0.1, generates
realistic batches (load_test.synthetic), feeds them to a real amazon_kclpy KCLProcess over pipes
with the MultiLangDaemon's protocol lines, then runs the per-record peer (bench/peer.py) on the
same servers, and reports records/s, the speedup, per-batch latency and peak RSS of each side.
See docs/benchmarks.md.
"""
