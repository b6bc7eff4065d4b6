"""Batch-script templates (``*.sh.j2``); a package only so wheels ship them as package data."""
