# The `robustness` target (paper, "model robustness"): scale shares of WAM, clean and PGD accuracy, and their
# Spearman correlation across models. Registered only when the config has a `robustness:` section.
if "robustness" in config:
    ROBUSTNESS = config["robustness"]
    ROBUST_DIR = RESULTS / "robustness"
    ROBUST_MODELS = list(ROBUSTNESS["models"])
    # (model, training seed) pairs: every seed of robustness.seeds for a model the DAG trains, one for a checkpoint
    from workflow.lib.experiments.robustness import model_seeds as _model_seeds, settings as _robust_settings

    ROBUST_RUNS = [(m, s) for m in ROBUST_MODELS for s in _model_seeds(_robust_settings(CONFIG), m)]
    # The offline texture set is written by robustness_data; an ImageNet data set by the prepare_data rule.
    OFFLINE = ROBUSTNESS.get("data", "textures") == "textures"
    ROBUST_DATA = ROBUST_DIR / "data.json" if OFFLINE else RESULTS / "data" / f"{ROBUSTNESS['data']}.json"
    # Only the ImageNet ResNet-50s need a GPU (evaluation). The offline texture CNNs (about 1 M multiply-adds per
    # image) run on the CPU, side by side, outside the local profile's one-GPU-job-at-a-time limit; fetching a
    # checkpoint needs the network, not a GPU.

    rule robustness_data:
        """Write the offline texture/region set (32x32 crops of scikit-image photographs) under `resources/`."""
        output:
            ROBUST_DIR / "data.json",
        log:
            log("robustness_data"),
        benchmark:
            bench("robustness_data"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.robustness prepare --config {CONFIG_FILE}"
            " --out {output} 2> {log}"

    rule robustness_model:
        """Train one model on the offline set (ERM, Madry PGD, FBF, free; CPU) or fetch its verified checkpoint."""
        input:
            ROBUST_DATA if OFFLINE else [],
        output:
            ROBUST_DIR / "models" / "{model}" / "{seed}.pt",
        params:
            model=lambda w: json.dumps(ROBUSTNESS["models"][w.model], sort_keys=True),
            training=lambda w: json.dumps(ROBUSTNESS.get("training"), sort_keys=True),
            epsilon=lambda w: ROBUSTNESS["attack"]["epsilon"],
        wildcard_constraints:
            model="|".join(ROBUST_MODELS),
            seed=r"\d+",
        log:
            log("robustness_model", "model", "seed"),
        benchmark:
            bench("robustness_model", "model", "seed"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.robustness model --config {CONFIG_FILE}"
            " --name {wildcards.model} --seed {wildcards.seed} --out {output} 2> {log}"

    rule robustness_evaluate:
        """Clean and PGD accuracy, and per-image WAM scale shares, of one model."""
        input:
            data=ROBUST_DATA,
            model=ROBUST_DIR / "models" / "{model}" / "{seed}.pt",
        output:
            scores=ROBUST_DIR / "scores" / "{model}" / "{seed}.csv",
            summary=ROBUST_DIR / "scores" / "{model}" / "{seed}.json",
        params:
            # everything but the model entries, the training settings and seeds (those rebuild the model files)
            robustness=lambda w: json.dumps({k: v for k, v in ROBUSTNESS.items()
                                             if k not in ("models", "training", "seeds")},
                                            sort_keys=True),
            methods=lambda w: json.dumps({m: config["methods"][m] for m in ROBUSTNESS["methods"]}, sort_keys=True),
        wildcard_constraints:
            model="|".join(ROBUST_MODELS),
            seed=r"\d+",
        resources:
            gpu=0 if OFFLINE else 1,
        log:
            log("robustness_evaluate", "model", "seed"),
        benchmark:
            bench("robustness_evaluate", "model", "seed"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.robustness evaluate --config {CONFIG_FILE}"
            " --name {wildcards.model} --seed {wildcards.seed} --model {input.model} --scores {output.scores}"
            " --summary {output.summary} 2> {log}"

    rule robustness_table:
        """Scale shares with bootstrap CIs, accuracies and Spearman(robust accuracy, coarse share): tables, figure."""
        input:
            scores=[ROBUST_DIR / "scores" / m / f"{s}.csv" for m, s in ROBUST_RUNS],
            summaries=[ROBUST_DIR / "scores" / m / f"{s}.json" for m, s in ROBUST_RUNS],
        output:
            csv=RESULTS / "tables" / "robustness_scales.csv",
            md=RESULTS / "tables" / "robustness_scales.md",
            tex=RESULTS / "tables" / "robustness_scales.tex",
            figure=report(RESULTS / "figures" / "robustness_scales.png", caption="../report/robustness.rst",
                          category="Robustness", labels=item_labels("figure", "robustness_scales")),
        params:
            robustness=lambda w: section("robustness"),
            bootstrap=lambda w: section("evaluation", "bootstrap"),
        log:
            log("robustness_table"),
        benchmark:
            bench("robustness_table"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.robustness table --config {CONFIG_FILE}"
            " --scores {input.scores} --summaries {input.summaries} --tables {RESULTS}/tables"
            " --figure {output.figure} 2> {log}"

    rule robustness:
        """The robustness tables, figure and report items."""
        input:
            rules.robustness_table.output,
            table_page("robustness_scales", "Robustness"),

    TARGETS["robustness"] = rules.robustness.input
