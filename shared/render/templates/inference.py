"""``inference``: a model server that is not vLLM; lists the job's GPUs before it starts."""

from aifactory.shared.render.templates.service import Service


class Inference(Service, name="inference"):
    """The default for ``inference`` recipes (Ollama, the simulator, TGI, …)."""
