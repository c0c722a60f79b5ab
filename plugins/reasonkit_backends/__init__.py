"""Built-in generation backends: `hf` (transformers generate), `vllm` (vLLM's offline engine) and `openai` (any
OpenAI-compatible Chat Completions server)."""

from reasonkit.hookspecs import hookimpl


@hookimpl
def reasonkit_register_backends(register):
    register("hf", "reasonkit.backends.hf:HFBackend", description="transformers generate, batched, left padding")
    register("vllm", "reasonkit.backends.vllm:VLLMBackend", description="vLLM offline engine (tensor parallel)")
    register("openai", "reasonkit.backends.openai:OpenAIBackend",
             description="OpenAI-compatible Chat Completions API (OpenAI, Gemini, vllm serve, SGLang)")
