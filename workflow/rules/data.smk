rule prepare_data:
    """Write (offline stand-ins), download or locate one data set under `resources/`."""
    output:
        RESULTS / "data" / "{dataset}.json",
    params:
        dataset=lambda w: section("datasets", w.dataset),
    log:
        log("prepare_data", "dataset"),
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.datasets prepare --key {wildcards.dataset} --config {CONFIG_FILE}"
        " --resources {RESOURCES} --out {output} > /dev/null 2> {log}"
