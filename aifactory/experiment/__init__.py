"""Experiments: one YAML file → deploy, benchmark, report, tear down."""
