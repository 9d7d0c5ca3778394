"""The HTTP service under load: latency, throughput, replicas, large catalogs."""
