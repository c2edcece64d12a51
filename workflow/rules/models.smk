rule train:
    """Train (or, for pretrained networks, load and test) one model on one data set."""
    input:
        data=RESULTS / "data" / "{dataset}.json",
        preflight=ancient(RESULTS / "preflight.json"),
    output:
        model=RESULTS / "models" / "{dataset}" / "{model}" / "model.pt",
        metrics=RESULTS / "models" / "{dataset}" / "{model}" / "metrics.json",
    params:
        dataset=lambda w: section("datasets", w.dataset),
        training=lambda w: section("training"),
    threads: config["training"].get("threads", 1)  # the trained weights depend on it
    resources:
        gpu=1,
    log:
        log("train", "dataset", "model"),
    benchmark:
        bench("train", "dataset", "model"),
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.train --config {CONFIG_FILE} --key {wildcards.dataset}"
        " --model {wildcards.model}"
        " --out {RESULTS}/models/{wildcards.dataset}/{wildcards.model} 2> {log}"
