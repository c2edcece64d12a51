# Training-seed spread of Table 1: with `seeds: [s1, s2, ...]` in the configuration, every trained
# (data set, model) is trained again with each seed other than `training.seed` (one job per seed and model), then
# explained and scored by every method (one job per seed, model and method: a method added to the configuration
# adds its own jobs and reruns no other), and tables/seed_spread gives each Table 1 cell's seed-to-seed standard
# deviation. Registered in TARGETS (built by `all`) only when `seeds` lists at least two seeds.
if len(config.get("seeds", [])) > 1:
    from workflow.lib.experiments.seeds import extra_seeds, trained_models

    SEED_SPREAD = [RESULTS / "tables" / "seed_spread.csv", RESULTS / "tables" / "seed_spread.md"]

    rule seed_train:
        """Train one model with one training seed."""
        input:
            data=RESULTS / "data" / "{dataset}.json",
            preflight=ancient(RESULTS / "preflight.json"),
        output:
            RESULTS / "seeds" / "{seed}" / "models" / "{dataset}" / "{model}" / "model.pt",
        params:
            dataset=lambda w: section("datasets", w.dataset),
            training=section("training"),
        wildcard_constraints:
            seed=r"\d+",
        threads: config["training"].get("threads", 1)  # the trained weights depend on it
        resources:
            gpu=1,
        log:
            log("seed_train", "seed", "dataset", "model"),
        benchmark:
            bench("seed_train", "seed", "dataset", "model"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.seeds train --config {CONFIG_FILE}"
            " --dataset {wildcards.dataset} --model {wildcards.model} --seed {wildcards.seed}"
            " --out {RESULTS}/seeds/{wildcards.seed} 2> {log}"

    rule seed_replicate:
        """Explain and score a model trained with one training seed by one method."""
        input:
            data=RESULTS / "data" / "{dataset}.json",
            model=RESULTS / "seeds" / "{seed}" / "models" / "{dataset}" / "{model}" / "model.pt",
        output:
            RESULTS / "seeds" / "{seed}" / "scores" / "{dataset}" / "{model}" / "{method}.csv",
        params:
            dataset=lambda w: section("datasets", w.dataset),
            method=lambda w: section("methods", w.method),
            evaluation=section("evaluation"),
            wavelet=section("wavelet"),
        wildcard_constraints:
            seed=r"\d+",
        resources:
            gpu=1,
        log:
            log("seed_replicate", "seed", "dataset", "model", "method"),
        benchmark:
            bench("seed_replicate", "seed", "dataset", "model", "method"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.seeds replicate --config {CONFIG_FILE}"
            " --dataset {wildcards.dataset} --model {wildcards.model} --method {wildcards.method}"
            " --seed {wildcards.seed} --out {RESULTS}/seeds/{wildcards.seed} 2> {log}"

    rule seed_spread:
        """Each Table 1 cell of the trained models over the training seeds: mean, standard deviation, values."""
        input:
            main=RESULTS / "scores" / "scores.csv",
            replicates=[RESULTS / "seeds" / str(s) / "scores" / d / m / f"{method}.csv"
                        for s in extra_seeds(CONFIG) for d, m in trained_models(CONFIG) for method in config["methods"]],
        output:
            csv=SEED_SPREAD[0],
            md=SEED_SPREAD[1],
        params:
            seeds=config["seeds"],
        log:
            log("seed_spread"),
        benchmark:
            bench("seed_spread"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.seeds table --config {CONFIG_FILE}"
            " --main {input.main} --replicates {input.replicates} --out {RESULTS}/tables 2> {log}"

    TARGETS["seed_spread"] = [*SEED_SPREAD, table_page("seed_spread")]
