# Randomisation sanity checks (target `sanity`): cascading and independent model-parameter randomisation, eMPRT,
# random logit and data randomisation (the trained models retrained on shuffled labels), every (data set, model),
# both domains. Registered in TARGETS (built by `all`) only when the configuration has a `sanity:` section.
if "sanity" in config:
    from workflow.lib.experiments import sanity as _sanity

    SANITY_DIR = RESULTS / "sanity"
    SANITY_SHUFFLED = _sanity.shuffled_models(CONFIG)  # (data set, model) pairs the DAG trains
    SANITY_OUTPUTS = [RESULTS / "tables" / "randomisation.csv", RESULTS / "tables" / "randomisation.md",
                      *[RESULTS / "figures" / f"randomisation_{m}.png" for m in _sanity.modalities(CONFIG)]]

    def _sanity_methods(w):
        """The `methods` entries the job runs (a plug-in method elsewhere in `methods` does not rerun it)."""
        names = _sanity.methods_for(CONFIG, CONFIG.datasets[w.dataset].modality)
        return json.dumps({m: config["methods"].get(m) for m in names}, sort_keys=True)

    def _shuffled(w):
        trained = (w.dataset, w.model) in SANITY_SHUFFLED
        return [SANITY_DIR / "models" / w.dataset / w.model / "model.pt"] if trained else []

    rule sanity_shuffled:
        """Data randomisation: the model retrained on shuffled training labels (its test accuracy is chance)."""
        input:
            data=RESULTS / "data" / "{dataset}.json",
            preflight=ancient(RESULTS / "preflight.json"),
        output:
            model=SANITY_DIR / "models" / "{dataset}" / "{model}" / "model.pt",
            metrics=SANITY_DIR / "models" / "{dataset}" / "{model}" / "metrics.json",
        params:
            dataset=lambda w: section("datasets", w.dataset),
            training=lambda w: section("training"),
            epochs=config["sanity"].get("data_epochs"),
        threads: config["training"].get("threads", 1)  # the trained weights depend on it
        resources:
            gpu=1,
        log:
            log("sanity_shuffled", "dataset", "model"),
        benchmark:
            bench("sanity_shuffled", "dataset", "model"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.sanity shuffled --config {CONFIG_FILE}"
            " --dataset {wildcards.dataset} --model {wildcards.model}"
            " --out {RESULTS}/sanity/models/{wildcards.dataset}/{wildcards.model} 2> {log}"

    rule sanity_run:
        """Every randomisation test of every sanity method on one (data set, model): per-input rows, example maps."""
        input:
            data=RESULTS / "data" / "{dataset}.json",
            model=RESULTS / "models" / "{dataset}" / "{model}" / "model.pt",
            shuffled=_shuffled,
        output:
            rows=SANITY_DIR / "{dataset}" / "{model}" / "rows.csv",
            examples=SANITY_DIR / "{dataset}" / "{model}" / "examples.pt",
        params:
            sanity=lambda w: section("sanity"),
            dataset=lambda w: section("datasets", w.dataset),
            wavelet=lambda w: section("wavelet", CONFIG.datasets[w.dataset].modality),
            methods=_sanity_methods,
            batch_size=config["evaluation"]["batch_size"],
            shuffled=lambda w, input: f"--shuffled {input.shuffled}" if input.shuffled else "",
        resources:
            gpu=1,
        log:
            log("sanity_run", "dataset", "model"),
        benchmark:
            bench("sanity_run", "dataset", "model"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.sanity run --config {CONFIG_FILE}"
            " --dataset {wildcards.dataset} --model {input.model} {params.shuffled} --rows {output.rows}"
            " --examples {output.examples} 2> {log}"

    rule sanity_report:
        """tables/randomisation (bootstrap CIs) and one Adebayo-style figure per modality."""
        input:
            rows=[SANITY_DIR / d / m / "rows.csv" for d, m in dataset_models()],
            examples=[SANITY_DIR / d / m / "examples.pt" for d, m in dataset_models()],
        output:
            csv=SANITY_OUTPUTS[0],
            md=SANITY_OUTPUTS[1],
            figures=[report(p, caption="../report/randomisation.rst", category="Sanity checks",
                            labels=item_labels("figure", p.stem)) for p in SANITY_OUTPUTS[2:]],
        params:
            sanity=lambda w: section("sanity"),
            bootstrap=config["evaluation"]["bootstrap"],
        log:
            log("sanity_report"),
        benchmark:
            bench("sanity_report"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.sanity report --config {CONFIG_FILE}"
            " --rows {input.rows} --examples {input.examples} --out {RESULTS} 2> {log}"

    rule sanity:
        """The randomisation sanity checks: table and figures, and the table's report page."""
        input:
            SANITY_OUTPUTS,
            table_page("randomisation", "Sanity checks"),

    TARGETS["sanity"] = rules.sanity.input
