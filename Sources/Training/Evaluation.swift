import Foundation
import Generation
import Models
import Rewards
import Tokenizers

/// What `grpo eval` reports.
public struct EvaluationReport: Sendable {
    public var prompts: Int
    public var samplesPerPrompt: Int
    /// Mean score of each reward over all completions, by reward name (in the order given).
    public var meanRewards: [(name: String, mean: Double)]
    /// Fraction of completions the first reward scores at least 1 (pass@1 estimated over k samples).
    public var accuracy: Double
    /// Fraction of prompts with at least one of their k completions scoring at least 1.
    public var passAtK: Double
    public var meanCompletionLength: Double
    /// Per prompt: its completions and their first-reward scores.
    public var completions: [[(text: String, score: Double?)]]
    /// The most KV cache the sampling held at once.
    public var peakCacheBytes = 0
}

/// Samples `sampling.numGenerations` completions per example and scores them.
public func evaluate(
    model: Transformer, tokenizer: Tokenizer, examples: [Example], rewards: [any Reward],
    sampling: SamplingParameters, maxCacheBytes: Int? = nil
) throws -> EvaluationReport {
    let generator = Generator(model: model, tokenizer: tokenizer)
    if let maxCacheBytes { generator.maxCacheBytes = maxCacheBytes }
    let groups = try generator.generate(prompts: examples.map(\.tokens), parameters: sampling)
    let inputs = rewardInputs(examples, groups)
    let scores = try scoreCompletions(inputs, rewards: rewards)
    let k = sampling.numGenerations
    let first = scores[0]
    let solved = stride(from: 0, to: first.count, by: k).filter { start in
        first[start..<(start + k)].contains { ($0 ?? 0) >= 1 }
    }
    let lengths = inputs.map(\.completionLength)
    var report = EvaluationReport(
        prompts: examples.count, samplesPerPrompt: k,
        meanRewards: zip(rewards, scores).map { ($0.name, meanAndStd($1).mean) },
        accuracy: Double(first.filter { ($0 ?? 0) >= 1 }.count) / Double(max(first.count, 1)),
        passAtK: Double(solved.count) / Double(max(examples.count, 1)),
        meanCompletionLength: Double(lengths.reduce(0, +)) / Double(max(lengths.count, 1)),
        completions: groups.enumerated().map { p, group in
            group.enumerated().map { g, completion in (completion.text ?? "", first[p * k + g]) }
        })
    report.peakCacheBytes = generator.peakCacheBytes
    return report
}

/// Held-out prompts measured during a GRPO run (`eval_dataset` or a dataset folder's
/// `dataset_test_split`, with `eval_strategy`, `eval_steps`, `num_generations_eval`,
/// `eval_temperature`, `eval_max_prompts`).
public struct EvaluationSettings: Sendable {
    public var dataset: String
    /// Completions per prompt (pass@k's k); nil: num_generations.
    public var numGenerations: Int?
    /// nil: the training temperature; 0: greedy.
    public var temperature: Float?
    public var maxPrompts: Int?

    /// The settings, or nil when `eval_strategy` is no.
    init?(_ v: ConfigValues, schedule: RunSchedule, trainingDataset: String) throws {
        let given = try v.optionalString("eval_dataset")
        let split = try v.string("dataset_test_split")
        numGenerations = try v.optionalInt("num_generations_eval")
        temperature = try v.optionalDouble("eval_temperature").map(Float.init)
        maxPrompts = try v.optionalInt("eval_max_prompts")
        if let k = numGenerations, k < 1 { throw v.error("num_generations_eval", "must be at least 1") }
        if let t = temperature, t < 0 {
            throw v.error("eval_temperature", "must not be negative (0: greedy)")
        }
        if let m = maxPrompts, m < 1 { throw v.error("eval_max_prompts", "must be at least 1") }
        guard schedule.evalStrategy != "no" else {
            if given != nil {
                throw v.error(
                    "eval_dataset", "is given but eval_strategy is no: set eval_strategy: steps (or epoch)")
            }
            return nil
        }
        if let given {
            do {
                dataset = try datasetFile(given, split: split)
            } catch let problem as DatasetError {
                throw v.error("eval_dataset", problem.reason)
            }
        } else {
            let (key, path) = try v.either("dataset", "dataset_name")!
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue
            else {
                throw v.error(
                    "eval_strategy",
                    "needs held-out prompts: eval_dataset (a file), or a dataset folder with a '\(split)' split"
                )
            }
            do {
                dataset = try datasetFile(path, split: split)
            } catch let problem as DatasetError {
                throw v.error(key, problem.reason)
            }
        }
        if dataset == trainingDataset {
            throw v.error("eval_dataset", "is the training dataset: held-out prompts must be other prompts")
        }
    }
}

/// One held-out evaluation: its step, accuracy and the completions it scored.
struct HeldOutMeasurement {
    var step: Int
    var accuracy: Double
    var completions: Int
}

/// The reward-hacking warning, when held-out accuracy at `now` fell below the previous
/// evaluation's by more than noise (twice the difference's standard error, and at least 2 points)
/// while the mean training reward since that evaluation rose above the mean over the interval
/// before it (or above the first step's reward, with one evaluation so far).
func rewardHackingWarning(
    evaluations: [HeldOutMeasurement], now: HeldOutMeasurement, trainRewards: [(step: Int, reward: Double)]
) -> String? {
    guard let last = evaluations.last, now.step > last.step else { return nil }
    let before = evaluations.dropLast().last?.step ?? 0
    func meanReward(after start: Int, through end: Int) -> Double? {
        let values = trainRewards.filter { $0.step > start && $0.step <= end }.map(\.reward)
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }
    guard let recent = meanReward(after: last.step, through: now.step),
        let earlier = meanReward(after: before, through: last.step) ?? trainRewards.first?.reward
    else { return nil }
    let (p, q) = (now.accuracy, last.accuracy)
    let error =
        (p * (1 - p) / Double(max(now.completions, 1)) + q * (1 - q) / Double(max(last.completions, 1)))
        .squareRoot()
    guard recent > earlier, q - p > max(2 * error, 0.02) else { return nil }
    return String(
        format:
            "held-out accuracy fell from %.1f%% (step %d) to %.1f%% (step %d) while the training reward rose "
            + "from %.3f to %.3f: the policy may be exploiting the reward (reward hacking). Read the samples, "
            + "tighten the rewards, or keep the checkpoint nearest step %d",
        q * 100, last.step, p * 100, now.step, earlier, recent, last.step)
}
