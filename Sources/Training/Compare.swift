import Foundation
import Models

/// One algorithm setting `grpo compare` trains: a name and the keys it lays over the base config.
public struct CompareVariant: Sendable, Equatable {
    public var name: String
    public var keys: [String: String]

    public init(name: String, keys: [String: String]) {
        self.name = name
        self.keys = keys
    }

    /// GRPO without and with its KL to a reference, RLOO and REINFORCE++ as TRL and OpenRLHF set
    /// them (RLOO's KL in the reward at TRL's beta 0.05), and PPO with TRL's defaults; `+lora` after
    /// a name trains LoRA adapters (r 16 on every linear projection) instead of the whole model.
    public static let known: [CompareVariant] = [
        CompareVariant(name: "grpo", keys: ["algorithm": "grpo", "beta": "0"]),
        CompareVariant(name: "grpo_kl", keys: ["algorithm": "grpo", "beta": "0.04"]),
        CompareVariant(name: "rloo", keys: ["algorithm": "rloo", "beta": "0.05"]),
        CompareVariant(name: "reinforce_pp", keys: ["algorithm": "reinforce_pp", "beta": "0"]),
        CompareVariant(name: "ppo", keys: ["algorithm": "ppo"]),
    ]

    /// The variants of a comma-separated list such as "grpo,ppo,grpo+lora", or nil naming the first
    /// unknown one.
    public static func parse(_ list: String) -> Result<[CompareVariant], CompareError> {
        var variants: [CompareVariant] = []
        for item in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let lora = item.hasSuffix("+lora")
            let base = lora ? String(item.dropLast(5)) : item
            guard var variant = known.first(where: { $0.name == base }) else {
                return .failure(.unknownVariant(item, known: known.map(\.name)))
            }
            if lora {
                variant.name = item
                variant.keys.merge(
                    [
                        "use_peft": "true", "lora_r": "16", "lora_alpha": "32",
                        "lora_target_modules": "all-linear",
                    ]
                ) { $1 }
            }
            if !variants.contains(variant) { variants.append(variant) }
        }
        return variants.isEmpty
            ? .failure(.unknownVariant(list, known: known.map(\.name))) : .success(variants)
    }
}

public enum CompareError: Error, CustomStringConvertible, Equatable {
    case unknownVariant(String, known: [String])
    case runFailed(variant: String, seed: UInt64, status: Int32, log: String, tail: String)

    public var description: String {
        switch self {
        case .unknownVariant(let name, let known):
            "--variants: '\(name)' is not a variant; known: \(known.joined(separator: ", ")), each also with +lora"
        case .runFailed(let variant, let seed, let status, let log, let tail):
            "the \(variant) run (seed \(seed)) exited with status \(status); its output is in \(log), ending:\n\(tail)"
        }
    }
}

/// One finished run of `grpo compare`, read back from its metrics.jsonl (logged every step).
public struct ComparedRun: Sendable {
    public var variant: String
    public var seed: UInt64
    /// Each step's seconds (evaluations excluded) and mean reward.
    public var stepSeconds: [Double]
    public var rewards: [Double]
    /// The largest value of every `memory/...` metric over the run.
    public var memory: [String: Double]
    /// Held-out accuracy at each evaluation, with the training seconds spent before it.
    public var evaluations: [(step: Int, seconds: Double, accuracy: Double)]

    public init(variant: String, seed: UInt64, metricsFile: String) throws {
        (self.variant, self.seed) = (variant, seed)
        guard let data = FileManager.default.contents(atPath: metricsFile) else {
            throw DatasetError(path: metricsFile, line: nil, reason: "cannot read the run's metrics")
        }
        (stepSeconds, rewards, memory, evaluations) = ([], [], [:], [])
        var elapsed = 0.0
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let step = object["step"] as? Int
            else { continue }
            if let seconds = object["step_seconds"] as? Double {
                elapsed += seconds
                stepSeconds.append(seconds)
                rewards.append(object["reward"] as? Double ?? .nan)
            }
            for (key, value) in object where key.hasPrefix("memory/") {
                if let value = value as? Double { memory[key] = max(memory[key] ?? 0, value) }
            }
            if let accuracy = object["eval/accuracy"] as? Double {
                evaluations.append((step, elapsed, accuracy))
            }
        }
    }

    /// Seconds per step, the first (which also pays for allocating every buffer) left out.
    public var secondsPerStep: Double {
        let steady = stepSeconds.count > 1 ? Array(stepSeconds.dropFirst()) : stepSeconds
        return steady.reduce(0, +) / Double(max(steady.count, 1))
    }

    public var trainingSeconds: Double { stepSeconds.reduce(0, +) }

    /// The mean reward of the last quarter of the steps.
    public var finalReward: Double {
        let tail = rewards.suffix(max(rewards.count / 4, 1))
        return tail.reduce(0, +) / Double(max(tail.count, 1))
    }

    /// The held-out accuracy after the last step.
    public var finalAccuracy: Double? { evaluations.last?.accuracy }

    /// The held-out accuracy of the last evaluation within `seconds` of training.
    public func accuracy(within seconds: Double) -> Double? {
        evaluations.last { $0.seconds <= seconds + 1e-9 }?.accuracy
    }
}

/// `grpo compare`'s tables (Markdown): per variant, seconds per step, memory (the measured peak
/// and the trainer's account by category), and reward and held-out accuracy after the last step
/// and after the wall time the fastest variant took, each as mean ± standard deviation over seeds.
public func compareTables(_ runs: [ComparedRun], order: [String]) -> String {
    func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }
    func spread(_ values: [Double], scale: Double = 1, digits: Int = 1) -> String {
        guard !values.isEmpty else { return "-" }
        let m = mean(values) * scale
        guard values.count > 1 else { return String(format: "%.\(digits)f", m) }
        return String(format: "%.\(digits)f ± %.\(digits)f", m, standardDeviation(values[...]) * scale)
    }
    func gib(_ bytes: Double?) -> String {
        guard let bytes, bytes > 0 else { return "-" }
        return formatBytes(Int(bytes))
    }
    let groups = order.map { name in (name, runs.filter { $0.variant == name }) }.filter { !$0.1.isEmpty }
    // Equal wall time: the training seconds of the variant that finished soonest (mean over seeds).
    let budget = groups.map { mean($0.1.map(\.trainingSeconds)) }.min() ?? 0
    var lines = [
        "| variant | s/step | peak RSS | accounted | policy weights | gradients + AdamW | reference | critic | activations | KV cache |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (name, group) in groups {
        func memory(_ key: String) -> Double? { group.map { $0.memory[key] ?? 0 }.max() }
        let optimizer = (memory("memory/gradients") ?? 0) + (memory("memory/optimizer") ?? 0)
        lines.append(
            "| \(name) | \(spread(group.map(\.secondsPerStep), digits: 2)) | \(gib(memory("memory/peak_rss"))) | "
                + "\(gib(memory("memory/accounted"))) | \(gib(memory("memory/policy_weights"))) | \(gib(optimizer)) | "
                + "\(gib(memory("memory/reference"))) | \(gib(memory("memory/critic"))) | "
                + "\(gib(memory("memory/activations"))) | \(gib(memory("memory/kv_cache"))) |")
    }
    let seeds = Set(runs.map(\.seed)).count
    let steps = runs.map(\.stepSeconds.count).max() ?? 0
    lines += [
        "",
        String(
            format:
                "| variant | reward, last quarter of %d steps | held-out accuracy after %d steps | held-out accuracy after %.0f s |",
            steps, steps, budget),
        "| --- | --- | --- | --- |",
    ]
    for (name, group) in groups {
        lines.append(
            "| \(name) | \(spread(group.map(\.finalReward), digits: 3)) | "
                + "\(spread(group.compactMap(\.finalAccuracy), scale: 100))% | "
                + "\(spread(group.compactMap { $0.accuracy(within: budget) }, scale: 100))% |")
    }
    lines.append("")
    lines.append("\(seeds) seed\(seeds == 1 ? "" : "s") per variant; ± is the standard deviation over seeds.")
    return lines.joined(separator: "\n")
}
