# Configuration checks and the helpers every rule file uses.
import json
import os
import sys

from snakemake.utils import validate

# `--config seeds=[42,1,2]` gives the seeds as strings: read them as the integers they are.
if isinstance(config.get("seeds"), list):
    config["seeds"] = [int(s) if isinstance(s, str) and s.lstrip("-").isdigit() else s for s in config["seeds"]]
validate(config, "../config/schema.yaml")
# Plug-ins (config `plugins`, entry points `wam_bench.plugins`) register their baselines and metrics before the
# DAG is built; their baselines join `methods` (workflow/lib/plugins.py). A broken one stops the run here.
from workflow.lib import plugins as _plugins
from workflow.lib.config import Config

_plugins.configure(config)
# The typed configuration: every default resolved once, e.g. which data set and model each experiment uses
# (workflow/lib/config.py). What JSON schema cannot check fails here, naming the key.
CONFIG = Config.from_dict(config)

PY = sys.executable
# Shell commands set OMP_NUM_THREADS={threads}: each job's PyTorch uses the threads Snakemake gives it
# (1 unless a rule says otherwise), so jobs side by side do not oversubscribe the cores.
# Rules run `python -m workflow.scripts.<stage>` from any working directory (`--directory`, cluster nodes).
REPOSITORY = Path(workflow.basedir).resolve()
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
# glibc's malloc hands every freed block over 32 MB back to the kernel and maps it afresh on the next forward
# pass, so a CPU job that pushes batches of 224 x 224 images through a network spends more time in page faults
# than in arithmetic. Keeping freed memory in the process made the offline image score jobs 2.4x faster
# (44 -> 18 s, peak memory 2.1 -> 2.4 GB) with byte-identical scores. A user's own setting wins.
for _name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
    os.environ.setdefault(_name, str(16 * 2**30))
NAME = config["name"]
RESULTS = Path("results") / NAME
RESOURCES = config["resources"]
SHARDS = list(range(config["shards"]))
# The resolved configuration every script reads, in the configuration's own order (tables list methods and
# models as the config does); rewritten only when it changes, so that editing one section reruns only the
# rules whose `params` depend on it.
CONFIG_FILE = RESULTS / "config.json"
# Target name -> its outputs. Each rule file registers its own target here (an experiment only when its
# config section is present); `rule all` in the Snakefile builds every registered target.
TARGETS = {}
_text = json.dumps(config, indent=2) + "\n"
if not CONFIG_FILE.exists() or CONFIG_FILE.read_text() != _text:
    CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    _tmp = CONFIG_FILE.with_suffix(".json.tmp")
    _tmp.write_text(_text)
    _tmp.replace(CONFIG_FILE)

wildcard_constraints:
    dataset="|".join(config["datasets"]),
    method="|".join(config["methods"]),
    model=r"[A-Za-z0-9_.:-]+",
    shard=r"\d+",


def section(name, key=None):
    """A JSON string of one config section (rules list it in `params`: a change reruns them)."""
    value = config[name] if key is None else config[name][key]
    return json.dumps(value, sort_keys=True)


def shown_methods():
    """A JSON string of every method's name, kind and label in the configuration's order: what the tables and figures
    show of the methods (their options change the scores, which rerun them through their inputs)."""
    return json.dumps([[m, spec["kind"], spec.get("label", m)] for m, spec in config["methods"].items()])


def dataset_models():
    """Every (dataset, model) pair of the configuration."""
    return CONFIG.dataset_models()


def log(rule_name, *wildcards):
    return str(RESULTS / "logs" / rule_name / ("_".join(f"{{{w}}}" for w in wildcards) or "all")) + ".log"


def bench(rule_name, *wildcards):
    """The job's Snakemake ``benchmark:`` file (wall and CPU time, peak memory), read by the timings table:
    ``benchmarks/{rule}/{wildcard 1}/.../{last wildcard}.tsv`` (``all.tsv`` for a rule without wildcards)."""
    return str(RESULTS / "benchmarks" / rule_name / ("/".join(f"{{{w}}}" for w in wildcards) or "all")) + ".tsv"
