"""Built-in generation backends: `hf` (transformers generate) and `vllm` (vLLM's offline engine)."""

from reasonkit.hookspecs import hookimpl


@hookimpl
def reasonkit_register_backends(register):
    register("hf", "reasonkit.backends.hf:HFBackend", description="transformers generate, batched, left padding")
    register("vllm", "reasonkit.backends.vllm:VLLMBackend", description="vLLM offline engine (tensor parallel)")
