rule score:
    """Insertion, deletion, faithfulness, mu-fidelity and localisation of one shard of attributions."""
    input:
        model=RESULTS / "models" / "{dataset}" / "{model}" / "model.pt",
        attributions=RESULTS / "attributions" / "{dataset}" / "{model}" / "{method}" / "{shard}.pt",
    output:
        scores=RESULTS / "scores" / "{dataset}" / "{model}" / "{method}" / "{shard}.csv",
        curves=RESULTS / "curves" / "{dataset}" / "{model}" / "{method}" / "{shard}.csv",
    params:
        evaluation=lambda w: section("evaluation"),
        method=lambda w: section("methods", w.method),
    resources:
        gpu=1,
    log:
        log("score", "dataset", "model", "method", "shard"),
    benchmark:
        bench("score", "dataset", "model", "method", "shard"),
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.score --config {CONFIG_FILE} --dataset {wildcards.dataset}"
        " --model {input.model} --method {wildcards.method} --attributions {input.attributions}"
        " --scores {output.scores} --curves {output.curves} 2> {log}"


def shard_files(kind):
    """Every shard file of `kind` (scores, curves, attributions) the configuration asks for."""
    suffix = "pt" if kind == "attributions" else "csv"
    return [RESULTS / kind / d / m / f"{method}" / f"{s}.{suffix}"
            for d, m in dataset_models() for method in config["methods"] for s in SHARDS]
