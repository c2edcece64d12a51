rule prepare_data:
    """Write (offline stand-ins), download or locate one data set under `resources/`."""
    output:
        RESULTS / "data" / "{dataset}.txt",
    params:
        dataset=lambda w: section("datasets", w.dataset),
    log:
        log("prepare_data", "dataset"),
    shell:
        "{PY} -m workflow.scripts.datasets prepare --key {wildcards.dataset} --config {CONFIG_FILE}"
        " --resources {RESOURCES} > {output}.tmp 2> {log} && mv {output}.tmp {output}"
