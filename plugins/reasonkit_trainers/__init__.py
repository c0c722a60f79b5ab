"""Built-in trainers: `sft` (DeepSpeed ZeRO) and `grpo` (rollouts with hf or vLLM)."""

from reasonkit.hookspecs import hookimpl


@hookimpl
def reasonkit_register_trainers(register):
    register("sft", "reasonkit.train.sft:train_sft", policy_type="sft",
             description="supervised fine-tuning on DeepSpeed ZeRO 0-3")
    register("grpo", "reasonkit.train.grpo.trainer:train_grpo", policy_type="grpo",
             description="GRPO on DeepSpeed ZeRO with hf or colocated vLLM rollouts")
