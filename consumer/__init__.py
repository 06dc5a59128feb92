"""fraudstream: real-time fraud detection for Amazon Kinesis, run by the KCL MultiLangDaemon."""

__version__ = "0.1.0"
