# Meaningful perturbation in the wavelet domain: masks optimised on the wavelet coefficients of the
# first images data set's inputs for its first model, then the table, the Pareto front and example figures.
# Registered in TARGETS (built by `all`) only when the configuration has a `perturbation:` section.
if "perturbation" in config:
    PERTURBATION_DATASET = CONFIG.experiment_dataset("perturbation")
    PERTURBATION_MODEL = CONFIG.experiment_model("perturbation")
    PERTURBATION_DIR = RESULTS / "perturbation"
    PERTURBATION_OUTPUTS = [RESULTS / "tables" / "perturbation.csv", RESULTS / "tables" / "perturbation.md",
                            RESULTS / "figures" / "perturbation_pareto.png",
                            RESULTS / "figures" / "perturbation_examples.png",
                            table_page("perturbation", "Perturbation")]

    rule perturbation_masks:
        """Optimise the masks of every (image, alpha); WAM-IG's per-level shares on the same images."""
        input:
            data=RESULTS / "data" / f"{PERTURBATION_DATASET}.json",
            model=RESULTS / "models" / PERTURBATION_DATASET / PERTURBATION_MODEL / "model.pt",
        output:
            rows=PERTURBATION_DIR / "rows.csv",
            examples=PERTURBATION_DIR / "examples.pt",
        params:
            perturbation=section("perturbation"),
            dataset=section("datasets", PERTURBATION_DATASET),
            wavelet=section("wavelet", "images"),
            wam_ig=json.dumps(config["methods"].get("wam_ig"), sort_keys=True),
        resources:
            gpu=1,
        log:
            log("perturbation_masks"),
        benchmark:
            bench("perturbation_masks"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.perturbation optimise --config {CONFIG_FILE}"
            " --dataset {PERTURBATION_DATASET} --model {input.model} --rows {output.rows}"
            " --examples {output.examples} 2> {log}"

    rule perturbation_report:
        """The perturbation table (bootstrap CIs), the sparsity-logit Pareto front and the example figure."""
        input:
            rows=PERTURBATION_DIR / "rows.csv",
            examples=PERTURBATION_DIR / "examples.pt",
        output:
            csv=PERTURBATION_OUTPUTS[0],
            md=PERTURBATION_OUTPUTS[1],
            pareto=report(PERTURBATION_OUTPUTS[2], caption="../report/perturbation.rst", category="Perturbation",
                          labels=item_labels("figure", "perturbation_pareto")),
            examples=report(PERTURBATION_OUTPUTS[3], caption="../report/perturbation.rst", category="Perturbation",
                            labels=item_labels("figure", "perturbation_examples")),
        params:
            perturbation=section("perturbation"),
            bootstrap=section("evaluation", "bootstrap"),
        log:
            log("perturbation_report"),
        benchmark:
            bench("perturbation_report"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.perturbation report --config {CONFIG_FILE}"
            " --rows {input.rows} --examples {input.examples} --out {RESULTS} 2> {log}"

    rule perturbation:
        """The perturbation experiment: table and figures."""
        input:
            PERTURBATION_OUTPUTS,

    TARGETS["perturbation"] = PERTURBATION_OUTPUTS
