# The paper's audio noise and overlap experiments, measured: every evaluated clip of the audio data set
# under 0 dB white noise and overlapped with a clip of another class, rebuilt from its top WAM coefficients, against
# three controls; SI-SDR and Fid-in tables, a figure, and the first clips' .wav files with their spectrograms.
# Registered in TARGETS (built by `all`) only when the configuration has an `audio_separation:` section.
if "audio_separation" in config:
    SEPARATION = config["audio_separation"]
    SEPARATION_DATASET = CONFIG.experiment_dataset("audio_separation")
    SEPARATION_MODEL = CONFIG.experiment_model("audio_separation")
    SEPARATION_DIR = RESULTS / "audio_separation"
    SEPARATION_WAM = list(SEPARATION.get("methods", ["wam_sg", "wam_ig"]))
    SEPARATION_MEL_MASK = SEPARATION.get("mel_mask", "smoothgrad")
    _evaluated = CONFIG.datasets[SEPARATION_DATASET].n_inputs
    SEPARATION_EXAMPLES = min(SEPARATION.get("n_examples", 3), _evaluated or SEPARATION.get("n_examples", 3))


    def separation_wavs(k):
        """The .wav files of example clip k (workflow.lib.experiments.audio_separation.example_paths)."""
        names = ["clean"] + [f"{c}{suffix}" for c in ("noise", "overlap")
                             for suffix in ["", *[f"_{m}" for m in SEPARATION_WAM]]]
        return [RESULTS / "audio" / f"clip{k}_{name}.wav" for name in names]


    rule audio_separation_run:
        """Corrupt one shard of the evaluated clips (0 dB noise, overlap), rebuild them from WAM and the controls at
        every keep, score SI-SDR and Fid-in."""
        input:
            data=RESULTS / "data" / f"{SEPARATION_DATASET}.json",
            model=RESULTS / "models" / SEPARATION_DATASET / SEPARATION_MODEL / "model.pt",
        output:
            rows=SEPARATION_DIR / "{shard}.csv",
            examples=SEPARATION_DIR / "{shard}.pt",
        params:
            separation=section("audio_separation"),
            dataset=section("datasets", SEPARATION_DATASET),
            methods=json.dumps({m: config["methods"].get(m) for m in [*SEPARATION_WAM, SEPARATION_MEL_MASK]},
                               sort_keys=True),  # only the methods it runs: a plug-in added elsewhere reruns nothing
            wavelet=section("wavelet", "audio"),
            shards=config["shards"],
            seed=config["seed"],
        resources:
            gpu=1,
        log:
            log("audio_separation_run", "shard"),
        benchmark:
            bench("audio_separation_run", "shard"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.audio_separation run --config {CONFIG_FILE}"
            " --model {input.model} --shard {wildcards.shard} --rows {output.rows} --examples {output.examples}"
            " 2> {log}"

    rule audio_separation_report:
        """The SI-SDR / Fid-in table (bootstrap CIs), the SI-SDR-against-keep figure, the example clips' .wav files
        and spectrograms."""
        input:
            rows=[SEPARATION_DIR / f"{s}.csv" for s in SHARDS],
            examples=[SEPARATION_DIR / f"{s}.pt" for s in SHARDS],
        output:
            csv=RESULTS / "tables" / "audio_separation.csv",
            md=RESULTS / "tables" / "audio_separation.md",
            tex=RESULTS / "tables" / "audio_separation.tex",
            figure=report(RESULTS / "figures" / "audio_separation.png", caption="../report/audio_separation.rst",
                          category="Audio separation", labels=item_labels("figure", "audio_separation")),
            clips=[RESULTS / "figures" / f"audio_separation_clip{k}.png" for k in range(SEPARATION_EXAMPLES)],
            # each clip's page: its spectrograms with a player beside each (the .wav files alone would be downloads)
            pages=[report(RESULTS / "report" / f"audio_separation_clip{k}.html",
                          caption="../report/audio_separation.rst", category="Audio separation",
                          labels=item_labels("audio", f"clip {k}")) for k in range(SEPARATION_EXAMPLES)],
            wavs=[path for k in range(SEPARATION_EXAMPLES) for path in separation_wavs(k)],
        params:
            separation=section("audio_separation"),
            bootstrap=section("evaluation", "bootstrap"),
        log:
            log("audio_separation_report"),
        benchmark:
            bench("audio_separation_report"),
        shell:
            "OMP_NUM_THREADS={threads} {PY} -m workflow.scripts.experiments.audio_separation report --config {CONFIG_FILE}"
            " --rows {input.rows} --examples {input.examples} --out {RESULTS} 2> {log}"

    rule audio_separation:
        """The audio separation experiment: table, figure, example clips."""
        input:
            rules.audio_separation_report.output,
            table_page("audio_separation", "Audio separation"),

    TARGETS["audio_separation"] = rules.audio_separation.input
