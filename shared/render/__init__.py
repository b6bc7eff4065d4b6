"""Rendering recipes into SLURM batch scripts with Jinja2 (design.md §4).

``render_script(recipe, job_name=..., workdir=..., service_id=...)`` returns the script text;
values are shell-quoted by default (see :mod:`aifactory.shared.render.shell`).
"""

from __future__ import annotations

from aifactory.shared.render.script import (
    ENV_BEGIN,
    ENV_END,
    environment,
    render_script,
    template_for,
)
from aifactory.shared.render.shell import Raw, RenderError, quote

__all__ = [
    "ENV_BEGIN",
    "ENV_END",
    "Raw",
    "RenderError",
    "environment",
    "quote",
    "render_script",
    "template_for",
]
