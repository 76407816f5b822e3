import Distributed
import Foundation
import Generation
import Models

/// One prompt's group as a round keeps it: the example's index in the dataset, its completions,
/// each reward's scores and the combined reward of each completion.
struct SampledGroup: Codable {
    var example: Int
    var completions: [Completion]
    var scores: [[Double?]]
    var combined: [Double]
}

/// What a GRPO trainer does as one rank of an `mpirun` job (the rest is in the round and step code:
/// each rank's block of the prompts, the batch-wide gathers and sums).
extension GRPOTrainer {
    /// The prompt groups this rank owns in each round: the `localPrompts` starting at
    /// `rank * localPrompts` of the round's global order.
    var localPrompts: Int { config.promptsPerRound / communicator.size }

    /// The contiguous block of `count` items (a draw's prompt groups, a PPO micro-batch's sequences)
    /// that `rank` takes: as even as it can be, the first `count % ranks` ranks one item more.
    func rankShare(_ count: Int, rank: Int) -> Range<Int> {
        let (base, extra) = count.quotientAndRemainder(dividingBy: communicator.size)
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// This rank's block of a round's kept groups, exchanged between ranks when they must be.
    ///
    /// `owners` lists every kept group in one process's order as (rank that sampled it, its place
    /// among that rank's `kept`). Dynamic sampling's refill can keep more groups on one rank than
    /// another; then the ranks exchange them so that each holds `localPrompts` of them, in order.
    func ownBlock(of owners: [(rank: Int, ordinal: Int)], kept: [SampledGroup]) throws -> [SampledGroup] {
        let block = (communicator.rank * localPrompts)..<((communicator.rank + 1) * localPrompts)
        if owners.indices.allSatisfy({ owners[$0].rank == $0 / localPrompts }) { return kept }
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let parts = try communicator.gather(bytes: [UInt8](try encoder.encode(kept))).map {
            try decoder.decode([SampledGroup].self, from: Data($0))
        }
        return owners[block].map { parts[$0.rank][$0.ordinal] }
    }

    /// This rank's block of a whole batch's `round` (a checkpoint's pending round).
    func rankBlock(_ round: Round) -> Round {
        let n = round.sequences.count / communicator.size
        return round.subset(Array((communicator.rank * n)..<((communicator.rank + 1) * n)))
    }

    /// The state a checkpoint holds; every rank calls it.
    ///
    /// Under mpirun every rank's block of the pending round (`num_iterations` > 1) is joined in rank
    /// order, as one process would hold it.
    func checkpointState() throws -> TrainerState {
        guard communicator.size > 1 else { return state }
        var saved = state
        saved.pendingRound = try joinedRound(state.pendingRound)
        return saved
    }

    /// Every rank's block of a round joined in rank order, the whole round one process would hold;
    /// nil when some rank holds none.
    func joinedRound(_ round: Round?) throws -> Round? {
        guard communicator.size > 1 else { return round }
        let mine = try round.map { [UInt8](try JSONEncoder().encode($0)) } ?? []
        let parts = communicator.gather(bytes: mine)
        guard parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        return Round(joining: try parts.map { try JSONDecoder().decode(Round.self, from: Data($0)) })
    }

    /// Runs `body`, the collectives of a step, adding its time to `time/allreduce` and what this
    /// rank sent since `sentBefore` (by default, since `body` began) to `distributed/bytes_sent`.
    func exchange<T>(_ timings: inout [String: Double], sentBefore: Int? = nil, _ body: () throws -> T)
        rethrows -> T
    {
        let (clock, before) = (Date(), sentBefore ?? communicator.bytesSent)
        defer {
            timings["time/allreduce", default: 0] += Date().timeIntervalSince(clock)
            timings["distributed/bytes_sent", default: 0] += Double(communicator.bytesSent - before)
        }
        return try body()
    }

    /// The policy's trainable gradients cut into `ddp_bucket_cap_mb` buckets (made once).
    func gradientBuckets() -> GradientBuckets {
        if let buckets = policyBuckets { return buckets }
        let buckets = GradientBuckets(
            store: policy.trainableParameters, layers: policy.config.numHiddenLayers,
            capBytes: config.bucketCapBytes)
        policyBuckets = buckets
        return buckets
    }

    /// What an `mpirun` job of `ranks` ranks needs of the config, each refusal naming the key.
    static func checkDistributed(_ config: GRPOConfig, ranks: Int) throws {
        let G = config.numGenerations
        guard config.promptsPerRound % ranks == 0 else {
            throw TrainingError.distributed(
                "per_step_prompts \(config.promptsPerRound) does not divide among \(ranks) ranks: each rank owns whole "
                    + "prompt groups, the same number of them")
        }
        let local = config.promptsPerRound / ranks * G
        guard local % config.optimizer.gradientAccumulationSteps == 0 else {
            throw TrainingError.distributed(
                "gradient_accumulation_steps \(config.optimizer.gradientAccumulationSteps) does not divide a rank's "
                    + "\(local) completions")
        }
    }
}

extension Communicator {
    /// Sums `parameters`' gradients over every rank, in place (for LoRA, the adapters' only).
    func sumGradients(of parameters: ParameterStore) {
        let gradients = parameters.gradients
        sum(UnsafeMutableBufferPointer(start: gradients.pointer, count: gradients.count))
    }
}
