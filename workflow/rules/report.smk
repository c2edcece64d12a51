OTHER_PROTOCOL = {"reference": "clean", "clean": "reference"}[config["evaluation"]["protocol"]]
TABLES = ["table1", f"table1_{OTHER_PROTOCOL}", *[f"table1_{d}_{m}" for d, m in dataset_models()],
          "table1_pixel_paper", "table1_pixel_trapezoid", "table1_wavelet_paper", "table1_wavelet_trapezoid",
          "mu_fidelity", "completeness", "localisation", "scales", "lrp_conservation",
          "protocol_sensitivity"]
TABLES.append("appendix_metrics")  # FF, Fid-in, mu-fidelity (metrics.spectra); also .tex
TABLES.append("appendix_baselines")  # Ins., Del., Faith. of every method, both domains and AUCs; also .tex


def table_outputs():
    return [RESULTS / "tables" / f"{t}.{ext}" for t in TABLES for ext in ("csv", "md")] + [
        RESULTS / "tables" / "table1.tex", RESULTS / "scores" / "scores.csv"]


def figure_outputs():
    return [RESULTS / "figures" / f"{kind}_{d}_{m}.png"
            for d, m in dataset_models() for kind in ("examples", "curves", "scales")]


rule tables:
    """Every per-sample score gathered into one tidy table, then the paper's tables with bootstrap CIs."""
    input:
        scores=shard_files("scores"),
        models=[RESULTS / "models" / d / m / "metrics.json" for d, m in dataset_models()],
        published=REPOSITORY / "results" / "published" / "table1.csv",
    output:
        scores=RESULTS / "scores" / "scores.csv",
        csv=[report(RESULTS / "tables" / f"{t}.csv", caption="../report/tables.rst", category="Tables")
             for t in TABLES],
        md=[RESULTS / "tables" / f"{t}.md" for t in TABLES],
        tex=RESULTS / "tables" / "table1.tex",
        wide=RESULTS / "tables" / "table1_wide.csv",
        appendix_tex=RESULTS / "tables" / "appendix_metrics.tex",
        appendix_baselines_tex=RESULTS / "tables" / "appendix_baselines.tex",
    params:
        evaluation=lambda w: section("evaluation"),
        methods=lambda w: shown_methods(),
    log:
        log("tables"),
    benchmark:
        bench("tables"),
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.tables --config {CONFIG_FILE} --scores {input.scores}"
        " --published {input.published} --out {RESULTS} 2> {log}"


rule figures:
    """Example maps, insertion / deletion curves and per-scale importance for one (dataset, model)."""
    input:
        data=RESULTS / "data" / "{dataset}.json",
        attributions=lambda w: [RESULTS / "attributions" / w.dataset / w.model / m / "0.pt"
                                for m in config["methods"]],
        curves=lambda w: [RESULTS / "curves" / w.dataset / w.model / m / f"{s}.csv"
                          for m in config["methods"] for s in SHARDS],
        scores=RESULTS / "scores" / "scores.csv",
    output:
        examples=report(RESULTS / "figures" / "examples_{dataset}_{model}.png",
                        caption="../report/examples.rst", category="Figures", subcategory="{dataset}"),
        curves=report(RESULTS / "figures" / "curves_{dataset}_{model}.png",
                      caption="../report/curves.rst", category="Figures", subcategory="{dataset}"),
        scales=report(RESULTS / "figures" / "scales_{dataset}_{model}.png",
                      caption="../report/scales.rst", category="Figures", subcategory="{dataset}"),
    params:
        methods=lambda w: shown_methods(),
    log:
        log("figures", "dataset", "model"),
    benchmark:
        bench("figures", "dataset", "model"),
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.figures --config {CONFIG_FILE} --dataset {wildcards.dataset}"
        " --model {wildcards.model} --scores {input.scores} --out {RESULTS}/figures 2> {log}"


rule evaluation:
    """Every table and figure of the Table 1 comparison, without the speed suite."""
    input:
        table_outputs(),
        figure_outputs(),


TARGETS["evaluation"] = rules.evaluation.input
