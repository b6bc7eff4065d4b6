"""``aifactory recipes prepare``: fetch on the login node what jobs must not fetch themselves.

Compute nodes are often offline, and a job that downloads a 15 GB image or model weights at
start spends allocation hours waiting. Run once on the login node (it has internet access),
this pulls the recipe's image into the site's SIF cache, keyed by digest, and fetches its
model weights (Hugging Face) or Ollama models into the site cache; jobs then start from
there (``HF_HUB_OFFLINE=1`` with ``site.offline``). Every command is an argument list (no
shell); secrets such as ``HF_TOKEN`` come from the environment, never the command line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from aifactory.shared.images import CachedImage, cached, file_digest, locked_index, sif_dir
from aifactory.shared.natsd import free_port
from aifactory.shared.recipes.fields import Runtime
from aifactory.shared.recipes.schema import Recipe
from aifactory.shared.recipes.site import CACHE_VARIABLES
from aifactory.shared.settings import Settings

#: Images a registry serves (a local .sif path is taken as it is).
REMOTE_IMAGE = ("docker://", "oras://", "library://", "shub://")
OLLAMA_START_S = 60.0


class PrepareError(RuntimeError):
    """A step of ``prepare`` failed; the message names the command and what it printed."""


@dataclass
class Prepared:
    image: CachedImage | None = None
    weights: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)


Say = Callable[[str], None]


def prepare(recipe: Recipe, settings: Settings, *, refresh: bool = False, say: Say) -> Prepared:
    """Pull ``recipe``'s image, weights and models into ``settings``' cache (idempotent)."""
    cache = settings.effective_cache_dir
    env = dict(os.environ) | {name: str(cache / sub) for name, sub in CACHE_VARIABLES.items()}
    for name in CACHE_VARIABLES:
        Path(env[name]).mkdir(parents=True, exist_ok=True)
    done = Prepared()
    container: list[str] = []
    if recipe.runtime is Runtime.APPTAINER and recipe.image is not None:
        done.image = _image(recipe.image, cache, env, refresh=refresh, say=say)
        container = ["apptainer", "exec", "--bind", f"{cache}:{cache}", str(done.image.path)]
    if recipe.model is not None and not recipe.script_template.runs_command:
        say(f"fetching weights of {recipe.model} into {env['HF_HOME']}")
        _run([*container, "huggingface-cli", "download", recipe.model], env, say)
        done.weights.append(recipe.model)
    if recipe.models:
        _ollama_pull(recipe.models, container, env, say)
        done.models = list(recipe.models)
    return done


def _image(image: str, cache: Path, env: dict[str, str], *, refresh: bool, say: Say) -> CachedImage:
    found = cached(cache, image)
    if found is not None and not refresh:
        say(f"{image}: cached as {found.path} ({found.digest})")
        return found
    folder = sif_dir(cache)
    folder.mkdir(parents=True, exist_ok=True)
    if image.startswith(REMOTE_IMAGE):
        tmp = folder / f".pull-{os.getpid()}.sif"
        say(f"pulling {image}")
        _run(["apptainer", "pull", "--force", str(tmp), image], env, say)
    else:
        tmp = Path(image)
    digest = file_digest(tmp)
    final = folder / f"{digest.replace(':', '-')}.sif"
    if tmp.parent == folder:
        os.replace(tmp, final)
    elif not final.exists():
        shutil.copyfile(tmp, final)
    entry = CachedImage(digest=digest, path=final)
    with locked_index(cache) as index:
        index.images[image] = entry
    say(f"{image}: {final} ({digest})")
    return entry


def _run(argv: Sequence[str], env: dict[str, str], say: Say) -> None:
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise PrepareError(f"{argv[0]} not found: install it, or load its module") from exc
    for line in (proc.stdout + proc.stderr).splitlines()[-20:]:
        say(f"  {line}")
    if proc.returncode != 0:
        raise PrepareError(f"{' '.join(argv)} failed with exit code {proc.returncode}")


@contextlib.contextmanager
def _ollama_server(container: list[str], env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    server_env = env | {"OLLAMA_HOST": f"127.0.0.1:{port}"}
    try:
        proc = subprocess.Popen(
            [*container, "ollama", "serve"],
            env=server_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise PrepareError("ollama not found: install it or prepare with its image") from exc
    try:
        deadline = time.monotonic() + OLLAMA_START_S
        while True:
            if proc.poll() is not None:
                raise PrepareError(f"ollama serve exited with code {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api}/api/version", timeout=1).is_success:
                    break
            if time.monotonic() > deadline:
                raise PrepareError(f"ollama serve did not answer within {OLLAMA_START_S:g}s")
            time.sleep(0.2)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ollama_pull(
    models: Sequence[str], container: list[str], env: dict[str, str], say: Say
) -> None:
    # A pull streams progress lines often; ten silent minutes mean a stalled download.
    timeout = httpx.Timeout(10.0, read=600.0)
    with _ollama_server(container, env) as api, httpx.Client(timeout=timeout) as client:
        for model in models:
            say(f"pulling model {model} into {env['OLLAMA_MODELS']}")
            last = ""
            with client.stream("POST", f"{api}/api/pull", json={"model": model}) as response:
                for line in response.iter_lines():
                    if line:
                        say(f"  {line}")
                        last = line
            if '"status":"success"' not in last.replace(" ", ""):
                raise PrepareError(f"pulling {model} failed: {last}")
