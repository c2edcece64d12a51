# Tables and figures of the Table 1 comparison, and how every result reaches the HTML report.
#
# The report (`snakemake --report results/NAME/report.html`) opens on workflow/report/workflow.rst (Table 1, the
# data, a link to every item; its <style> keeps every view scrollable from its top). Every other item is an output
# marked report(...). The pattern an experiment follows (robustness.smk, audio_separation.smk, perturbation.smk):
#   - a table: `table_page(name, category)` registers tables/{name}.md (the table, its caption under it) and .csv;
#     list the path it returns among the experiment target's inputs, and rule report_table renders the page;
#   - a figure: report(png, caption="../report/<experiment>.rst", category=..., labels=item_labels("figure", name));
#   - audio: an HTML page with an <audio> player beside each spectrogram (workflow.lib.reporting.pages.audio_page),
#     report(html, ..., labels=item_labels("audio", name)); .wav files stay files (the report would only download
#     them).
# Labels keep every link distinct and Table 1 first: the "Tables" category numbers its tables in registration order
# ("#", table1 first); other categories label each item {"type": table | figure | audio, "name": ...}.
REPORT_TABLES = {}


def item_labels(kind, name):
    """Report labels of an item of an experiment's category: its type and name."""
    return {"type": kind, "name": name}


def table_page(name, category="Tables", sources=None):
    """Register table `name` (its .md and .csv under tables/, or `sources`) as an HTML page of the report in
    `category`; the page's path (an output of rule report_table)."""
    if name not in REPORT_TABLES:
        number = 1 + sum(entry["category"] == category for entry in REPORT_TABLES.values())
        REPORT_TABLES[name] = {
            "category": category,
            "sources": sources or [RESULTS / "tables" / f"{name}.{ext}" for ext in ("md", "csv")],
            "labels": {"#": f"{number:02d}", "table": name} if category == "Tables" else item_labels("table", name)}
    return RESULTS / "report" / "tables" / f"{name}.html"


localrules: report_table  # a second's work: on a cluster, not worth a job of its own


rule report_table:
    """One table as an HTML page of the report: the Markdown table with its caption, the files to download."""
    input:
        lambda w: REPORT_TABLES[w.table]["sources"],
    output:
        report(RESULTS / "report" / "tables" / "{table}.html", caption="../report/table.rst",
               category=lambda w: REPORT_TABLES[w.table]["category"], labels=lambda w: REPORT_TABLES[w.table]["labels"]),
    log:
        log("report_table", "table"),
    benchmark:
        bench("report_table", "table"),
    shell:
        "{PY} -m workflow.scripts.report_table --name {wildcards.table} --sources {input} --out {output} 2> {log}"


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
        csv=[RESULTS / "tables" / f"{t}.csv" for t in TABLES],
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
                        caption="../report/examples.rst", category="Figures", subcategory="{dataset}",
                        labels={"figure": "examples", "model": "{model}"}),
        curves=report(RESULTS / "figures" / "curves_{dataset}_{model}.png",
                      caption="../report/curves.rst", category="Figures", subcategory="{dataset}",
                      labels={"figure": "curves", "model": "{model}"}),
        scales=report(RESULTS / "figures" / "scales_{dataset}_{model}.png",
                      caption="../report/scales.rst", category="Figures", subcategory="{dataset}",
                      labels={"figure": "scales", "model": "{model}"}),
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
        [table_page(t) for t in TABLES],


TARGETS["evaluation"] = rules.evaluation.input
