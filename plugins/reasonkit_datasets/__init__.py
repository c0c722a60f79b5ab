"""Built-in training datasets: upstream-format SFT/RL rows from a folder, a file or an HF dataset id, and the
synthphys training split (reasonkit synth benchmark)."""

from reasonkit.hookspecs import hookimpl


@hookimpl
def reasonkit_register_datasets(register):
    register("sft-json", "reasonkit_datasets.rows:sft_rows",
             description="upstream SFT rows {video, conversations} from a JSON/JSONL file, folder or HF dataset")
    register("rl-json", "reasonkit_datasets.rows:rl_rows",
             description="upstream RL rows {video, qa_pairs} from a JSON/JSONL file, folder or HF dataset")
    register("synthphys", "reasonkit_datasets.rows:synthphys_rows",
             description="synthphys training split (SFT with split='sft', RL with split='rl')")
