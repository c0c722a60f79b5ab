"""Built-in scorers (`upstream`, `strict`) and GRPO rewards (`format`, `single_choice`; `scorer:<name>` derives a
reward from any registered scorer, so the training reward and the benchmark metric cannot drift apart)."""

from reasonkit.hookspecs import hookimpl


@hookimpl
def reasonkit_register_scorers(register):
    register("upstream", "reasonkit_scoring.scorers:UpstreamScorer",
             description="Cosmos-Reason1 rule: first uppercase letter in the first <answer> tag")
    register("strict", "reasonkit_scoring.scorers:StrictScorer",
             description="option-aware: letter, (letter), option text; ambiguous answers rejected")


@hookimpl
def reasonkit_register_rewards(register):
    register("format", "reasonkit_scoring.rewards:format_reward",
             description="1 if the output is exactly <think>…</think>\\n\\n<answer>…</answer>")
    register("single_choice", "reasonkit_scoring.rewards:single_choice_reward",
             description="1 if the <answer> content equals the reference (case-insensitive)")
