"""The site's part of every job: scheduler defaults, setup commands, where caches live.

Applied once, where a recipe becomes a job (deploys, load workers, ``recipes render``), so
the stored and rendered recipe says exactly what ran. A value the recipe sets wins, except
setup commands, which run site first, recipe second (``module load`` before its use). An
image prepared into the site's SIF cache (``aifactory recipes prepare``) runs from there.
"""

from __future__ import annotations

from aifactory.shared.images import cached
from aifactory.shared.recipes.fields import Runtime
from aifactory.shared.recipes.schema import Bind, Recipe
from aifactory.shared.settings import Settings

#: Where each cache goes under the site's cache folder.
CACHE_VARIABLES = {
    "HF_HOME": "huggingface",
    "APPTAINER_CACHEDIR": "apptainer",
    "OLLAMA_MODELS": "ollama",
}


def apply_site(recipe: Recipe, settings: Settings) -> Recipe:
    """``recipe`` completed with the site's defaults (validated again as a whole)."""
    data = recipe.model_dump(mode="python", exclude_unset=False)
    resources = data["resources"]
    for key in ("partition", "account", "qos"):
        if resources[key] is None:
            resources[key] = getattr(settings.slurm, key)
    data["setup"] = [*settings.site.setup, *recipe.setup]
    cache = settings.effective_cache_dir
    environment = {name: str(cache / sub) for name, sub in CACHE_VARIABLES.items()}
    if settings.site.offline:
        environment |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    data["environment"] = environment | dict(recipe.environment)
    if recipe.runtime is Runtime.APPTAINER and recipe.image is not None:
        prepared = cached(cache, recipe.image)
        if prepared is not None:  # the SIF pulled once on the login node, by digest
            data["image"] = str(prepared.path)
    if recipe.runtime is Runtime.APPTAINER:
        # The container sees $HOME and the working folder only; the caches live elsewhere.
        bind = Bind(source=str(cache), target=str(cache), create=True)
        if all(b["target"] != bind.target for b in data["apptainer"]["binds"]):
            data["apptainer"]["binds"].append(bind.model_dump())
    return Recipe.model_validate(data)
