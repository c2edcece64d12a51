rule speed:
    """The speed suite: WAM and baselines over the model's forward+backward, metrics over Quantus and
    over the forward floor; ratios measured in one process."""
    output:
        report(RESULTS / "speed" / "speed.csv", caption="../report/speed.rst", category="Speed"),
    params:
        speed=lambda w: section("speed"),
        device=config["device"],
    resources:
        gpu=1,
    log:
        log("speed"),
    shell:
        "{PY} -m workflow.scripts.speed --config {CONFIG_FILE} --out {output} 2> {log}"
