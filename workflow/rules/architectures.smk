# The `architectures` target: Table 1's methods and metrics across model families (ResNet, ConvNeXt, ViT, Swin,
# EfficientNet). Registered in TARGETS (built by `all`) only when the configuration has an `architectures:` section.
if "architectures" in config:
    from workflow.lib.experiments.architectures import TEXTURES as _TEXTURES, settings as _arch_settings

    ARCH = _arch_settings(CONFIG)
    ARCH_DIR = RESULTS / "architectures"
    ARCH_MODELS = list(ARCH["models"])
    ARCH_OFFLINE = ARCH["data"] == _TEXTURES
    # The offline texture set is written by architectures_data; an ImageNet data set by the prepare_data rule.
    ARCH_DATA = ARCH_DIR / "data.json" if ARCH_OFFLINE else RESULTS / "data" / f"{ARCH['data']}.json"
    ARCH_OUTPUTS = [RESULTS / "tables" / "architectures.csv", RESULTS / "tables" / "architectures.md",
                    RESULTS / "figures" / "architectures.png"]

    rule architectures_data:
        """Write the offline texture set (32x32 crops of scikit-image photographs) under `resources/`."""
        output:
            ARCH_DIR / "data.json",
        log:
            log("architectures_data"),
        benchmark:
            bench("architectures_data"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.architectures prepare"
            " --config {CONFIG_FILE} --out {output} 2> {log}"

    rule architectures_model:
        """Train one small model on the texture set (the same budget for every family; CPU), or fetch the weights
        of a pretrained one (the preflight says first when they need the network)."""
        input:
            data=ARCH_DATA if ARCH_OFFLINE else [],
            preflight=ancient(RESULTS / "preflight.json"),
        output:
            model=ARCH_DIR / "models" / "{arch}" / "model.pt",
            metrics=ARCH_DIR / "models" / "{arch}" / "metrics.json",
        params:
            model=lambda w: json.dumps(ARCH["models"][w.arch], sort_keys=True),
            training=json.dumps(ARCH["training"], sort_keys=True) if ARCH_OFFLINE else "",
            data=ARCH["data"],
        wildcard_constraints:
            arch="|".join(ARCH_MODELS),
        log:
            log("architectures_model", "arch"),
        benchmark:
            bench("architectures_model", "arch"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.architectures model --config {CONFIG_FILE}"
            " --name {wildcards.arch} --out {ARCH_DIR}/models/{wildcards.arch} 2> {log}"

    rule architectures_evaluate:
        """Explain the inputs with every method and score them (Table 1's metrics, both domains) for one model."""
        input:
            data=ARCH_DATA,
            model=ARCH_DIR / "models" / "{arch}" / "model.pt",
        output:
            scores=ARCH_DIR / "scores" / "{arch}.csv",
            summary=ARCH_DIR / "scores" / "{arch}.json",
            maps=ARCH_DIR / "scores" / "{arch}.pt",
        params:
            n_inputs=ARCH["n_inputs"],
            methods=json.dumps({m: config["methods"][m] for m in ARCH["methods"]}, sort_keys=True),
            evaluation=lambda w: section("evaluation"),
            wavelet=lambda w: section("wavelet", "images"),
        wildcard_constraints:
            arch="|".join(ARCH_MODELS),
        resources:
            gpu=0 if ARCH_OFFLINE else 1,
        log:
            log("architectures_evaluate", "arch"),
        benchmark:
            bench("architectures_evaluate", "arch"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.architectures evaluate"
            " --config {CONFIG_FILE} --name {wildcards.arch} --model {input.model} --scores {output.scores}"
            " --summary {output.summary} --maps {output.maps} 2> {log}"

    rule architectures_table:
        """The method x architecture table (bootstrap CIs, degenerate counts, LRP conservation) and the figure."""
        input:
            scores=[ARCH_DIR / "scores" / f"{a}.csv" for a in ARCH_MODELS],
            summaries=[ARCH_DIR / "scores" / f"{a}.json" for a in ARCH_MODELS],
            maps=[ARCH_DIR / "scores" / f"{a}.pt" for a in ARCH_MODELS],
        output:
            csv=ARCH_OUTPUTS[0],
            md=ARCH_OUTPUTS[1],
            figure=report(ARCH_OUTPUTS[2], caption="../report/architectures.rst", category="Architectures",
                          labels=item_labels("figure", "architectures")),
        params:
            models=json.dumps(ARCH["models"], sort_keys=True),
            methods=json.dumps({m: config["methods"][m] for m in ARCH["methods"]}, sort_keys=True),
            evaluation=lambda w: section("evaluation"),
        log:
            log("architectures_table"),
        benchmark:
            bench("architectures_table"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.architectures table --config {CONFIG_FILE}"
            " --scores {input.scores} --summaries {input.summaries} --maps {input.maps} --tables {RESULTS}/tables"
            " --figure {output.figure} 2> {log}"

    rule architectures:
        """The architectures table and figure, and the table's report page."""
        input:
            ARCH_OUTPUTS,
            table_page("architectures", "Architectures"),

    TARGETS["architectures"] = rules.architectures.input
