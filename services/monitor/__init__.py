"""The monitor service: scrapes every running service's metrics, publishes the samples."""
