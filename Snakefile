# WAM Bench: data -> models -> attributions -> scores -> tables, figures, report; plus the speed suite
# and the experiments beyond Table 1.
#   snakemake --cores all                                             # default (offline) configuration
#   snakemake --cores all --configfile workflow/config/paper.yaml     # the paper
#   snakemake --cores all speed                                       # the speed suite alone
from pathlib import Path

if "datasets" not in config:  # no --configfile, or one without `datasets:` (only `plugins:`): the default + it
    configfile: Path(workflow.basedir) / "workflow" / "config" / "default.yaml"  # from any --directory


report: "workflow/report/workflow.rst"  # the report's landing page: Table 1, the data, links to everything


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/speed.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/perturbation.smk"
include: "workflow/rules/audio_separation.smk"
include: "workflow/rules/seeds.smk"
include: "workflow/rules/architectures.smk"
include: "workflow/rules/sanity.smk"
include: "workflow/rules/metrics_extended.smk"
include: "workflow/rules/timings.smk"  # last: it waits for every target registered above


rule all:
    """Every target a rule file registered in TARGETS (evaluation, speed, and each configured experiment)."""
    default_target: True
    input:
        [path for outputs in TARGETS.values() for path in outputs],
