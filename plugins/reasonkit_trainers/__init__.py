"""Built-in trainers: `sft` (DeepSpeed ZeRO) and `grpo`, and GRPO's rollout engines: `hf` and `vllm`."""

from reasonkit.hookspecs import hookimpl


@hookimpl
def reasonkit_register_trainers(register):
    register("sft", "reasonkit.train.sft:train_sft", policy_type="sft",
             description="supervised fine-tuning on DeepSpeed ZeRO 0-3")
    register("grpo", "reasonkit.train.grpo.trainer:train_grpo", policy_type="grpo",
             description="GRPO on DeepSpeed ZeRO with hf or colocated vLLM rollouts")


@hookimpl
def reasonkit_register_rollouts(register):
    register("hf", "reasonkit.train.grpo.rollout:HFRollout",
             description="transformers generate on the policy module itself (nothing to sync)")
    register("vllm", "reasonkit.train.grpo.rollout:VLLMRollout",
             description="colocated vLLM engine, weights reloaded after every optimizer step")
