"""The embedded local stack: kinesis-mock, moto server and redis-server on loopback."""
