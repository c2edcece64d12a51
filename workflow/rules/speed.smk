rule speed:
    """The speed suite: WAM and baselines over the model's forward+backward, metrics over Quantus and
    over the forward floor; ratios measured in one process."""
    output:
        RESULTS / "speed" / "speed.csv",
    params:
        speed=lambda w: section("speed"),
        device=config["device"],
    threads: 2  # the whole of a 2-core laptop: the speed suite runs alone
    resources:
        gpu=1,
    log:
        log("speed"),
    benchmark:
        bench("speed"),
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.speed --config {CONFIG_FILE} --out {output} 2> {log}"


TARGETS["speed"] = [RESULTS / "speed" / "speed.csv",
                    table_page("speed", "Speed", sources=[RESULTS / "speed" / "speed.csv",
                                                          REPOSITORY / "workflow" / "report" / "speed.rst"])]
