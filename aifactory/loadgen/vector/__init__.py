"""Vector-database workloads: datasets, ground truth, request sources and requesters."""
