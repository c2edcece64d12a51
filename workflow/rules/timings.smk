# The timings table of the whole run. Included last: it waits for every other registered target.
rule timings:
    """Wall time, CPU time and peak memory per rule and per (dataset, method), from every job's benchmark file."""
    input:
        [path for name, outputs in TARGETS.items() for path in outputs],
    output:
        csv=RESULTS / "tables" / "timings.csv",
        md=RESULTS / "tables" / "timings.md",
    log:
        log("timings"),
    shell:
        "{PY} -m workflow.scripts.timings --benchmarks {RESULTS}/benchmarks --out {RESULTS}/tables 2> {log}"


TARGETS["timings"] = [RESULTS / "tables" / "timings.csv", RESULTS / "tables" / "timings.md",
                      table_page("timings", "Timings")]
