rule preflight:
    """Check every data set and model of the configuration in seconds, before any work: one line per problem,
    each naming its config key and the fix (workflow/lib/data/checks.py). prepare_data and train wait for
    it (``ancient``: its reruns do not redo them)."""
    output:
        RESULTS / "preflight.json",
    params:
        datasets=lambda w: section("datasets"),
        device=config["device"],
        resources=RESOURCES,
    log:
        log("preflight"),
    benchmark:
        bench("preflight"),
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.preflight --config {CONFIG_FILE} --out {output}"
        " 2>&1 | tee {log} >&2"


rule prepare_data:
    """Write (offline stand-ins), download or locate one data set under `resources/`."""
    input:
        ancient(RESULTS / "preflight.json"),
    output:
        RESULTS / "data" / "{dataset}.json",
    params:
        dataset=lambda w: section("datasets", w.dataset),
    log:
        log("prepare_data", "dataset"),
    benchmark:
        bench("prepare_data", "dataset"),
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.prepare_data --key {wildcards.dataset} --config {CONFIG_FILE}"
        " --out {output} > /dev/null 2> {log}"
