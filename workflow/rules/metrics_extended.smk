# Metrics beyond faithfulness (target `metrics_extended`): ROAD, Max/Avg-Sensitivity, RIS, Sparseness and
# Complexity of every (data set, model) in both domains, from the explain stage's maps, and the agreement of every
# metric (Table 1's included) on the methods' rankings. Registered in TARGETS (built by `all`) only when the
# configuration has a `metrics_extended:` section.
if "metrics_extended" in config:
    from workflow.lib.experiments import metrics_extended as _extended
    from workflow.lib.experiments.seeds import extra_seeds as _extra_seeds, trained_models as _trained_models

    EXTENDED_DIR = RESULTS / "metrics_extended"
    EXTENDED_METHODS = _extended.settings(CONFIG)["methods"]
    EXTENDED_OUTPUTS = [RESULTS / "tables" / f"{t}.{ext}" for t in ("road", "stability", "complexity",
                                                                     "metric_agreement") for ext in ("csv", "md")]
    # Table 1's scores of the other training seeds (seed_spread), when the configuration lists several
    EXTENDED_REPLICATES = ([RESULTS / "seeds" / str(s) / "scores" / d / m / f"{method}.csv"
                            for s in _extra_seeds(CONFIG) for d, m in _trained_models(CONFIG)
                            for method in EXTENDED_METHODS if method in config["methods"]]
                           if len(config.get("seeds", [])) > 1 else [])

    rule metrics_extended_run:
        """ROAD, stability and complexity of every metrics_extended method on one (data set, model)."""
        input:
            data=RESULTS / "data" / "{dataset}.json",
            model=RESULTS / "models" / "{dataset}" / "{model}" / "model.pt",
            attributions=lambda w: [RESULTS / "attributions" / w.dataset / w.model / m / f"{s}.pt"
                                    for m in EXTENDED_METHODS for s in SHARDS],
        output:
            rows=EXTENDED_DIR / "{dataset}" / "{model}" / "rows.csv",
            curves=EXTENDED_DIR / "{dataset}" / "{model}" / "curves.csv",
        params:
            metrics_extended=lambda w: section("metrics_extended"),
            dataset=lambda w: section("datasets", w.dataset),
            wavelet=lambda w: section("wavelet", CONFIG.datasets[w.dataset].modality),
            methods=lambda w: json.dumps({m: config["methods"][m] for m in EXTENDED_METHODS}, sort_keys=True),
            evaluation=json.dumps({k: config["evaluation"][k] for k in ("batch_size", "ranking")}, sort_keys=True),
        resources:
            gpu=1,
        log:
            log("metrics_extended_run", "dataset", "model"),
        benchmark:
            bench("metrics_extended_run", "dataset", "model"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.metrics_extended run --config {CONFIG_FILE}"
            " --dataset {wildcards.dataset} --model {input.model}"
            " --attributions {RESULTS}/attributions/{wildcards.dataset}/{wildcards.model}"
            " --rows {output.rows} --curves {output.curves} 2> {log}"

    rule metrics_extended_report:
        """tables road, stability, complexity (bootstrap CIs) and metric_agreement (Kendall tau, flip shares)."""
        input:
            rows=[EXTENDED_DIR / d / m / "rows.csv" for d, m in dataset_models()],
            scores=RESULTS / "scores" / "scores.csv",
            replicates=EXTENDED_REPLICATES,
        output:
            EXTENDED_OUTPUTS,
        params:
            metrics_extended=lambda w: section("metrics_extended"),
            evaluation=json.dumps({k: config["evaluation"][k] for k in ("bootstrap", "protocol", "domains", "ranking")},
                                  sort_keys=True),
            replicates=lambda w, input: " ".join(["--replicates", *input.replicates]) if input.replicates else "",
        log:
            log("metrics_extended_report"),
        benchmark:
            bench("metrics_extended_report"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.metrics_extended report"
            " --config {CONFIG_FILE} --rows {input.rows} --scores {input.scores} {params.replicates}"
            " --out {RESULTS} 2> {log}"

    rule metrics_extended:
        """ROAD, stability, complexity and metric agreement tables, and their report pages."""
        input:
            EXTENDED_OUTPUTS,
            [table_page(t, "Extended metrics") for t in ("road", "stability", "complexity", "metric_agreement")],

    TARGETS["metrics_extended"] = rules.metrics_extended.input
