rule explain:
    """Attributions of one shard of a data set's evaluated inputs by one method."""
    input:
        data=RESULTS / "data" / "{dataset}.json",
        model=RESULTS / "models" / "{dataset}" / "{model}" / "model.pt",
    output:
        RESULTS / "attributions" / "{dataset}" / "{model}" / "{method}" / "{shard}.pt",
    params:
        dataset=lambda w: section("datasets", w.dataset),
        method=lambda w: section("methods", w.method),
        wavelet=lambda w: section("wavelet"),
        shards=config["shards"],
    resources:
        gpu=1,
    log:
        log("explain", "dataset", "model", "method", "shard"),
    benchmark:
        bench("explain", "dataset", "model", "method", "shard"),
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.explain --config {CONFIG_FILE} --dataset {wildcards.dataset}"
        " --model {input.model} --method {wildcards.method} --shard {wildcards.shard} --out {output} 2> {log}"
