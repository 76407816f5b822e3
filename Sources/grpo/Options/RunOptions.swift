import ArgumentParser
import Training

/// What `train` and `sft` share: a YAML file, resume flags, and any config key as a flag.
struct RunOptions: ParsableArguments {
    @Option(help: "A YAML file of TRL-named keys.") var config: String?
    @Flag(help: "Continue from the newest checkpoint in output_dir.") var resume = false
    @Option(help: "Continue from this checkpoint folder.") var resumeFrom: String?
    @Argument(
        parsing: .allUnrecognized, help: "Any key as a flag: --learning_rate 1e-5 (or --learning-rate).")
    var overrides: [String] = []

    /// The YAML file's keys overlaid with the flags.
    func values() throws -> ConfigValues { try configValues(file: config, flags: overrides) }

    /// The checkpoint to continue from, if any.
    func checkpoint(outputDir: String, configured: String?) throws -> String? {
        try resumeCheckpoint(resume: resume, from: resumeFrom, outputDir: outputDir, configured: configured)
    }
}
