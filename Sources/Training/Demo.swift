import Foundation
import Generation
import Models
import Rewards
import SafeTensors
import Tokenizers

/// The settings of `grpo demo`: a small model taught multi-step arithmetic by a cold-start SFT that
/// mixes worked solutions with direct answers, then GRPO with accuracy and format rewards.
///
/// The cold start shows two ways to answer and nothing in the prompt says which to use, so the SFT
/// model picks one at random, direct more often (60% of its examples) and greedily almost always.
/// Working the problem out is far more accurate for a 4-layer model (about 90% against 25% on
/// 5-7 number chains), and GRPO discovers that from the rewards alone: the share of worked answers,
/// their length and the accuracy all rise (DeepSeek-R1-Zero's "thinking longer pays", in miniature).
///
/// The SFT runs small batches for many steps (4 examples, 7,500 steps). With 16 per step and as
/// many tokens, or 10 epochs instead of 15, the worked form ends half learned on some seeds (mostly
/// operands copied from the wrong place), and GRPO then has little to find.
public struct DemoSettings: Sendable {
    public var outputDir = "grpo-demo"
    public var seed: UInt64 = 1
    public var task = ArithmeticTask()
    // The model: a Qwen2-shaped transformer over the byte-level ToyModel tokenizer.
    public var layers = 4
    public var hiddenSize = 128
    public var heads = 4
    public var keyValueHeads = 2
    // Data.
    public var sftExamples = 2000
    /// Fraction of the cold-start examples answered directly (`<think></think><answer>N</answer>`);
    /// the rest are worked step by step.
    public var directFraction = 0.6
    public var heldOutExamples = 200
    public var rlPrompts = 4000
    // Cold-start SFT.
    public var sftEpochs = 15.0
    public var sftLearningRate = 5e-4
    public var sftBatchSize = 4
    // GRPO.
    public var grpoSteps = 40
    public var grpoLearningRate = 1e-4
    public var numGenerations = 8
    /// Large groups of prompts per step keep the policy-gradient noise low enough for a tiny model.
    public var perStepPrompts = 32
    /// Sampling temperature of GRPO and of the sampled held-out accuracy.
    ///
    /// At 1 a model whose worked answers are right greedily still slips a digit in one sample of
    /// four; at 0.7 GRPO's gain in sampled accuracy is as robust across seeds as its greedy one.
    public var temperature: Float = 0.7
    /// The matmul precision of SFT, GRPO and the evaluations.
    public var precision = PrecisionSetting.float32
    public var maxCompletionLength = 64
    /// KL penalty towards the SFT model.
    public var beta = 0.0
    public var warmupSteps = 0
    /// Held-out accuracy is measured every this many GRPO steps (and before and after).
    public var evalSteps = 20
    /// Completions sampled per held-out problem for the sampled accuracy.
    public var evalSamples = 4
    /// Further keys of the RL stage's config, as a YAML recipe spells them (`algorithm: ppo`,
    /// `kl_coef: 0`, ...); they override the demo's own.
    public var rlKeys: [String: String] = [:]

    /// The RL stage's algorithm (`rlKeys["algorithm"]`, else grpo): its output folder's name.
    public var algorithm: String { rlKeys["algorithm"] ?? "grpo" }

    public init() {}
}

/// What the demo reports as it goes.
public enum DemoEvent {
    case stage(String)
    case sft(TrainerEvent)
    /// The RL stage's trainer (GRPO, or the algorithm `rlKeys` names).
    case grpo(TrainerEvent)
    case evaluated(DemoEvaluation)
}

/// Held-out figures at one point of the demo.
public struct DemoEvaluation: Sendable {
    public var stage: String
    /// RL steps taken when measured (0 before the RL stage).
    public var step: Int
    /// Fraction of held-out problems answered exactly with greedy decoding.
    public var accuracy: Double
    /// Fraction of completions sampled at the training temperature that are exact (pass@1 estimated
    /// from `evalSamples` samples per problem, as DeepSeek-R1 reports it): what GRPO optimises.
    public var sampledAccuracy: Double
    /// Fraction of greedy answers in the `<think>...</think><answer>...</answer>` form.
    public var format: Double
    /// Fraction of the sampled completions that work the problem out (a non-empty think block).
    public var worked: Double
    /// Mean length in tokens of the sampled completions.
    public var meanLength: Double
}

/// The demo's results: held-out figures before training, after SFT, during and after the RL stage
/// (stage "rl").
public struct DemoReport: Sendable {
    public var evaluations: [DemoEvaluation]
    /// The RL stage's algorithm.
    public var algorithm: String
    /// Per GRPO step: (step, mean reward, mean accuracy reward of the sampled completions).
    public var trainingCurve: [(step: Int, reward: Double, accuracy: Double)]
    public var seconds: (sft: Double, grpo: Double, total: Double)
    public var modelFolder: String
    public var plotPath: String

    public func evaluation(_ stage: String) -> DemoEvaluation? { evaluations.last { $0.stage == stage } }
}

/// Where the demo's inputs live: the untrained model and the three datasets.
public struct DemoFiles: Sendable {
    public var baseModel: String
    /// Cold-start examples as chats (`messages` with the assistant's solution, worked or direct).
    public var sft: String
    /// Prompts with an `answer` field, for GRPO.
    public var rl: String
    /// Problems none of the others contain, for measuring.
    public var heldOut: String
}

/// Writes the demo's untrained model and its datasets under `settings.outputDir`.
public func writeDemoFiles(_ settings: DemoSettings) throws -> DemoFiles {
    let root = settings.outputDir
    try FileManager.default.createDirectory(atPath: root + "/data", withIntermediateDirectories: true)
    let files = DemoFiles(
        baseModel: root + "/base-model", sft: root + "/data/sft.jsonl", rl: root + "/data/rl.jsonl",
        heldOut: root + "/data/held_out.jsonl")
    try ToyModel.write(
        to: files.baseModel, layers: settings.layers, hiddenSize: settings.hiddenSize, heads: settings.heads,
        keyValueHeads: settings.keyValueHeads, maxPositionEmbeddings: 256, seed: settings.seed)
    let heldOut = settings.task.problems(count: settings.heldOutExamples, seed: settings.seed &+ 1)
    let unseen = Set(heldOut.map(\.question))
    let sft = settings.task.problems(count: settings.sftExamples, seed: settings.seed &+ 2, excluding: unseen)
    let rl = settings.task.problems(count: settings.rlPrompts, seed: settings.seed &+ 3, excluding: unseen)
    let direct = settings.directFraction
    try writeJSONL(
        sft.enumerated().map { i, problem in
            // Spread the direct answers evenly: example i is direct when floor(i * f) steps up.
            let isDirect = Int(Double(i + 1) * direct) > Int(Double(i) * direct)
            return chatLine(problem, solution: isDirect ? problem.directSolution : problem.solution)
        }, to: files.sft)
    try writeJSONL(rl.map { chatLine($0, solution: nil) }, to: files.rl)
    try writeJSONL(heldOut.map { chatLine($0, solution: nil) }, to: files.heldOut)
    return files
}

/// The demo up to its RL stage: the files, the SFT model and the held-out measurements so far.
public struct DemoPreparation {
    public var files: DemoFiles
    /// The cold-start SFT model's folder.
    public var sftFolder: String
    public var evaluations: [DemoEvaluation]
    public var seconds: (sft: Double, total: Double)
    /// Measures a model on the held-out problems (greedy and sampled) as stage `stage` at `step`.
    let measure: (Transformer, String, Int) throws -> DemoEvaluation
}

/// Runs the whole demo in `settings.outputDir`: writes the base model and the datasets, runs SFT,
/// measures held-out accuracy, runs the RL stage (measuring along the way), measures again, and
/// draws `demo.svg`.
public func runDemo(_ settings: DemoSettings, onEvent: @escaping (DemoEvent) -> Void = { _ in }) throws
    -> DemoReport
{
    let preparation = try prepareDemo(settings, onEvent: onEvent)
    return try runDemoRL(preparation, settings, onEvent: onEvent)
}

/// The demo's first half: writes the base model and the datasets, measures the base model, runs
/// the cold-start SFT and measures it.
public func prepareDemo(_ settings: DemoSettings, onEvent: @escaping (DemoEvent) -> Void = { _ in }) throws
    -> DemoPreparation
{
    let started = Date()
    let root = settings.outputDir
    onEvent(.stage("writing a \(settings.layers)-layer, \(settings.hiddenSize)-wide model and the task"))
    let files = try writeDemoFiles(settings)
    let base = files.baseModel
    let tokenizer = try Tokenizer(path: base)
    let tokenizerConfig = try TokenizerConfig.load(folder: base)
    let rewards: [any Reward] = [AccuracyReward(field: "answer"), try FormatReward()]
    let heldOutExamples = try loadPromptDataset(
        path: files.heldOut, tokenizer: tokenizer, config: tokenizerConfig, maxPromptLength: nil)
    func measure(_ model: Transformer, stage: String, step: Int) throws -> DemoEvaluation {
        var sampling = SamplingParameters()
        sampling.temperature = 0
        sampling.maxNewTokens = settings.maxCompletionLength
        sampling.stopTokenIDs = stopTokenIDs(model: model, tokenizer: tokenizer, config: tokenizerConfig)
        let greedy = try evaluate(
            model: model, tokenizer: tokenizer, examples: heldOutExamples, rewards: rewards,
            sampling: sampling)
        sampling.temperature = settings.temperature
        sampling.numGenerations = settings.evalSamples
        sampling.seed = settings.seed &+ 17
        let sampled = try evaluate(
            model: model, tokenizer: tokenizer, examples: heldOutExamples, rewards: rewards,
            sampling: sampling)
        let result = DemoEvaluation(
            stage: stage, step: step, accuracy: greedy.accuracy, sampledAccuracy: sampled.accuracy,
            format: greedy.meanRewards[1].mean,
            worked: fraction(sampled.completions.joined().map { worksTheProblem($0.text) }),
            meanLength: sampled.meanCompletionLength)
        onEvent(.evaluated(result))
        return result
    }
    var evaluations: [DemoEvaluation] = []
    let baseModel = try ModelLoader.load(folder: base)
    baseModel.precision = settings.precision.resolved().0
    evaluations.append(try measure(baseModel, stage: "base", step: 0))

    let directCount = Int(Double(settings.sftExamples) * settings.directFraction)
    onEvent(
        .stage(
            "cold-start SFT on \(settings.sftExamples) examples (\(settings.sftExamples - directCount) worked, \(directCount) direct)"
        ))
    let sftClock = Date()
    let sftValues = ConfigValues()
    sftValues.merge(
        [
            // The demo owns its folders: a second run replaces the first.
            "model": base, "dataset": files.sft, "output_dir": root + "/sft", "seed": Int(settings.seed),
            "overwrite_output_dir": true,
            "num_train_epochs": settings.sftEpochs, "learning_rate": settings.sftLearningRate,
            "per_device_train_batch_size": settings.sftBatchSize, "lr_scheduler_type": "cosine",
            "warmup_ratio": 0.05, "save_steps": 1_000_000, "weight_decay": 0.01, "logging_steps": 1,
            "precision": settings.precision.rawValue,
        ], source: "demo")
    let sftTrainer = try SFTTrainer(config: try SFTConfig(sftValues)) { onEvent(.sft($0)) }
    try sftTrainer.train()
    let sftSeconds = Date().timeIntervalSince(sftClock)
    evaluations.append(try measure(sftTrainer.model, stage: "sft", step: 0))
    return DemoPreparation(
        files: files, sftFolder: root + "/sft", evaluations: evaluations,
        seconds: (sftSeconds, Date().timeIntervalSince(started)), measure: measure)
}

/// The demo's RL stage from `preparation`'s SFT model: `settings.grpoSteps` steps of
/// `settings.algorithm` (GRPO unless `rlKeys` says otherwise) with accuracy and format rewards into
/// `OUTPUT/<algorithm>`, measured every `evalSteps` and at the end, and `demo.svg`.
public func runDemoRL(
    _ preparation: DemoPreparation, _ settings: DemoSettings,
    onEvent: @escaping (DemoEvent) -> Void = { _ in }
) throws -> DemoReport {
    let root = settings.outputDir
    let name = settings.algorithm == "grpo" ? "GRPO" : settings.algorithm.uppercased()
    onEvent(
        .stage(
            "\(name): \(settings.grpoSteps) steps of \(settings.perStepPrompts) prompts x \(settings.numGenerations) completions"
        ))
    let grpoClock = Date()
    let grpoValues = ConfigValues()
    grpoValues.merge(
        [
            "model": preparation.sftFolder, "dataset": preparation.files.rl,
            "output_dir": root + "/" + settings.algorithm,
            "seed": Int(settings.seed), "overwrite_output_dir": true,
            "num_generations": settings.numGenerations, "per_step_prompts": settings.perStepPrompts,
            "max_completion_length": settings.maxCompletionLength,
            "temperature": Double(settings.temperature),
            "learning_rate": settings.grpoLearningRate, "lr_scheduler_type": "constant_with_warmup",
            "warmup_steps": settings.warmupSteps,
            "max_steps": settings.grpoSteps, "save_steps": settings.grpoSteps,
            "rewards": ["accuracy", "format"],
            "reward_weights": [1.0, 0.5], "log_completions_steps": 0, "logging_steps": 1,
            "precision": settings.precision.rawValue,
        ], source: "demo")
    // PPO's KL weight is kl_coef; GRPO's is beta.
    if settings.algorithm != "ppo" { grpoValues.merge(["beta": settings.beta], source: "demo") }
    grpoValues.merge(settings.rlKeys, source: "demo (rl keys)")
    var evaluations = preparation.evaluations
    var curve: [(step: Int, reward: Double, accuracy: Double)] = []
    var policy: Transformer?
    var evaluationError: Error?
    let grpoTrainer = try GRPOTrainer(config: try GRPOConfig(grpoValues)) { event in
        onEvent(.grpo(event))
        guard case .step(let step, let maxSteps, let metrics) = event else { return }
        curve.append((step, metrics["reward"] ?? .nan, metrics["rewards/accuracy/mean"] ?? .nan))
        if step % settings.evalSteps == 0 && step < maxSteps, let policy {
            do {
                evaluations.append(try preparation.measure(policy, "rl", step))
            } catch {
                evaluationError = error
            }
        }
    }
    policy = grpoTrainer.policy
    grpoTrainer.shouldStop = { evaluationError != nil }
    try grpoTrainer.train()
    if let evaluationError { throw evaluationError }
    let grpoSeconds = Date().timeIntervalSince(grpoClock)
    evaluations.append(try preparation.measure(grpoTrainer.policy, "rl", settings.grpoSteps))

    let plot = root + "/demo.svg"
    try atomicWrite(
        Data(demoPlot(curve: curve, evaluations: evaluations, steps: settings.grpoSteps).utf8), to: plot)
    return DemoReport(
        evaluations: evaluations, algorithm: settings.algorithm, trainingCurve: curve,
        seconds: (preparation.seconds.sft, grpoSeconds, preparation.seconds.total + grpoSeconds),
        modelFolder: root + "/" + settings.algorithm, plotPath: plot)
}

/// A dataset line: the question as a user turn, with the worked solution as the assistant turn
/// (SFT) or the answer as a field (RL and evaluation).
private func chatLine(_ problem: ArithmeticTask.Problem, solution: String?) -> String {
    func turn(_ role: String, _ content: String) -> Value {
        .object(Object([("role", .string(role)), ("content", .string(content))]))
    }
    var messages = [turn("user", problem.question)]
    if let solution { messages.append(turn("assistant", solution)) }
    var line = Object([("messages", .array(messages))])
    if solution == nil { line["answer"] = .string(String(problem.answer)) }
    return Value.object(line).jsonText
}

/// The seeds of `grpo demo --seeds`, in the order given and without repeats.
///
/// The text is numbers and inclusive ranges separated by commas ("1-5", "1,3,8", "1-3,10"). Nil when
/// it is not such a list or names more than 1,000 seeds.
public func parseSeedList(_ text: String) -> [UInt64]? {
    var seeds: [UInt64] = []
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
        let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map {
            UInt64($0.trimmingCharacters(in: .whitespaces))
        }
        guard bounds.count <= 2, let low = bounds.first ?? nil, let high = bounds.last ?? nil, low <= high,
            high - low < 1000
        else { return nil }
        for seed in low...high where !seeds.contains(seed) { seeds.append(seed) }
        if seeds.count > 1000 { return nil }
    }
    return seeds.isEmpty ? nil : seeds
}

/// What GRPO changed over the SFT model in one demo run, in points of held-out accuracy.
public struct DemoGain: Sendable {
    public var seed: UInt64
    public var sft: DemoEvaluation
    public var grpo: DemoEvaluation
    public var seconds: Double

    public init?(seed: UInt64, report: DemoReport) {
        guard let sft = report.evaluation("sft"), let grpo = report.evaluation("rl") else { return nil }
        (self.seed, self.sft, self.grpo, self.seconds) = (seed, sft, grpo, report.seconds.total)
    }

    public var sampled: Double { (grpo.sampledAccuracy - sft.sampledAccuracy) * 100 }
    public var greedy: Double { (grpo.accuracy - sft.accuracy) * 100 }
}

/// True when a completion's think block holds some working (not `<think></think>`).
func worksTheProblem(_ text: String) -> Bool {
    guard let open = text.range(of: "<think>"), let close = text.range(of: "</think>"),
        open.upperBound <= close.lowerBound
    else { return false }
    return !text[open.upperBound..<close.lowerBound].allSatisfy(\.isWhitespace)
}

private func fraction(_ flags: [Bool]) -> Double {
    flags.isEmpty ? 0 : Double(flags.filter { $0 }.count) / Double(flags.count)
}

private func writeJSONL(_ lines: [String], to path: String) throws {
    try atomicWrite(Data(lines.map { $0 + "\n" }.joined().utf8), to: path)
}
